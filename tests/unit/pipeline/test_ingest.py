"""IngestPrices' planning and restatement handling, on a real lake with an in-memory source."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.user_files import UserFileSource
from portfolio_engine.contracts import IngestInput
from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import EmptyDataError
from portfolio_engine.pipeline.ingest import (
    OVERLAP_DAYS,
    ingest_prices,
    plan_fetches,
    restated_symbols,
    screen_restatements,
)
from portfolio_engine.ports import Coverage, MarketDataSource

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


def _ingest(source: MarketDataSource, lake: ParquetLake, run_id: str = "t", **request) -> dict:
    task = IngestInput(run_id=run_id, request={"source": "bundled", "benchmarks": [], **request})
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
    # and every value it replaced is still readable: the earlier version of each restated bar
    march = bars[bars.date <= "2020-03-31"]
    assert out["rows_updated"] == out["rows_superseded"] == len(march)
    earlier = lake.raw_history("memory", ["A"], end="2020-03-31").query("not current")
    np.testing.assert_array_equal(earlier["adj_close"], march["adj_close"])


# --------------------------------------------------------------------------- bad restatements
GOOD_FILE = _bars(["A", "B"], "2021-01-04", "2021-03-31").assign(volume=1e6).reset_index(drop=True)


def _file(path: Path, bars: pd.DataFrame) -> UserFileSource:
    """A user file source over ``bars`` written as a real long CSV (blank cells for NaN)."""
    conform_bars(bars).to_csv(path, index=False, date_format="%Y-%m-%d")
    return UserFileSource(str(path))


def _file_ingest(source: UserFileSource, lake: ParquetLake, run_id: str) -> dict:
    return _ingest(source, lake, run_id=run_id, symbols=["A", "B"])


def test_restated_symbols_ignores_broken_prices() -> None:
    stored = conform_bars(_bars(["A", "B"], "2020-01-01", "2020-01-10"))
    fetched = stored.copy()
    fetched.loc[[0, 1, 2], "adj_close"] = [-1.0, 0.0, np.nan]  # broken, not restated
    assert restated_symbols(fetched, stored) == []
    # and a valid price replacing a broken stored one is a correction of one bar, not a restatement
    assert restated_symbols(stored, fetched) == []


def test_screen_restatements_refuses_only_bad_prices_replacing_valid_ones() -> None:
    stored = conform_bars(_bars(["A"], "2020-01-01", "2020-01-10").assign(open=50.0, high=60.0, low=40.0))
    stored.loc[5, "close"] = np.nan  # a bar stored broken (before validation saw it)
    fetched = stored.copy()
    fetched.loc[0, ["close", "adj_close"]] = -1.0  # refused
    fetched.loc[1, "adj_close"] = 0.0  # refused
    fetched.loc[2, "high"] = np.inf  # refused: a given OHLC price must be positive and finite too
    fetched.loc[3, "open"] = np.nan  # refused: some but not all of open/high/low
    fetched.loc[4, ["open", "high", "low"]] = np.nan  # accepted: a close-only bar
    fetched.loc[5, "close"] = -2.0  # accepted: the stored bar is no better (validation will judge it)
    fetched.loc[6, "close"] = 77.0  # accepted: a valid correction
    accepted, refused = screen_restatements(fetched, stored)
    assert refused["date"].tolist() == stored["date"].iloc[:4].tolist()
    assert accepted.index.tolist() == list(range(4, len(stored)))
    assert refused.loc[0, "reason"].startswith("close, adj_close not a positive finite price")
    assert refused.loc[0, "stored_close"] == stored.loc[0, "close"] and refused.loc[3, "reason"].startswith("open ")


@pytest.mark.parametrize("bad", [-1.0, 0.0, np.nan], ids=["negative", "zero", "nan"])
def test_a_good_stored_price_survives_a_bad_file(tmp_path: Path, bad: float) -> None:
    # Given a file ingested cleanly
    lake = ParquetLake(str(tmp_path / "lake"))
    good = _file_ingest(_file(tmp_path / "good.csv", GOOD_FILE), lake, "run-good")
    assert good["rows_new"] == len(GOOD_FILE)
    before = lake.read_bars("file", zone="raw")
    # When the file is re-ingested with a broken price on three days the lake holds
    broken = GOOD_FILE.copy()
    hit = broken.index[(broken.symbol == "B")][[10, 11, 30]]
    broken.loc[hit, "close"] = bad
    out = _file_ingest(_file(tmp_path / "bad.csv", broken), lake, "run-bad")
    # Then the stored prices are untouched: not replaced, not restated, not even a new version
    pd.testing.assert_frame_equal(lake.read_bars("file", zone="raw"), before)
    assert (out["rows_updated"], out["rows_superseded"], out["restated"]) == (0, 0, [])
    assert out["rows_quarantined"] == 3 and out["rows_unchanged"] == len(GOOD_FILE) - 3
    assert lake.raw_history("file")["current"].all()
    # and the refused bars are kept in quarantine and named in the report with the value kept
    assert out["quarantine_key"] == "quarantine/prices/source=file/run-bad.parquet"
    quarantined = pd.read_parquet(tmp_path / "lake" / out["quarantine_key"])
    assert quarantined["date"].tolist() == broken.loc[hit, "date"].tolist()
    report = lake.get_json(out["report_key"])
    assert out["report_key"] == "reports/ingest/run-bad.json" and report["rows_quarantined"] == 3
    first = report["quarantined"][0]
    assert (first["symbol"], first["date"]) == ("B", f"{broken.loc[hit[0], 'date']:%Y-%m-%d}")
    assert first["kept"]["close"] == pytest.approx(GOOD_FILE.loc[hit[0], "close"])
    assert first["rejected"]["close"] == (None if np.isnan(bad) else bad)


def test_a_genuine_restatement_next_to_a_bad_price_updates_one_and_quarantines_the_other(tmp_path: Path) -> None:
    # Given a clean file, then one where A's close of one day is corrected and of another made negative
    lake = ParquetLake(str(tmp_path / "lake"))
    _file_ingest(_file(tmp_path / "good.csv", GOOD_FILE), lake, "run-good")
    revised = GOOD_FILE.copy()
    revised.loc[5, "close"] *= 1.1
    revised.loc[6, "close"] = -5.0
    out = _file_ingest(_file(tmp_path / "revised.csv", revised), lake, "run-revised")
    # Then the correction is a restatement and is stored, the earlier value kept as history ...
    assert out["restated"] == ["A"] and (out["rows_updated"], out["rows_superseded"]) == (1, 1)
    versions = lake.raw_history("file", ["A"], revised.loc[5, "date"], revised.loc[5, "date"])
    assert versions["close"].tolist() == pytest.approx([GOOD_FILE["close"].iloc[5], revised.loc[5, "close"]])
    assert versions["ingest_id"].tolist() == ["run-good", "run-revised"]
    # ... while the negative price, re-fetched with the whole history, is still quarantined
    assert out["rows_quarantined"] == 1
    kept = lake.read_bars("file", ["A"], revised.loc[6, "date"], revised.loc[6, "date"], zone="raw")
    assert kept["close"].tolist() == [pytest.approx(GOOD_FILE["close"].iloc[6])]


def test_a_bad_price_on_a_new_day_is_stored_for_validation_to_judge(tmp_path: Path) -> None:
    lake = ParquetLake(str(tmp_path / "lake"))
    _file_ingest(_file(tmp_path / "good.csv", GOOD_FILE[GOOD_FILE.date < "2021-03-01"]), lake, "run-1")
    later = GOOD_FILE.copy()
    new_day = later.index[(later.symbol == "A") & (later.date == "2021-03-01")]
    later.loc[new_day, "close"] = -1.0
    out = _file_ingest(_file(tmp_path / "later.csv", later), lake, "run-2")
    assert out["rows_quarantined"] == 0 and out["quarantine_key"] is None
    assert lake.read_bars("file", ["A"], "2021-03-01", "2021-03-01", zone="raw")["close"].tolist() == [-1.0]


def test_an_identical_re_ingest_changes_nothing(tmp_path: Path) -> None:
    lake = ParquetLake(str(tmp_path / "lake"))
    source = _file(tmp_path / "good.csv", GOOD_FILE)
    _file_ingest(source, lake, "run-1")
    raw = tmp_path / "lake/raw"
    files = {p: p.stat().st_mtime_ns for p in raw.rglob("*.parquet")}
    out = _file_ingest(source, lake, "run-2")
    assert (out["rows_new"], out["rows_updated"], out["rows_superseded"], out["rows_quarantined"]) == (0, 0, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in raw.rglob("*.parquet")} == files
    assert not (raw / "history").exists() and not (tmp_path / "lake/quarantine").exists()


def test_blank_cells_of_a_wide_file_are_counted_and_reported_and_the_stored_prices_kept(tmp_path: Path) -> None:
    # Given a wide file ingested cleanly, then again with two blank cells inside B's history
    lake = ParquetLake(str(tmp_path / "lake"))
    wide = GOOD_FILE.pivot(index="date", columns="symbol", values="close")
    wide.to_csv(tmp_path / "wide.csv", date_format="%Y-%m-%d")
    _file_ingest(UserFileSource(str(tmp_path / "wide.csv")), lake, "run-1")
    before = lake.read_bars("file", zone="raw")
    wide.iloc[[3, 4], 1] = np.nan
    wide.to_csv(tmp_path / "holes.csv", date_format="%Y-%m-%d")
    out = _file_ingest(UserFileSource(str(tmp_path / "holes.csv")), lake, "run-2")
    # Then the two rows are counted as dropped and each is named in the report; nothing stored changed
    assert out["rows_dropped"] == 2 and out["rows_quarantined"] == 0
    report = lake.get_json(out["report_key"])
    assert report["dropped_by_reason"] == {"no price": 2}
    assert [(r["row"], r["symbol"], r["date"]) for r in report["dropped"]] == [
        (4, "B", f"{wide.index[3]:%Y-%m-%d}"),
        (5, "B", f"{wide.index[4]:%Y-%m-%d}"),
    ]
    pd.testing.assert_frame_equal(lake.read_bars("file", zone="raw"), before)


def test_rows_without_a_date_or_symbol_from_a_source_are_counted_not_written(tmp_path: Path) -> None:
    lake = ParquetLake(str(tmp_path / "lake"))
    bars = conform_bars(_bars(["A"], "2020-01-01", "2020-01-10"))
    bars.loc[2, "date"] = pd.NaT
    out = _ingest(MemorySource(bars), lake, run_id="run-keyless")
    assert out["rows_dropped"] == 1 and out["rows_new"] == len(bars) - 1 and out["rows_fetched"] == len(bars)
    assert lake.get_json(out["report_key"])["dropped"] == [
        {"row": None, "symbol": "A", "date": None, "reason": "no date"}
    ]
