"""The lake behaves the same on a local folder and on S3 (moto's server over HTTP)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from portfolio_engine.adapters.lake import BAR_SCHEMA, ParquetLake
from portfolio_engine.data.schema import BAR_COLUMNS, conform_bars
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


def test_the_raw_zone_keeps_the_earlier_version_of_a_revised_value(lake: ParquetLake) -> None:
    # Given ten bars written by ingest "one", then one of them revised by ingest "two"
    bars = _bars(["AAA", "BBB"], "2020-12-24", 10)
    lake.write_bars(bars, "test", zone="raw", ingest_id="one")
    revised = bars[(bars.symbol == "AAA") & (bars.date == "2020-12-30")].assign(adj_close=1.0)
    result = lake.write_bars(revised, "test", zone="raw", ingest_id="two")
    # Then the current read has one bar per (symbol, date), with the new value
    current = lake.read_bars("test", zone="raw")
    assert len(current) == 20 and not current.duplicated(["symbol", "date"]).any()
    assert current.loc[(current.symbol == "AAA") & (current.date == "2020-12-30"), "adj_close"].tolist() == [1.0]
    # and the earlier value is kept, named by the ingest that wrote it and the one that replaced it
    assert (result.rows_updated, result.rows_superseded) == (1, 1)
    versions = lake.raw_history("test", ["AAA"], "2020-12-30", "2020-12-30")
    old = bars.loc[revised.index[0], "adj_close"]
    assert versions["adj_close"].tolist() == [old, 1.0]
    assert versions["ingest_id"].tolist() == ["one", "two"]
    assert versions["superseded_by"].tolist()[0] == "two" and pd.isna(versions["superseded_by"].iloc[1])
    assert versions["current"].tolist() == [False, True]
    assert versions["ingested_at"].iloc[0] <= versions["superseded_at"].iloc[0] == versions["ingested_at"].iloc[1]
    # and a bar never revised has exactly one version: the current one
    assert len(lake.raw_history("test")) == 21 and lake.raw_history("test", ["BBB"])["current"].all()


def test_a_value_revised_twice_keeps_both_earlier_versions_in_order(lake: ParquetLake) -> None:
    bars = _bars(["AAA"], "2020-01-01", 5)
    for ingest_id, value in [("one", None), ("two", 2.0), ("three", 3.0)]:
        lake.write_bars(bars if value is None else bars.assign(close=value), "test", zone="raw", ingest_id=ingest_id)
    versions = lake.raw_history("test", ["AAA"], "2020-01-02", "2020-01-02")
    assert versions["close"].tolist() == [bars.loc[1, "close"], 2.0, 3.0]
    assert versions["ingest_id"].tolist() == ["one", "two", "three"]
    assert versions["superseded_by"].tolist()[:2] == ["two", "three"]


def test_writing_the_same_bars_again_adds_no_version(lake: ParquetLake) -> None:
    bars = _bars(["AAA"], "2020-01-01", 20)
    lake.write_bars(bars, "test", zone="raw", ingest_id="one")
    again = lake.write_bars(bars, "test", zone="raw", ingest_id="two")
    assert (again.partitions_written, again.rows_superseded) == (0, 0)
    versions = lake.raw_history("test")
    assert len(versions) == 20 and set(versions["ingest_id"]) == {"one"} and versions["current"].all()


def test_a_raw_delete_keeps_the_deleted_bars_as_history(lake: ParquetLake) -> None:
    bars = _bars(["AAA"], "2020-01-01", 10)
    lake.write_bars(bars, "test", zone="raw", ingest_id="one")
    result = lake.write_bars(bars.iloc[2:], "test", zone="raw", replace=["AAA"], ingest_id="two")
    assert (result.rows_deleted, result.rows_superseded) == (2, 2) and len(lake.read_bars("test", zone="raw")) == 8
    gone = lake.raw_history("test", end="2020-01-02")
    assert gone["close"].tolist() == bars["close"].iloc[:2].tolist() and not gone["current"].any()


def test_a_retried_ingest_keeps_every_version_it_superseded(lake: ParquetLake) -> None:
    # The same ingest id writing twice (a retried task) adds to its history object, never overwrites it
    bars = _bars(["AAA"], "2020-01-01", 3)
    lake.write_bars(bars, "test", zone="raw", ingest_id="one")
    lake.write_bars(bars.assign(close=2.0), "test", zone="raw", ingest_id="retry")
    lake.write_bars(bars.assign(close=3.0), "test", zone="raw", ingest_id="retry")
    versions = lake.raw_history("test", ["AAA"], "2020-01-01", "2020-01-01")
    assert versions["close"].tolist() == [bars.loc[0, "close"], 2.0, 3.0]


def test_the_curated_zone_keeps_only_what_is_in_force(tmp_path: Path) -> None:
    lake = ParquetLake(str(tmp_path / "lake"))
    bars = _bars(["AAA"], "2020-01-01", 5)
    lake.write_bars(bars, "test", zone="curated")
    result = lake.write_bars(bars.assign(close=1.0), "test", zone="curated")
    assert result.rows_superseded == 0 and not (tmp_path / "lake/raw").exists()
    schema = pq.read_schema(tmp_path / "lake/curated/prices/source=test/year=2020/part-0.parquet")
    assert schema.names == list(BAR_COLUMNS)


def test_raw_partitions_written_before_versions_were_kept_still_read_and_keep_history(tmp_path: Path) -> None:
    # Given a raw partition in the old layout: bar columns only
    lake = ParquetLake(str(tmp_path / "lake"))
    bars = _bars(["AAA"], "2020-01-01", 5)
    legacy = tmp_path / "lake/raw/prices/source=test/year=2020"
    legacy.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(bars, schema=BAR_SCHEMA, preserve_index=False), legacy / "part-0.parquet")
    # When a value is revised
    assert len(lake.read_bars("test", zone="raw")) == 5
    lake.write_bars(bars.iloc[[0]].assign(close=9.0), "test", zone="raw", ingest_id="new")
    # Then the old value is history without an ingest id, and the partition now carries versions
    versions = lake.raw_history("test", end="2020-01-01")
    assert versions["close"].tolist() == [bars.loc[0, "close"], 9.0]
    assert pd.isna(versions["ingest_id"].iloc[0]) and versions["ingest_id"].iloc[1] == "new"
    assert lake.raw_history("test")["ingest_id"].isna().sum() == 5  # the four untouched bars + the superseded one


def test_rows_without_a_date_or_symbol_are_refused(lake: ParquetLake) -> None:
    bars = _bars(["AAA"], "2020-01-01", 3)
    bars.loc[1, "date"] = pd.NaT
    with pytest.raises(LakeError, match="without a date or symbol"):
        lake.write_bars(bars, "test", zone="raw")


def test_quarantined_rows_are_kept_under_the_ingest_id(lake: ParquetLake) -> None:
    rows = _bars(["AAA"], "2020-01-01", 2).assign(reason="close not a positive finite price", stored_close=1.0)
    key = lake.write_quarantine(rows, "test", ingest_id="run-1")
    assert key == "quarantine/prices/source=test/run-1.parquet"
    back = pq.read_table(pa.BufferReader(lake.get_bytes(key))).to_pandas()
    assert back["reason"].tolist() == rows["reason"].tolist() and back["stored_close"].tolist() == [1.0, 1.0]


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
    from portfolio_engine.adapters.lake_partitions import scan_filter as _scan_filter

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
