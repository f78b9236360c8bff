"""IngestPrices: fetch only what the lake lacks (plus a short overlap) and upsert it into the raw zone.

Nothing is lost and nothing is silent. The raw zone keeps the earlier version of every value an
ingest changes (``Lake.raw_history``). A fetched bar with a price the validation rules reject (NaN,
infinite, zero or negative) for a (symbol, date) whose stored bar is valid is not a restatement: it
is not stored but kept in ``quarantine/`` and named in the ingest report,
``reports/ingest/<run id>.json``, with the value kept. Rows the source could not make bars of (a
user file's blank price cells or rows without a date) and bars without a date or symbol are
counted and listed there too.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from portfolio_engine.contracts import IngestInput, IngestOutput
from portfolio_engine.contracts.tasks import ValidationMode
from portfolio_engine.data.schema import BAR_COLUMNS, PRICE_COLUMNS, conform_bars, empty_bars
from portfolio_engine.exceptions import EmptyDataError
from portfolio_engine.ports import Coverage, Lake, MarketDataSource, ReferenceLoaders

logger = logging.getLogger(__name__)

#: Days re-read before a symbol's last stored bar: a provisional bar is corrected, and a source that
#: restated its adjusted history (a split or dividend since the last ingest) is noticed.
OVERLAP_DAYS = 7
#: Relative change of a stored adj_close that counts as a restatement.
RESTATEMENT_TOLERANCE = 1e-6
#: Rows listed one by one in an ingest report (its counts are always complete, and the quarantine
#: object holds every quarantined row).
REPORT_ROW_LIMIT = 1000
_DROPPED_COLUMNS = ("row", "symbol", "date", "reason")


def plan_fetches(
    symbols: Sequence[str], held: Mapping[str, Coverage], start: date | None, end: date | None, *, daily: bool = True
) -> tuple[dict[date | None, list[str]], list[str]]:
    """Group symbols by the first day to fetch; list those the request needs nothing new for.

    A symbol the lake holds from ``start`` or earlier is fetched from ``OVERLAP_DAYS`` before its
    last bar, never later, so a request starting after the held range cannot leave a hole. A symbol
    not held, or a request starting before the held range, is fetched over the whole request (what
    is already held is deduplicated on write). A request ending before the last held day needs
    nothing new; for intraday bars the last held day itself may still be partial, so it is fetched.
    """
    plan: dict[date | None, list[str]] = defaultdict(list)
    nothing_new: list[str] = []
    for symbol in symbols:
        coverage = held.get(symbol)
        if coverage is None or (start is not None and start < coverage.first_date):
            plan[start].append(symbol)
        elif end is not None and (end <= coverage.last_date if daily else end < coverage.last_date):
            nothing_new.append(symbol)
        else:
            plan[coverage.last_date - timedelta(days=OVERLAP_DAYS)].append(symbol)
    return dict(plan), nothing_new


def invalid_prices(bars: pd.DataFrame) -> pd.DataFrame:
    """Which prices of each bar the validation rules reject (``non_finite``, ``non_positive``).

    ``close`` and ``adj_close`` must be finite and positive. ``open``, ``high`` and ``low`` may all
    be missing (a close-only source) but, when any is given, each must be finite and positive.

    Returns
    -------
    DataFrame of shape (n_bars, 5)
        One boolean column per price column, indexed like ``bars``.
    """
    prices = bars[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    bad = ~(np.isfinite(prices) & (prices > 0))
    ohl = [PRICE_COLUMNS.index(c) for c in ("open", "high", "low")]
    bad[:, ohl] &= ~np.isnan(prices[:, ohl]).all(axis=1, keepdims=True)
    return pd.DataFrame(bad, index=bars.index, columns=list(PRICE_COLUMNS))


def screen_restatements(fetched: pd.DataFrame, stored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split fetched bars into those that may be stored and those that would break a valid stored bar.

    A fetched bar is refused when one of its prices is invalid (:func:`invalid_prices`) and the
    stored bar of the same (symbol, date) is valid: that is a broken file or feed, not a correction.
    A bad price for a new date, or replacing a stored bar that is itself invalid, is left to
    validation.

    Returns
    -------
    accepted : DataFrame
        ``fetched`` without the refused bars (same index).
    refused : DataFrame
        The refused bars (canonical columns), with ``reason`` and the stored prices
        (``stored_<column>``).
    """
    columns = [*BAR_COLUMNS, "reason", *(f"stored_{c}" for c in PRICE_COLUMNS)]
    none = pd.DataFrame(columns=columns)
    if fetched.empty or stored.empty:
        return fetched, none
    keyed = fetched.reset_index(names="_at")
    common = keyed.merge(
        stored[["symbol", "date", *PRICE_COLUMNS]].rename(columns={c: f"stored_{c}" for c in PRICE_COLUMNS}),
        on=["symbol", "date"],
    )
    if common.empty:
        return fetched, none
    bad_new = invalid_prices(common)
    bad_stored = invalid_prices(
        common[[f"stored_{c}" for c in PRICE_COLUMNS]].set_axis(list(PRICE_COLUMNS), axis=1)
    ).any(axis=1)
    refuse = bad_new.any(axis=1) & ~bad_stored
    if not refuse.any():
        return fetched, none
    refused = common.loc[refuse].copy()
    names = bad_new.loc[refuse].apply(lambda row: ", ".join(c for c in PRICE_COLUMNS if row[c]), axis=1)
    refused["reason"] = names + " not a positive finite price; the stored bar is valid"
    accepted = fetched.drop(index=pd.Index(refused["_at"]))
    return accepted, refused[columns].reset_index(drop=True)


def restated_symbols(fetched: pd.DataFrame, stored: pd.DataFrame) -> list[str]:
    """Symbols whose re-fetched adj_close differs from the stored one on a common bar.

    Only valid prices on both sides count: a NaN, zero or negative price is a broken bar (see
    :func:`screen_restatements`), never evidence that the source restated a symbol's history.
    """
    common = fetched.merge(stored, on=["symbol", "date"], suffixes=("", "_stored"))
    if common.empty:
        return []
    new, old = common["adj_close"].astype("float64"), common["adj_close_stored"].astype("float64")
    valid = np.isfinite(new) & (new > 0) & np.isfinite(old) & (old > 0)
    changed = valid & ~np.isclose(new, old, rtol=RESTATEMENT_TOLERANCE, atol=0)
    return sorted(set(common.loc[changed, "symbol"].astype(str)))


def _drop_keyless(bars: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove bars without a date or symbol (the lake cannot place them) and say which."""
    no_date, no_symbol = bars["date"].isna(), bars["symbol"].isna()
    keyless = no_date | no_symbol
    if not keyless.any():
        return bars, pd.DataFrame(columns=list(_DROPPED_COLUMNS))
    dropped = bars.loc[keyless, ["symbol", "date"]].assign(
        row=None, reason=np.where(no_date[keyless], "no date", "no symbol")
    )
    return bars.loc[~keyless], dropped[list(_DROPPED_COLUMNS)]


def _source_drops(
    source: MarketDataSource, symbols: Sequence[str], start: date | None, end: date | None
) -> pd.DataFrame:
    """Rows the source read but could not make bars of, for the requested symbols and range.

    A source that drops rows (the user-file source) lists them as ``dropped_rows``, a DataFrame
    with columns ``row``, ``symbol``, ``date`` and ``reason``; a row without a symbol or date counts
    for every request.
    """
    dropped = getattr(source, "dropped_rows", None)
    if not isinstance(dropped, pd.DataFrame) or dropped.empty:
        return pd.DataFrame(columns=list(_DROPPED_COLUMNS))
    keep = dropped["symbol"].isna() | dropped["symbol"].isin(list(symbols))
    dates = pd.to_datetime(dropped["date"])
    if start is not None:
        keep &= dates.isna() | (dates >= pd.Timestamp(start))
    if end is not None:
        keep &= dates.isna() | (dates < pd.Timestamp(end) + pd.Timedelta(days=1))
    return dropped.loc[keep, list(_DROPPED_COLUMNS)]


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Rows as JSON-ready dicts: ISO dates, None for missing values."""

    def plain(value: object) -> object:
        if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat() if value != value.normalize() else value.date().isoformat()
        return value.item() if isinstance(value, np.generic) else value

    rows = frame.head(REPORT_ROW_LIMIT).to_dict(orient="records")
    return [{str(k): plain(v) for k, v in row.items()} for row in rows]


def ingest_prices(
    task: IngestInput,
    *,
    source: MarketDataSource,
    lake: Lake,
    default_universe: Sequence[str],
    default_policy: ValidationMode,
    reference_tables: ReferenceLoaders | None = None,
) -> IngestOutput:
    """Fetch the bars the raw zone lacks for the run's universe and benchmarks, and upsert them.

    Idempotent per (source, symbols, date range): a second call re-reads only the overlap and writes
    nothing. When the overlap shows the source restated a symbol's adjusted prices, the symbol's
    whole history is fetched again and upserted (the earlier values stay in the raw zone's history).
    A fetched bar with an invalid price where the stored bar is valid is quarantined, not stored
    (:func:`screen_restatements`). The run's report, ``reports/ingest/<run id>.json``, counts every
    bar fetched, stored, quarantined or dropped. ``reference_tables`` are written once if absent.

    Raises
    ------
    DataSourceError, UnknownSymbolError
        From the source, when a symbol the lake does not hold cannot be fetched.
    """
    request = task.request
    universe = list(request.symbols or default_universe)
    symbols = universe + [b for b in request.benchmarks if b not in universe]
    held = {c.symbol: c for c in lake.inventory(source.name, zone="raw", interval=request.interval)}
    if getattr(source, "incremental", True):
        plan, nothing_new = plan_fetches(symbols, held, request.start, request.end, daily=request.interval == "1d")
    else:
        plan, nothing_new = {request.start: symbols}, []

    frames = []
    for first_needed, group in plan.items():
        try:
            frames.append(source.fetch(group, start=first_needed, end=request.end, interval=request.interval))
        except EmptyDataError:
            if not set(group) <= held.keys():
                raise
    fetched = conform_bars(pd.concat(frames, ignore_index=True)) if frames else empty_bars()
    dropped = [_source_drops(source, symbols, request.start, request.end)]
    fetched, keyless = _drop_keyless(fetched)

    overlap = fetched[fetched["symbol"].isin(list(held))]
    restated: list[str] = []
    refused = pd.DataFrame()
    if len(overlap):
        stored = lake.read_bars(
            source.name,
            sorted(set(overlap["symbol"])),
            overlap["date"].min(),
            overlap["date"].max(),
            zone="raw",
            interval=request.interval,
        )
        overlap, refused = screen_restatements(overlap, stored)
        restated = restated_symbols(overlap, stored)
    if restated:
        logger.warning("source restated adjusted prices of %s: fetching their whole history", restated)
        first = min(held[s].first_date for s in restated)
        history = conform_bars(source.fetch(restated, start=first, end=request.end, interval=request.interval))
        history, keyless_history = _drop_keyless(history)
        history, refused_history = screen_restatements(
            history, lake.read_bars(source.name, restated, zone="raw", interval=request.interval)
        )
        # The restated symbols' first answer is replaced by their whole history, screened the same way.
        fetched, keyless, refused = (
            pd.concat([frame[~frame["symbol"].isin(restated)], again], ignore_index=True)
            for frame, again in ((fetched, history), (keyless, keyless_history), (refused, refused_history))
        )
    rows_fetched = len(fetched) + len(keyless)
    if len(refused):
        fetched = fetched.merge(refused[["symbol", "date"]], on=["symbol", "date"], how="left", indicator=True)
        fetched = fetched.loc[fetched["_merge"] == "left_only", list(BAR_COLUMNS)]
    dropped_rows = pd.concat([d for d in (*dropped, keyless) if len(d)] or [keyless], ignore_index=True)

    quarantine_key = None
    if len(refused):
        quarantine_key = lake.write_quarantine(refused, source.name, ingest_id=task.run_id, interval=request.interval)
        logger.warning(
            "quarantined bars that would break valid stored ones",
            extra={"run_id": task.run_id, "rows": len(refused), "symbols": sorted(set(refused["symbol"].astype(str)))},
        )
    result = lake.write_bars(fetched, source.name, zone="raw", interval=request.interval, ingest_id=task.run_id)

    last_fetched = fetched.groupby("symbol")["date"].max() if len(fetched) else pd.Series(dtype="datetime64[ns]")
    up_to_date = sorted(
        set(nothing_new)
        | {s for s in held if s in symbols and (s not in last_fetched or last_fetched[s].date() <= held[s].last_date)}
    )
    written_refs = []
    for name, load in (reference_tables or {}).items():
        if not lake.exists(f"reference/{name}.parquet"):
            lake.write_reference(name, load())
            written_refs.append(name)

    report_key = f"reports/ingest/{task.run_id}.json"
    if len(dropped_rows):
        logger.warning(
            "rows dropped at ingest",
            extra={"run_id": task.run_id, "rows": len(dropped_rows), "by_reason": _by_reason(dropped_rows)},
        )
    output = IngestOutput(
        run_id=task.run_id,
        source=source.name,
        interval=request.interval,
        symbols=symbols,
        index_symbol=request.benchmarks[0] if request.benchmarks else None,
        validation_policy=request.validation_policy or default_policy,
        rows_fetched=rows_fetched,
        rows_new=result.rows_new,
        rows_updated=result.rows_updated,
        rows_unchanged=result.rows_unchanged,
        first_date=fetched["date"].min().date() if len(fetched) else None,
        last_date=fetched["date"].max().date() if len(fetched) else None,
        up_to_date=up_to_date,
        restated=restated,
        reference_tables=written_refs,
        rows_superseded=result.rows_superseded,
        rows_quarantined=len(refused),
        rows_dropped=len(dropped_rows),
        quarantine_key=quarantine_key,
        report_key=report_key,
    )
    lake.put_json(report_key, _report(output, refused, dropped_rows))
    logger.info("ingested", extra={"run_id": task.run_id, "source": source.name, **result.to_dict()})
    return output


def _by_reason(dropped: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in dropped["reason"].value_counts().sort_index().items()}


def _report(output: IngestOutput, refused: pd.DataFrame, dropped: pd.DataFrame) -> dict[str, object]:
    """The ingest report: the output's counts, then each quarantined and dropped row (up to the limit)."""
    quarantined = [
        {
            "symbol": row["symbol"],
            "date": row["date"],
            "reason": row["reason"],
            "rejected": {c: row[c] for c in PRICE_COLUMNS},
            "kept": {c: row[f"stored_{c}"] for c in PRICE_COLUMNS},
        }
        for row in _records(refused)
    ]
    return {
        **output.model_dump(mode="json"),
        "ingest_id": output.run_id,
        "dropped_by_reason": _by_reason(dropped) if len(dropped) else {},
        "quarantined": quarantined,
        "dropped": _records(dropped),
        "rows_listed_at_most": REPORT_ROW_LIMIT,
    }
