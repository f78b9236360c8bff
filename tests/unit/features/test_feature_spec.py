"""FeatureSpec: names, validation, JSON round trip and the version hash."""

from __future__ import annotations

import hashlib
import json

import pydantic
import pytest

from portfolio_engine.features import (
    DEFAULT_FEATURE_SPEC,
    FEATURE_CODE_VERSION,
    EwmaVolParams,
    FeatureSpec,
    MACDParams,
    MomentumParams,
    definition,
)


def test_default_feature_names() -> None:
    assert DEFAULT_FEATURE_SPEC.feature_names() == [
        "ret_1d",
        "logret_1d",
        "vol_21d",
        "vol_63d",
        "ewmavol_hl20",
        "mom_252_21",
        "mom_63",
        "rsi_14",
        "macd_12_26",
        "macd_signal_9",
        "macd_hist",
        "bb_pctb_20",
        "bb_width_20",
        "atr_14",
        "drawdown",
        "beta_63d",
        "corr_63d",
        "beta_252d",
        "corr_252d",
        "rank_mom_252_21",
        "rank_vol_21d",
    ]


def test_version_is_sha256_of_canonical_json_and_code_version() -> None:
    # Given the spec's JSON, recomputed here from the model dump with sorted keys
    body = {"code_version": FEATURE_CODE_VERSION, "spec": DEFAULT_FEATURE_SPEC.model_dump(mode="json")}
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    # Then the version is its first 12 hex digits, stable across calls and equal specs
    assert DEFAULT_FEATURE_SPEC.version == expected
    assert len(expected) == 12 and int(expected, 16) >= 0
    assert FeatureSpec().version == DEFAULT_FEATURE_SPEC.version


def test_version_survives_a_json_round_trip() -> None:
    text = DEFAULT_FEATURE_SPEC.model_dump_json()
    again = FeatureSpec.model_validate_json(text)
    assert again == DEFAULT_FEATURE_SPEC and again.version == DEFAULT_FEATURE_SPEC.version
    # integers and floats of the same window hash alike (pydantic coerces to the declared type)
    assert FeatureSpec(ewma_vol=(EwmaVolParams(halflife=20),)).version == DEFAULT_FEATURE_SPEC.version


@pytest.mark.parametrize(
    "change",
    [
        {"vol_windows": (21, 126)},
        {"rsi_windows": (10,)},
        {"macd": MACDParams(fast=8, slow=26, signal=9)},
        {"index_symbol": "SPY"},
        {"periods_per_year": 260},
        {"momentum": (MomentumParams(lookback=252, skip=21),), "rank_features": ("vol_21d",)},
    ],
)
def test_version_changes_with_any_parameter(change: dict) -> None:
    assert FeatureSpec(**change).version != DEFAULT_FEATURE_SPEC.version


def test_version_changes_with_the_code_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = DEFAULT_FEATURE_SPEC.version
    monkeypatch.setattr(definition, "FEATURE_CODE_VERSION", FEATURE_CODE_VERSION + 1)
    assert DEFAULT_FEATURE_SPEC.version != before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rank_features": ("mom_999",)},
        {"vol_windows": (1,)},
        {"vol_windows": (21, 21)},
        {"ewma_vol": ({"halflife": 10, "span": 20},)},
        {"ewma_vol": ({},)},
        {"macd": {"fast": 26, "slow": 12, "signal": 9}},
        {"momentum": ({"lookback": 21, "skip": 21},)},
        {"unknown_field": 1},
    ],
)
def test_invalid_specs_are_refused(kwargs: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        FeatureSpec(**kwargs)


def test_names_of_optional_parameters() -> None:
    spec = FeatureSpec(
        ewma_vol=(EwmaVolParams(span=30), EwmaVolParams(halflife=2.5)),
        momentum=(MomentumParams(lookback=126, skip=5),),
        macd=None,
        bollinger=None,
        index_symbol=None,
        rank_features=(),
    )
    names = spec.feature_names()
    assert "ewmavol_span30" in names and "ewmavol_hl2.5" in names and "mom_126_5" in names
    assert not any(n.startswith(("macd", "bb_", "beta", "corr")) for n in names)
