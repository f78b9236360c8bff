"""The model registry over the lake: a local folder and S3 through moto's server."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.model_registry import LakeModelRegistry
from portfolio_engine.exceptions import LakeError, ModelNotFoundError


def _exercise(registry: LakeModelRegistry) -> None:
    assert registry.champion("market") is None and registry.history("market") == []
    uri = registry.save("market", "v1", {"model.joblib": b"\x00\x01"}, {"version": "v1", "metrics": {"m": 1.0}})
    assert uri.endswith("models/regime/market/v1")
    # Saved but not promoted: no champion yet.
    assert registry.champion("market") is None
    registry.record("market", {"version": "v1", "promoted": True}, champion="v1")
    registry.save("market", "v2", {"model.joblib": b"\x02"}, {"version": "v2"})
    registry.record("market", {"version": "v2", "promoted": False}, champion=None)
    assert registry.champion("market") == "v1"
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
    _exercise(LakeModelRegistry(ParquetLake(str(tmp_path / "lake"))))


def test_registry_on_s3_through_moto_server(s3_lake_uri: str, aws_env: str) -> None:
    _exercise(LakeModelRegistry(ParquetLake(s3_lake_uri, endpoint_url=aws_env)))
