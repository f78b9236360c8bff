"""IngestPrices' planning and restatement handling, on a real lake with an in-memory source."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.contracts import IngestInput
from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import EmptyDataError
from portfolio_engine.pipeline.ingest import OVERLAP_DAYS, ingest_prices, plan_fetches, restated_symbols
from portfolio_engine.ports import Coverage

D = date


class MemorySource:
    """A source over a fixed bar table that records what it was asked for."""

    name = "memory"

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = conform_bars(bars)
        self.calls: list[tuple[list[str], date | None, date | None]] = []

    def fetch(
        self, symbols: Sequence[str], start: date | None = None, end: date | None = None, interval: str = "1d"
    ) -> pd.DataFrame:
        self.calls.append((list(symbols), start, end))
        b = self.bars[self.bars.symbol.isin(symbols)]
        if start:
            b = b[b.date >= pd.Timestamp(start)]
        if end:
            b = b[b.date <= pd.Timestamp(end)]
        if b.empty:
            raise EmptyDataError("nothing")
        return b.reset_index(drop=True)


def _bars(symbols: list[str], start: str, end: str) -> pd.DataFrame:
    dates = pd.bdate_range(start, end)
    rng = np.random.default_rng(1)
    return pd.concat(
        [
            pd.DataFrame({"date": dates, "symbol": s, "close": 50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates))))})
            for s in symbols
        ]
    )


def _ingest(source: MemorySource, lake: ParquetLake, **request) -> dict:
    task = IngestInput(run_id="t", request={"source": "bundled", "benchmarks": [], **request})
    return ingest_prices(task, source=source, lake=lake, default_universe=["A"], default_policy="reject").model_dump()


HELD = {"A": Coverage("A", D(2020, 1, 2), D(2020, 3, 31), 64)}


@pytest.mark.parametrize(
    ("start", "end", "plan", "nothing_new"),
    [
        (None, None, {D(2020, 3, 31) - timedelta(days=OVERLAP_DAYS): ["A"]}, []),
        # a later start never skips past the held range: no hole between March and 2021
        (D(2021, 1, 1), None, {D(2020, 3, 31) - timedelta(days=OVERLAP_DAYS): ["A"]}, []),
        # a start before the held range fetches the whole request
        (D(2019, 6, 1), None, {D(2019, 6, 1): ["A"]}, []),
        # a request inside the held range needs nothing
        (D(2020, 2, 1), D(2020, 3, 1), {}, ["A"]),
    ],
)
def test_plan_fetches(start, end, plan, nothing_new) -> None:
    assert plan_fetches(["A"], HELD, start, end) == (plan, nothing_new)


def test_a_symbol_not_held_is_fetched_over_the_request() -> None:
    assert plan_fetches(["B"], HELD, D(2020, 1, 1), None) == ({D(2020, 1, 1): ["B"]}, [])


def test_a_later_start_fills_the_gap_instead_of_leaving_a_hole(tmp_path: Path) -> None:
    lake, source = ParquetLake(str(tmp_path)), MemorySource(_bars(["A"], "2020-01-01", "2021-06-30"))
    _ingest(source, lake, start="2020-01-02", end="2020-03-31")
    _ingest(source, lake, start="2021-01-01", end="2021-06-30")
    stored = lake.read_bars("memory", zone="raw")
    assert len(stored) == len(pd.bdate_range("2020-01-02", "2021-06-30"))


def test_restated_symbols_compares_adjusted_closes_on_common_bars() -> None:
    stored = conform_bars(_bars(["A", "B"], "2020-01-01", "2020-01-10"))
    fetched = stored.copy()
    fetched.loc[fetched.symbol == "B", "adj_close"] *= 0.98  # a dividend re-adjusted B's history
    assert restated_symbols(fetched, stored) == ["B"]
    assert restated_symbols(stored, stored) == []


def test_a_restated_history_is_fetched_again_and_replaced(tmp_path: Path) -> None:
    # Given A ingested through March
    bars = conform_bars(_bars(["A"], "2020-01-01", "2020-06-30"))
    lake = ParquetLake(str(tmp_path))
    _ingest(MemorySource(bars[bars.date <= "2020-03-31"]), lake)
    # When the source now serves the history adjusted for a 2:1 split in May
    split = bars.copy()
    split.loc[split.date < "2020-05-01", "adj_close"] /= 2
    source = MemorySource(split)
    out = _ingest(source, lake)
    # Then the overlap revealed the restatement and the whole history was replaced
    assert out["restated"] == ["A"]
    assert source.calls[-1] == (["A"], D(2020, 1, 1), None)
    stored = lake.read_bars("memory", zone="raw")
    pd.testing.assert_series_equal(stored["adj_close"], split["adj_close"].reset_index(drop=True))
