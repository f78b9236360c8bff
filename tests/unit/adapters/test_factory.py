"""Wiring from settings: the lake and the validation policy."""

from __future__ import annotations

from portfolio_engine.adapters.factory import build_lake, validation_policy
from portfolio_engine.settings import Settings


def test_the_lake_defaults_under_the_data_dir(tmp_path) -> None:
    lake = build_lake(Settings(data_dir=tmp_path))
    assert lake.uri == str((tmp_path / "lake").resolve())


def test_a_run_policy_overrides_the_configured_one() -> None:
    settings = Settings(validation_policy="reject", max_forward_fill=2)
    assert validation_policy(settings).mode == "reject"
    assert validation_policy(settings, "quarantine").mode == "quarantine"
    assert validation_policy(settings).max_ffill == 2
    assert validation_policy(settings).calendar == "XNYS"
    assert validation_policy(Settings(validation_calendar="none")).calendar is None
