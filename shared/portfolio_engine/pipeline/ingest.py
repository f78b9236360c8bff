"""IngestPrices: fetch only what the lake lacks (plus a short overlap) and upsert it into the raw zone."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from portfolio_engine.contracts import IngestInput, IngestOutput
from portfolio_engine.contracts.tasks import ValidationMode
from portfolio_engine.data.schema import conform_bars, empty_bars
from portfolio_engine.exceptions import EmptyDataError
from portfolio_engine.ports import Coverage, Lake, MarketDataSource, ReferenceLoaders

logger = logging.getLogger(__name__)

#: Days re-read before a symbol's last stored bar: a provisional bar is corrected, and a source that
#: restated its adjusted history (a split or dividend since the last ingest) is noticed.
OVERLAP_DAYS = 7
#: Relative change of a stored adj_close that counts as a restatement.
RESTATEMENT_TOLERANCE = 1e-6


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


def restated_symbols(fetched: pd.DataFrame, stored: pd.DataFrame) -> list[str]:
    """Symbols whose re-fetched adj_close differs from the stored one on a common bar."""
    common = fetched.merge(stored, on=["symbol", "date"], suffixes=("", "_stored"))
    if common.empty:
        return []
    changed = ~np.isclose(common["adj_close"], common["adj_close_stored"], rtol=RESTATEMENT_TOLERANCE, atol=0)
    return sorted(set(common.loc[changed, "symbol"].astype(str)))


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
    whole history is fetched again and replaced. ``reference_tables`` are written once if absent.

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

    overlap = fetched[fetched["symbol"].isin(list(held))]
    restated: list[str] = []
    if len(overlap):
        stored = lake.read_bars(
            source.name,
            sorted(set(overlap["symbol"])),
            overlap["date"].min(),
            overlap["date"].max(),
            zone="raw",
            interval=request.interval,
        )
        restated = restated_symbols(overlap, stored)
    if restated:
        logger.warning("source restated adjusted prices of %s: fetching their whole history", restated)
        first = min(held[s].first_date for s in restated)
        history = conform_bars(source.fetch(restated, start=first, end=request.end, interval=request.interval))
        fetched = pd.concat([fetched[~fetched["symbol"].isin(restated)], history], ignore_index=True)
    result = lake.write_bars(fetched, source.name, zone="raw", interval=request.interval)

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

    logger.info("ingested", extra={"run_id": task.run_id, "source": source.name, **result.to_dict()})
    return IngestOutput(
        run_id=task.run_id,
        source=source.name,
        interval=request.interval,
        symbols=symbols,
        index_symbol=request.benchmarks[0] if request.benchmarks else None,
        validation_policy=request.validation_policy or default_policy,
        rows_fetched=len(fetched),
        rows_new=result.rows_new,
        rows_updated=result.rows_updated,
        rows_unchanged=result.rows_unchanged,
        first_date=fetched["date"].min().date() if len(fetched) else None,
        last_date=fetched["date"].max().date() if len(fetched) else None,
        up_to_date=up_to_date,
        restated=restated,
        reference_tables=written_refs,
    )
