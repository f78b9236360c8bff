"""The lake behaves the same on a local folder and on S3 (moto's server over HTTP)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import EmptyDataError, LakeError


def _bars(symbols: list[str], start: str, periods: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=periods)
    frames = []
    for i, symbol in enumerate(symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, periods))) * (i + 1)
        frames.append(pd.DataFrame({"date": dates, "symbol": symbol, "close": close, "volume": 1e6}))
    return conform_bars(pd.concat(frames))


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> ParquetLake:
    if request.param == "local":
        return ParquetLake(str(tmp_path / "lake"))
    uri = request.getfixturevalue("s3_lake_uri")
    return ParquetLake(uri, endpoint_url=request.getfixturevalue("aws_env"))


def test_round_trip_preserves_every_value(lake: ParquetLake) -> None:
    # Given bars spanning three calendar years
    bars = _bars(["AAA", "BBB"], "2019-12-20", 300)
    # When they are written then read back
    result = lake.write_bars(bars, "test", zone="raw")
    back = lake.read_bars("test", zone="raw")
    # Then nothing is lost or altered, and one file per year was written
    assert result.rows_new == 600 and result.partitions_written == 3
    pd.testing.assert_frame_equal(back, bars, check_dtype=False)


def test_reingesting_an_overlapping_range_creates_no_duplicates(lake: ParquetLake) -> None:
    bars = _bars(["AAA"], "2020-01-01", 100)
    lake.write_bars(bars.iloc[:60], "test", zone="raw")
    # When an overlapping range (rows 40..99) is written
    result = lake.write_bars(bars.iloc[40:], "test", zone="raw")
    # Then only the 40 new dates are added and the 20 overlapping rows are unchanged
    assert (result.rows_new, result.rows_updated, result.rows_unchanged) == (40, 0, 20)
    back = lake.read_bars("test", zone="raw")
    assert len(back) == 100 and not back.duplicated(["symbol", "date"]).any()


def test_writing_the_same_bars_twice_writes_nothing(lake: ParquetLake) -> None:
    bars = _bars(["AAA", "BBB"], "2020-01-01", 50)
    lake.write_bars(bars, "test", zone="raw")
    again = lake.write_bars(bars, "test", zone="raw")
    assert again.partitions_written == 0 and again.rows_unchanged == 100


def test_a_revised_value_replaces_the_old_one(lake: ParquetLake) -> None:
    bars = _bars(["AAA"], "2020-01-01", 10)
    lake.write_bars(bars, "test", zone="raw")
    revised = bars.iloc[[3]].copy()
    revised["adj_close"] = 1.0
    result = lake.write_bars(revised, "test", zone="raw")
    back = lake.read_bars("test", zone="raw")
    assert result.rows_updated == 1
    assert back.loc[3, "adj_close"] == 1.0 and back.loc[4, "adj_close"] == bars.loc[4, "adj_close"]


def test_range_and_universe_reads_filter_exactly(lake: ParquetLake) -> None:
    bars = _bars(["AAA", "BBB", "CCC"], "2018-01-01", 800)
    lake.write_bars(bars, "test", zone="curated")
    got = lake.read_bars("test", ["BBB", "CCC"], "2019-03-01", "2019-06-30")
    want = bars[bars.symbol.isin(["BBB", "CCC"]) & bars.date.between("2019-03-01", "2019-06-30")]
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_dtype=False)


def test_zones_and_sources_are_kept_apart(lake: ParquetLake) -> None:
    lake.write_bars(_bars(["AAA"], "2020-01-01", 5), "one", zone="raw")
    lake.write_bars(_bars(["BBB"], "2020-01-01", 5), "two", zone="curated")
    assert lake.sources(zone="raw") == ["one"] and lake.sources(zone="curated") == ["two"]
    with pytest.raises(EmptyDataError, match="no curated prices from source 'one'"):
        lake.read_bars("one")


def test_inventory_counts_rows_per_symbol(lake: ParquetLake) -> None:
    lake.write_bars(_bars(["AAA", "BBB"], "2020-01-01", 30), "test", zone="raw")
    inv = lake.inventory("test", zone="raw")
    assert [(c.symbol, c.rows) for c in inv] == [("AAA", 30), ("BBB", 30)]
    assert inv[0].first_date == date(2020, 1, 1) and inv[0].last_date == date(2020, 2, 11)
    assert lake.inventory("nothing-here") == []


def test_features_and_json_documents_round_trip(lake: ParquetLake) -> None:
    feats = pd.DataFrame({"date": pd.bdate_range("2020-12-25", periods=10), "symbol": "AAA", "x": np.arange(10.0)})
    key = lake.write_features(feats, "abc123", {"x": 1})
    assert key == "features/version=abc123" and lake.feature_versions() == ["abc123"]
    back = lake.read_features("abc123", start="2021-01-01")
    assert back["x"].tolist() == feats.loc[feats.date >= "2021-01-01", "x"].tolist()
    assert lake.get_json("features/version=abc123/_spec.json")["spec"] == {"x": 1}


def test_duplicate_rows_in_one_write_are_refused(lake: ParquetLake) -> None:
    bars = _bars(["AAA"], "2020-01-01", 5)
    with pytest.raises(LakeError, match="duplicate"):
        lake.write_bars(pd.concat([bars, bars.iloc[[0]]]), "test", zone="raw")


def test_a_range_read_prunes_year_partitions(tmp_path: Path) -> None:
    # Given ten years of bars, one file per year
    lake = ParquetLake(str(tmp_path / "lake"))
    lake.write_bars(_bars(["AAA"], "2010-01-01", 2600), "test", zone="raw")
    dataset = ds.dataset(str(tmp_path / "lake/raw/prices/source=test"), partitioning="hive", format="parquet")
    # Then a one-year filter touches one fragment of the ten
    from portfolio_engine.adapters.lake import _scan_filter

    fragments = list(dataset.get_fragments(filter=_scan_filter(None, "2015-02-01", "2015-03-01")))
    assert len(list(dataset.get_fragments())) >= 10 and len(fragments) == 1


def test_an_unreachable_bucket_gives_a_lake_error(aws_env: str) -> None:
    lake = ParquetLake("s3://no-such-bucket-spe/lake", endpoint_url=aws_env)
    with pytest.raises(LakeError):
        lake.write_bars(_bars(["AAA"], "2020-01-01", 3), "test", zone="raw")


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(LakeError, match="Unsupported lake URI scheme"):
        ParquetLake("gs://bucket/lake")
