"""The model registry: immutable artefacts in the lake (a folder, S3 on moto's server), the champion in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.exceptions import LakeError, ModelNotFoundError
from portfolio_engine.records.events import NewEvent


def _exercise(registry: StoreModelRegistry) -> None:
    assert registry.champion("market") is None and registry.history("market") == []
    uri = registry.save("market", "v1", {"model.joblib": b"\x00\x01"}, {"version": "v1", "metrics": {"m": 1.0}})
    assert uri.endswith("models/regime/market/v1")
    # Saved but not promoted: no champion yet.
    assert registry.champion("market") is None
    stream = registry.stream("market")
    assert stream == "model/regime/market"
    registry.store.append(
        stream,
        [
            NewEvent(type="ChallengerRegistered", data={"version": "v1", "promoted": True}),
            NewEvent(type="ChampionPromoted", data={"version": "v1", "previous": None}),
        ],
        expected_version=0,
    )
    registry.save("market", "v2", {"model.joblib": b"\x02"}, {"version": "v2"})
    registry.store.append(
        stream, [NewEvent(type="ChallengerRegistered", data={"version": "v2", "promoted": False})], expected_version=2
    )
    assert registry.champion("market") == "v1"
    view = registry.champion_view("market")
    assert view is not None and view.version == 3 and not view.pinned and view.lineage == ["v1"]
    assert [h["version"] for h in registry.history("market")] == ["v1", "v2"]
    assert registry.read_file("market", "v2", "model.joblib") == b"\x02"
    assert registry.metadata("market", "v1")["metrics"] == {"m": 1.0}
    with pytest.raises(ModelNotFoundError, match="'v9'"):
        registry.read_file("market", "v9", "model.joblib")
    with pytest.raises(LakeError, match="never overwritten"):
        registry.save("market", "v1", {"model.joblib": b"\x09"}, {"version": "v1"})
    assert registry.read_file("market", "v1", "model.joblib") == b"\x00\x01"
    # Names are independent.
    assert registry.champion("other") is None


def test_registry_in_a_local_lake(tmp_path: Path) -> None:
    _exercise(StoreModelRegistry(ParquetLake(str(tmp_path / "lake")), SqliteStore(tmp_path / "store.db")))


def test_registry_on_s3_through_moto_server(s3_lake_uri: str, aws_env: str, tmp_path: Path) -> None:
    _exercise(StoreModelRegistry(ParquetLake(s3_lake_uri, endpoint_url=aws_env), SqliteStore(tmp_path / "store.db")))
