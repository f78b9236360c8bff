"""Calendar checks: bars off an exchange's sessions, sessions without a bar, and the calendars themselves.

The calendar checks (``off_calendar``, ``calendar_gap``) compare each symbol with the sessions of an
exchange (:class:`TradingCalendar`, built from ``exchange_calendars``), or, without one, with the
union of the dates of the symbols in the table (the fallback for sources with no exchange calendar).
A bar belongs to the session of its date: for daily bars (stamped at midnight) the date itself, for
intraday bars (UTC) the date in the exchange's time zone, so the night between two sessions is
never a gap.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from portfolio_engine.data._findings import CALENDAR_GAP, OFF_CALENDAR, Finding, _finding, _fmt_date
from portfolio_engine.exceptions import ConfigurationError


@dataclass(frozen=True)
class TradingCalendar:
    """The sessions of one exchange over a span of whole years.

    Attributes
    ----------
    name : str
        Calendar code of ``exchange_calendars`` (ISO 10383 MIC, e.g. ``"XNYS"``).
    tz : str
        The exchange's time zone: intraday bars (UTC) belong to the session of their local date.
    sessions : ndarray of shape (n_sessions,)
        Session dates (``datetime64[ns]`` at midnight), sorted. Holidays and unscheduled closures
        (11-14 Sep 2001, Hurricane Sandy 29-30 Oct 2012, national days of mourning) are not sessions.
    """

    name: str
    tz: str
    sessions: np.ndarray

    def session_of(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return the session date each bar belongs to, and whether its symbol has intraday bars.

        A symbol is intraday when any of its timestamps is not at midnight; its bars (UTC) belong to
        the date they fall on in the exchange's time zone. A daily bar belongs to its own date.

        Returns
        -------
        day : ndarray of datetime64[ns], shape (n_rows,)
        intraday : ndarray of bool, shape (n_rows,)
        """
        stamps = pd.DatetimeIndex(frame["date"].to_numpy(dtype="datetime64[ns]"))
        midnight = stamps.normalize()
        day = midnight.to_numpy(dtype="datetime64[ns]", copy=True)
        symbols = frame["symbol"].to_numpy(dtype=object)
        intraday = pd.Series(stamps != midnight).groupby(symbols).transform("any").to_numpy(dtype=bool)
        if intraday.any():
            local = stamps[intraday].tz_localize("UTC").tz_convert(self.tz).tz_localize(None).normalize()
            day[intraday] = local.to_numpy(dtype="datetime64[ns]")
        return day, intraday

    def locate(self, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the index of each date in ``sessions`` and whether the date is a session at all."""
        position = np.searchsorted(self.sessions, day)
        inside = position < len(self.sessions)
        is_session = np.zeros(len(day), dtype=bool)
        is_session[inside] = self.sessions[position[inside]] == day[inside]
        return position, is_session


def calendar_names() -> frozenset[str]:
    """Return the calendar codes and aliases ``exchange_calendars`` knows (``XNYS``, ``NYSE``, ``24/7``, ...)."""
    import exchange_calendars

    return frozenset(exchange_calendars.get_calendar_names(include_aliases=True))


def canonical_calendar_name(name: str) -> str:
    """Return the calendar code an alias stands for (``"NYSE"`` -> ``"XNYS"``)."""
    import exchange_calendars

    return str(exchange_calendars.resolve_alias(name))


@lru_cache(maxsize=16)
def _calendar_for_years(name: str, first_year: int, last_year: int) -> TradingCalendar:
    # Imported on first use: the package costs ~0.16 s to import and ~0.14 s per calendar built,
    # which every Lambda that imports validation would pay at cold start even when it never validates.
    import exchange_calendars

    with warnings.catch_warnings():
        # exchange_calendars 4.13 reads a tz-aware Series' .values, deprecated in pandas 3.1; the values it
        # gets (UTC nanoseconds) are the ones it wants, so the warning says nothing about our data.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray", category=DeprecationWarning)
        calendar = exchange_calendars.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    sessions = pd.DatetimeIndex(calendar.sessions).tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return TradingCalendar(name=name, tz=str(calendar.tz), sessions=sessions)


def trading_calendar(name: str, first: pd.Timestamp, last: pd.Timestamp) -> TradingCalendar:
    """Return the sessions of calendar ``name`` over the years from ``first`` to ``last``.

    Calendars are computed offline from the rules and the closures ``exchange_calendars`` ships with
    (no download); they are cached per process by whole years.

    Raises
    ------
    ConfigurationError
        For an unknown name, or dates outside what the calendar covers.
    """
    from exchange_calendars.errors import CalendarError

    # A day of margin: an intraday bar's local date can be the day before its UTC date.
    first_year = (first - pd.Timedelta(days=1)).year
    last_year = (last + pd.Timedelta(days=1)).year
    try:
        return _calendar_for_years(name, first_year, last_year)
    except CalendarError as exc:
        raise ConfigurationError(
            f"Exchange calendar {name!r} cannot cover bars from {first.date()} to {last.date()}: {exc}",
            hint="Choose another calendar in the validation policy, or calendar=None to use the bars' own dates.",
        ) from exc


@dataclass(frozen=True)
class MissingBars:
    """Bars a symbol lacks between its first and last bar, by its calendar.

    Attributes
    ----------
    symbols, dates : ndarray of shape (n_missing,)
        The missing ``(symbol, date)``, sorted by symbol then date (dates are session dates for a
        calendar, universe dates without one).
    fillable : ndarray of bool, shape (n_missing,)
        Whether one bar stands for the missing date, so that ``forward_fill`` may insert it: daily
        bars, and any bar without a calendar. A session missing from an intraday series is a whole
        day of bars, which filling does not invent.
    detail : Mapping[str, str]
        One line per symbol: how many, the longest run.
    """

    symbols: np.ndarray
    dates: np.ndarray
    fillable: np.ndarray
    detail: Mapping[str, str] = field(default_factory=dict)


def _runs_detail(symbols: np.ndarray, index: np.ndarray, dates: np.ndarray, what: str) -> dict[str, str]:
    """Per symbol: the count and the longest run of consecutive missing items (``index`` steps of 1)."""
    if len(symbols) == 0:
        return {}
    starts = np.ones(len(symbols), dtype=bool)
    starts[1:] = (symbols[1:] != symbols[:-1]) | (index[1:] != index[:-1] + 1)
    run_id = np.cumsum(starts) - 1
    length = np.bincount(run_id)
    run_start = np.flatnonzero(starts)
    details: dict[str, str] = {}
    for symbol in pd.unique(symbols):
        runs = np.unique(run_id[symbols == symbol])
        worst = runs[int(length[runs].argmax())]
        first, n = run_start[worst], int(length[worst])
        details[str(symbol)] = (
            f"{int(length[runs].sum())} {what}; longest run {n} from {_fmt_date(dates[first])} "
            f"to {_fmt_date(dates[first + n - 1])}"
        )
    return details


def missing_bars(frame: pd.DataFrame, calendar: TradingCalendar | None) -> MissingBars:
    """Find the dates each symbol lacks between its first and last bar.

    With a calendar, those are the exchange's sessions on which the symbol has no bar (bars on other
    days are :func:`off_calendar`, and do not count as sessions); without one, the dates of the
    union of all symbols' dates that the symbol lacks. Dates before a symbol's first bar (a later
    listing) or after its last bar are not missing.

    Parameters
    ----------
    frame : DataFrame of shape (n_rows, 8)
        Prepared canonical bars.
    calendar : TradingCalendar or None

    Returns
    -------
    MissingBars
    """
    if calendar is None:
        return _missing_from_union(frame)
    empty = np.zeros(0, dtype=object)
    if frame.empty:
        return MissingBars(empty, np.zeros(0, dtype="datetime64[ns]"), np.zeros(0, dtype=bool))
    day, intraday = calendar.session_of(frame)
    position, is_session = calendar.locate(day)
    codes, names = pd.factorize(frame["symbol"].to_numpy(dtype=object)[is_session], sort=True)
    symbols = np.asarray(names, dtype=object)
    sym_idx = np.asarray(codes, dtype=np.int64)
    position = position[is_session].astype(np.int64)
    first = np.full(len(symbols), len(calendar.sessions), dtype=np.int64)
    last = np.full(len(symbols), -1, dtype=np.int64)
    np.minimum.at(first, sym_idx, position)
    np.maximum.at(last, sym_idx, position)
    # Every session from each symbol's first to its last, laid end to end: symbol k's sessions start
    # at starts[k]; a bar marks its own slot, and the unmarked slots are the missing sessions.
    counts = last - first + 1
    starts = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(symbols)), counts)
    expected = np.repeat(first, counts) + np.arange(int(counts.sum())) - np.repeat(starts, counts)
    present = np.zeros(len(expected), dtype=bool)
    present[starts[sym_idx] + position - first[sym_idx]] = True
    lacking = ~present
    miss_symbols = symbols[owner[lacking]]
    miss_index = expected[lacking]
    miss_dates = calendar.sessions[miss_index]
    intraday_symbols = set(frame["symbol"].to_numpy(dtype=object)[intraday])
    fillable = ~pd.Index(miss_symbols, dtype=object).isin(list(intraday_symbols))
    detail = _runs_detail(miss_symbols, miss_index, miss_dates, f"{calendar.name} session(s) without a bar")
    for symbol in intraday_symbols & set(detail):
        detail[str(symbol)] += " (intraday: a missing session is not filled)"
    return MissingBars(miss_symbols, miss_dates, fillable, detail)


def _missing_from_union(frame: pd.DataFrame) -> MissingBars:
    """Missing bars against the union of all symbols' dates (the fallback without a calendar)."""
    if frame.empty:
        return MissingBars(np.zeros(0, dtype=object), np.zeros(0, dtype="datetime64[ns]"), np.zeros(0, dtype=bool))
    calendar, date_idx = np.unique(frame["date"].to_numpy(dtype="datetime64[ns]"), return_inverse=True)
    symbols, sym_idx = np.unique(frame["symbol"].to_numpy(dtype=object), return_inverse=True)
    present = np.zeros((len(calendar), len(symbols)), dtype=bool)
    present[date_idx, sym_idx] = True
    first = np.full(len(symbols), len(calendar))
    last = np.full(len(symbols), -1)
    np.minimum.at(first, sym_idx, date_idx)
    np.maximum.at(last, sym_idx, date_idx)
    rows = np.arange(len(calendar))[:, None]
    missing = (rows >= first[None, :]) & (rows <= last[None, :]) & ~present
    s_idx, d_idx = np.nonzero(missing.T)  # symbol-major: sorted by (symbol, date)
    detail = _runs_detail(symbols[s_idx], d_idx, calendar[d_idx], "date(s) of the universe without a bar")
    return MissingBars(symbols[s_idx], calendar[d_idx], np.ones(len(s_idx), dtype=bool), detail)


# ---------------------------------------------------------------------------------------------------------------------
# value checks on the prepared table
# ---------------------------------------------------------------------------------------------------------------------
def off_calendar_mask(frame: pd.DataFrame, calendar: TradingCalendar | None) -> np.ndarray:
    """Return a mask of shape (n_rows,) of the bars whose session date is not a session (none without a calendar)."""
    if calendar is None or frame.empty:
        return np.zeros(len(frame), dtype=bool)
    day, _ = calendar.session_of(frame)
    _, is_session = calendar.locate(day)
    return ~is_session


def off_calendar(frame: pd.DataFrame, calendar: TradingCalendar | None) -> Finding:
    """Find bars whose session date is not a session of the calendar (a weekend, a holiday, a closure).

    Such a bar is not a price the exchange made: a vendor's stray bar, a date stamped in the wrong
    time zone, or a series from another market. Without a calendar nothing is flagged.
    """
    flagged = off_calendar_mask(frame, calendar)
    details: dict[str, str] = {}
    if flagged.any():
        assert calendar is not None  # nothing is flagged without one
        day, _ = calendar.session_of(frame)
        symbols = frame["symbol"].to_numpy(dtype=object)
        for symbol in pd.unique(symbols[flagged]):
            days = pd.DatetimeIndex(np.unique(day[flagged & (symbols == symbol)]))
            shown = ", ".join(f"{d.date().isoformat()} ({d.day_name()[:3]})" for d in days[:3])
            details[str(symbol)] = f"bars on {len(days)} day(s) that are not {calendar.name} sessions: {shown}" + (
                " ..." if len(days) > 3 else ""
            )
    return _finding(OFF_CALENDAR, "error", frame, flagged, details)


def calendar_gaps(frame: pd.DataFrame, calendar: TradingCalendar | None = None) -> Finding:
    """Find the dates a symbol lacks between its first and last bar (see :func:`missing_bars`).

    Returns
    -------
    Finding
        One item per missing ``(symbol, date)``.
    """
    missing = missing_bars(frame, calendar)
    return Finding(CALENDAR_GAP, "error", missing.symbols, missing.dates, dict(missing.detail))
