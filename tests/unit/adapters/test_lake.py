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


def test_features_round_trip_behind_their_manifest(lake: ParquetLake) -> None:
    feats = pd.DataFrame({"date": pd.bdate_range("2020-12-25", periods=10), "symbol": "AAA", "x": np.arange(10.0)})
    key = "version=abc/dataset=def"
    assert lake.write_features(feats, key, {"rows": 10}) == f"features/{key}"
    assert lake.feature_sets() == [key] and lake.feature_manifest(key) == {"rows": 10}
    back = lake.read_features(key, start="2021-01-01")
    assert back["x"].tolist() == feats.loc[feats.date >= "2021-01-01", "x"].tolist()
    # Rewriting replaces the whole set: no partition of the old one survives
    lake.write_features(feats.iloc[5:], key, {"rows": 5})
    assert len(lake.read_features(key)) == 5


def test_a_feature_set_without_its_manifest_is_not_read(lake: ParquetLake) -> None:
    feats = pd.DataFrame({"date": pd.bdate_range("2021-01-04", periods=3), "symbol": "AAA", "x": 1.0})
    lake.write_features(feats, "version=a/dataset=b", {"rows": 3})
    lake.fs.delete_file(f"{lake.root}/features/version=a/dataset=b/_manifest.json")  # as if a writer died
    assert lake.feature_sets() == []
    with pytest.raises(EmptyDataError, match="No complete feature set"):
        lake.read_features("version=a/dataset=b")


def test_replace_makes_the_write_the_whole_history_of_its_symbols(lake: ParquetLake) -> None:
    # Given two symbols over three years
    bars = _bars(["AAA", "BBB"], "2019-12-20", 300)
    lake.write_bars(bars, "test", zone="curated")
    # When AAA is written again as its whole history, without its first year and one later bar
    kept = bars[(bars.symbol == "AAA") & (bars.date >= "2020-01-01")].drop(index=bars.index[200])
    result = lake.write_bars(kept, "test", zone="curated", replace=["AAA"])
    # Then AAA's other rows are gone, in every partition, and BBB is untouched
    back = lake.read_bars("test")
    pd.testing.assert_frame_equal(
        back[back.symbol == "AAA"].reset_index(drop=True), kept.reset_index(drop=True), check_dtype=False
    )
    assert (back.symbol == "BBB").sum() == 300
    assert result.rows_deleted == 300 - len(kept) and result.rows_new == 0
    # and a symbol replaced by nothing (quarantined) loses its whole history
    gone = lake.write_bars(kept, "test", zone="curated", replace=["AAA", "BBB"])
    assert gone.rows_deleted == 300 and set(lake.read_bars("test").symbol) == {"AAA"}


def test_a_crashed_write_leaves_nothing_a_scan_reads(tmp_path: Path) -> None:
    lake = ParquetLake(str(tmp_path / "lake"))
    bars = _bars(["AAA"], "2020-01-01", 10)
    lake.write_bars(bars, "test", zone="raw")
    partition = tmp_path / "lake/raw/prices/source=test/year=2020"
    (partition / ".part-0.parquet.tmp-dead").write_bytes((partition / "part-0.parquet").read_bytes())
    assert len(lake.read_bars("test", zone="raw")) == 10


def test_an_end_day_includes_its_intraday_bars(lake: ParquetLake) -> None:
    stamps = pd.date_range("2020-01-02 14:30", periods=4, freq="1h")
    bars = conform_bars(pd.DataFrame({"date": stamps, "symbol": "AAA", "close": [1.0, 2.0, 3.0, 4.0]}))
    lake.write_bars(bars, "test", zone="raw", interval="1h")
    assert len(lake.read_bars("test", end=date(2020, 1, 2), zone="raw", interval="1h")) == 4


def test_duplicate_rows_in_one_write_are_refused(lake: ParquetLake) -> None:
    bars = _bars(["AAA"], "2020-01-01", 5)
    with pytest.raises(LakeError, match="duplicate"):
        lake.write_bars(pd.concat([bars, bars.iloc[[0]]]), "test", zone="raw")


def test_a_range_read_prunes_year_partitions(tmp_path: Path) -> None:
    # Given ten years of bars, one file per year
    lake = ParquetLake(str(tmp_path / "lake"))
    lake.write_bars(_bars(["AAA"], "2010-01-01", 2600), "test", zone="raw")
    dataset = ds.dataset(str(tmp_path / "lake/raw/prices/source=test"), partitioning="hive", format="parquet")
    # Then the lake's scan filter for a one-year range touches one fragment of the ten
    from portfolio_engine.adapters.lake import _scan_filter

    fragments = list(dataset.get_fragments(filter=_scan_filter(None, "2015-02-01", "2015-03-01")))
    assert len(list(dataset.get_fragments())) >= 10 and len(fragments) == 1
    assert len(lake.read_bars("test", start="2015-02-01", end="2015-03-01", zone="raw")) == 20


def test_an_unreachable_bucket_gives_a_lake_error(aws_env: str) -> None:
    lake = ParquetLake("s3://no-such-bucket-spe/lake", endpoint_url=aws_env)
    with pytest.raises(LakeError):
        lake.write_bars(_bars(["AAA"], "2020-01-01", 3), "test", zone="raw")


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(LakeError, match="Unsupported lake URI scheme"):
        ParquetLake("gs://bucket/lake")


def test_a_missing_document_is_a_lake_error_with_a_hint(lake: ParquetLake) -> None:
    with pytest.raises(LakeError, match="No object") as info:
        lake.get_json("reports/validation/none.json")
    assert "spe data ingest" in info.value.hint


def test_objects_are_stored_byte_for_byte_whatever_their_suffix(lake: ParquetLake) -> None:
    # pyarrow would gunzip on read / gzip on write a "*.gz" key by its suffix; the lake must not.
    import gzip

    payload = gzip.compress(b"model bytes")
    lake.put_bytes("models/x/model.tar.gz", payload)
    assert lake.get_bytes("models/x/model.tar.gz") == payload
