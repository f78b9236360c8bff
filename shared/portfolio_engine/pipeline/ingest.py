"""IngestPrices: fetch only what the lake lacks and upsert it into the raw zone."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta

import pandas as pd

from portfolio_engine.adapters.lake import Coverage, ParquetLake
from portfolio_engine.contracts import IngestInput, IngestOutput
from portfolio_engine.contracts.tasks import ValidationMode
from portfolio_engine.data.schema import conform_bars, empty_bars
from portfolio_engine.exceptions import EmptyDataError
from portfolio_engine.ports import MarketDataSource

logger = logging.getLogger(__name__)


def plan_fetches(
    symbols: Sequence[str],
    held: Mapping[str, Coverage],
    start: date | None,
    end: date | None,
    interval: str,
) -> tuple[dict[date | None, list[str]], list[str]]:
    """Group symbols by the first date they need; list those already up to date.

    A symbol the lake already holds (from ``start`` or earlier) is fetched from the day after its last
    daily bar, or from its last day for intraday bars (the overlap is deduplicated on write).
    """
    plan: dict[date | None, list[str]] = defaultdict(list)
    up_to_date: list[str] = []
    for symbol in symbols:
        if symbol in held and (start is None or start >= held[symbol].first_date):
            last = held[symbol].last_date
            first_needed = last + timedelta(days=1) if interval == "1d" else last
            if start is not None:
                first_needed = max(first_needed, start)
            if end is not None and first_needed > end:
                up_to_date.append(symbol)
                continue
            plan[first_needed].append(symbol)
        else:
            plan[start].append(symbol)
    return dict(plan), up_to_date


def ingest_prices(
    task: IngestInput,
    *,
    source: MarketDataSource,
    lake: ParquetLake,
    default_universe: Sequence[str],
    default_policy: ValidationMode,
    reference_tables: Mapping[str, Callable[[], pd.DataFrame]] | None = None,
) -> IngestOutput:
    """Fetch the bars the raw zone lacks for the run's universe and benchmarks, and upsert them.

    Idempotent per (source, symbols, date range): a second call with the same request fetches nothing
    new and writes nothing. ``reference_tables`` (factors, yield curve) are written once if absent.

    Raises
    ------
    DataSourceError, UnknownSymbolError
        From the source, when a symbol the lake does not hold cannot be fetched.
    """
    request = task.request
    universe = list(request.symbols or default_universe)
    symbols = universe + [b for b in request.benchmarks if b not in universe]
    held = {c.symbol: c for c in lake.inventory(source.name, zone="raw", interval=request.interval)}
    plan, up_to_date = plan_fetches(symbols, held, request.start, request.end, request.interval)

    frames = []
    for first_needed, group in plan.items():
        try:
            bars = source.fetch(group, start=first_needed, end=request.end, interval=request.interval)
        except EmptyDataError:
            if not set(group) <= held.keys():
                raise
            up_to_date.extend(group)
            continue
        up_to_date.extend(s for s in group if s in held and s not in set(bars["symbol"]))
        frames.append(bars)
    fetched = conform_bars(pd.concat(frames, ignore_index=True)) if frames else empty_bars()
    result = lake.write_bars(fetched, source.name, zone="raw", interval=request.interval)

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
        up_to_date=sorted(set(up_to_date)),
        reference_tables=written_refs,
    )
