"""Lake reads: a pushed-down range/universe read against a full scan filtered in pandas, same run.

Writes the bundled 20-stock set (8,313 days) to a temporary lake, then times reading one year of
three symbols both ways. Prints a table and, last, exactly:
``RESULT pushdown_vs_full_scan=<x> incremental_vs_full_write=<y>``
(x, y: how many times faster the first is than the second).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import pandas as pd

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, BundledSource


def best_of(fn: Callable[[], object], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    bars = BundledSource().fetch(DEFAULT_UNIVERSE)
    head, tail = bars[bars.date < "2022-12-01"], bars[bars.date >= "2022-12-01"]
    with tempfile.TemporaryDirectory() as tmp:
        full_times, incremental_times = [], []
        for i in range(3):
            t0 = time.perf_counter()
            ParquetLake(f"{tmp}/full-{i}").write_bars(bars, "b", zone="raw")
            full_times.append(time.perf_counter() - t0)
            lake = ParquetLake(f"{tmp}/incremental-{i}")
            lake.write_bars(head, "b", zone="raw")
            t0 = time.perf_counter()
            assert lake.write_bars(tail, "b", zone="raw").rows_new == len(tail)
            incremental_times.append(time.perf_counter() - t0)
        full_write, incremental = min(full_times), min(incremental_times)
        symbols, start, end = ["AAPL", "JPM", "XOM"], "2008-01-01", "2008-12-31"
        pushdown = best_of(lambda: lake.read_bars("b", symbols, start, end, zone="raw"))

        def full_scan() -> pd.DataFrame:
            frame = lake.read_bars("b", zone="raw")
            return frame[frame.symbol.isin(symbols) & frame.date.between(start, end)]

        scan = best_of(full_scan)
        assert len(full_scan()) == len(lake.read_bars("b", symbols, start, end, zone="raw"))
    print(f"{'operation':<42}{'seconds':>10}")
    for label, seconds in [
        (f"write {len(bars):,} bars (empty lake)", full_write),
        (f"upsert {len(tail):,} new bars (incremental)", incremental),
        ("read 3 symbols x 1 year (pushdown)", pushdown),
        ("read all, filter in pandas", scan),
    ]:
        print(f"{label:<42}{seconds:>10.4f}")
    print(
        f"RESULT pushdown_vs_full_scan={scan / pushdown:.1f} incremental_vs_full_write={full_write / incremental:.1f}"
    )


if __name__ == "__main__":
    main()
