"""Request checks and result assembly shared by every market-data source."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from portfolio_engine.data.schema import conform_bars, empty_bars
from portfolio_engine.exceptions import ConfigurationError, EmptyDataError

logger = logging.getLogger(__name__)


def normalize_symbols(symbols: Sequence[str] | str, *, source: str) -> list[str]:
    """Strip, de-duplicate (keeping order) and check the requested symbols.

    A single string is read as one symbol, not as a sequence of characters.

    Raises
    ------
    ConfigurationError
        If no symbol is left.
    """
    items = [symbols] if isinstance(symbols, str) else list(symbols)
    cleaned = list(dict.fromkeys(s.strip() for s in items if s and s.strip()))
    if not cleaned:
        raise ConfigurationError(
            f"No symbols requested from source '{source}'; got {items!r}.",
            hint="Pass at least one ticker, e.g. ['AAPL'].",
        )
    return cleaned


def as_date(value: date | str | None) -> date | None:
    """Return ``value`` as a ``date`` (datetimes and ISO strings accepted), or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def check_range(start: date | str | None, end: date | str | None) -> tuple[date | None, date | None]:
    """Coerce ``start`` and ``end`` to dates and check their order.

    Raises
    ------
    ConfigurationError
        If ``start`` is after ``end``.
    """
    first, last = as_date(start), as_date(end)
    if first is not None and last is not None and first > last:
        raise ConfigurationError(
            f"Start date {first} is after end date {last}.", hint="Swap the dates or drop one of them."
        )
    return first, last


def is_settled(end: date | None, today: date | None = None) -> bool:
    """Whether a source's answer for a range ending on ``end`` (inclusive) can no longer change.

    A range is settled once ``end`` is over in every time zone, whatever the exchange: ``end`` is
    before yesterday in UTC. That is one rule for every source, without an exchange calendar, and it
    errs towards fresh data: a range ending yesterday (UTC) is still open, because west of UTC (New
    York until 04:00 or 05:00 UTC) that day is not over yet. An open range (``end`` None, "through
    now") is never settled. The resilience wrapper caches the answer for an unsettled range for
    ``ResiliencePolicy.open_range_ttl_seconds`` only.

    Parameters
    ----------
    end : date or None
        Last day of the range.
    today : date, optional
        Today's date in UTC; the current one by default (tests pass a fixed day).

    Returns
    -------
    bool
    """
    if end is None:
        return False
    return end + timedelta(days=1) < (today or datetime.now(UTC).date())


def within(bars: pd.DataFrame, start: date | None, end: date | None) -> pd.DataFrame:
    """Keep the bars dated from ``start`` through ``end`` (both inclusive, whole days)."""
    keep = pd.Series(True, index=bars.index)
    if start is not None:
        keep &= bars["date"] >= pd.Timestamp(start)
    if end is not None:
        keep &= bars["date"] < pd.Timestamp(end + timedelta(days=1))
    return bars.loc[keep].reset_index(drop=True)


def fetch_each(
    names: Sequence[str],
    fetch_one: Callable[[str], pd.DataFrame],
    *,
    source: str,
    start: date | None,
    end: date | None,
) -> pd.DataFrame:
    """Fetch symbols one at a time and combine them; a symbol with no bars is left out (see ``combine``)."""
    frames: dict[str, pd.DataFrame] = {}
    for symbol in names:
        try:
            frames[symbol] = fetch_one(symbol)
        except EmptyDataError:
            frames[symbol] = empty_bars()
    return combine(frames, source=source, start=start, end=end)


def combine(frames: dict[str, pd.DataFrame], *, source: str, start: date | None, end: date | None) -> pd.DataFrame:
    """Concatenate per-symbol bars into one canonical table.

    Symbols without bars in the range are left out (and logged): a caller asking for several symbols
    gets what exists. Only when no symbol has a bar is it an error.

    Raises
    ------
    EmptyDataError
        If every symbol came back empty.
    """
    filled = {symbol: frame for symbol, frame in frames.items() if len(frame)}
    missing = [symbol for symbol in frames if symbol not in filled]
    if not filled:
        raise EmptyDataError(
            f"Source '{source}' has no bars for {missing} between {start or 'the beginning'} and {end or 'today'}.",
            hint="Widen the date range, or check that the market was open on those dates.",
        )
    if missing:
        logger.warning("symbols without bars in range left out", extra={"source": source, "symbols": missing})
    return conform_bars(pd.concat(list(filled.values()), ignore_index=True))
