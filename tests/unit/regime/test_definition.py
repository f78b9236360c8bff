"""The regime model definition: versioning, SageMaker hyperparameters, the training frame, promotion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.exceptions import (
    ConfigurationError,
    InsufficientDataError,
    NonFiniteFeaturesError,
    SchemaError,
)
from portfolio_engine.regime.definition import RegimeModelSpec, frame_hash, training_frame
from portfolio_engine.regime.training import decide_promotion


def _features(n: int = 600, symbol: str = "^GSPC") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2010-01-01", periods=n)
    ret = rng.normal(0, 0.01, n)
    vol = pd.Series(ret).rolling(21).std().to_numpy() * np.sqrt(252)
    return pd.DataFrame({"date": dates, "symbol": symbol, "logret_1d": ret, "vol_21d": vol, "other": 1.0})


def test_the_version_changes_with_any_setting_and_not_otherwise() -> None:
    base = RegimeModelSpec()
    assert base.version == RegimeModelSpec().version and len(base.version) == 12
    assert base.version != RegimeModelSpec(n_states=3).version
    assert base.version != RegimeModelSpec(features=("logret_1d",)).version


def test_hyperparameters_round_trip_as_sagemaker_strings_and_ignore_the_sdks_own() -> None:
    spec = RegimeModelSpec(n_states="bic", covariance_type="diag", features=("logret_1d",), n_restarts=3)
    hps = spec.to_hyperparameters()
    assert all(isinstance(v, str) for v in hps.values())
    hps |= {"sagemaker_program": "train.py", "sagemaker_region": '"us-east-1"'}
    assert RegimeModelSpec.from_hyperparameters(hps) == spec
    # Plain (not JSON-encoded) strings are taken as they are.
    assert RegimeModelSpec.from_hyperparameters({"covariance_type": "tied"}).covariance_type == "tied"


def test_bad_hyperparameters_are_a_configuration_error_naming_the_field() -> None:
    with pytest.raises(ConfigurationError, match="n_states"):
        RegimeModelSpec.from_hyperparameters({"n_states": "99"})
    with pytest.raises(ConfigurationError, match="surprise"):
        RegimeModelSpec.from_hyperparameters({"surprise": "1"})


def test_the_training_frame_drops_the_warm_up_and_keeps_the_spec_columns_by_date() -> None:
    features = _features()
    frame = training_frame(features.sample(frac=1.0, random_state=1), RegimeModelSpec(min_train_days=100))
    assert list(frame.columns) == ["logret_1d", "vol_21d"] and frame.index.is_monotonic_increasing
    assert len(frame) == 600 - 20 and np.isfinite(frame.to_numpy()).all()


def test_training_frame_errors_name_what_is_wrong() -> None:
    features = _features()
    with pytest.raises(SchemaError, match="no rows for 'SPY'"):
        training_frame(features, RegimeModelSpec(symbol="SPY"))
    with pytest.raises(SchemaError, match="missing_col") as info:
        training_frame(features, RegimeModelSpec(features=("missing_col",)))
    assert "logret_1d" in info.value.hint
    gap = features.copy()
    gap.loc[300, "logret_1d"] = np.nan
    with pytest.raises(NonFiniteFeaturesError, match="1 row"):
        training_frame(gap, RegimeModelSpec(min_train_days=100))
    with pytest.raises(InsufficientDataError, match="580 usable observations"):
        training_frame(features, RegimeModelSpec(min_train_days=1000))


def test_the_data_hash_sees_every_value_and_date() -> None:
    frame = training_frame(_features(), RegimeModelSpec(min_train_days=100))
    changed = frame.copy()
    changed.iloc[10, 0] += 1e-12
    shifted = frame.copy()
    shifted.index = shifted.index + pd.Timedelta(days=1)
    assert len({frame_hash(frame), frame_hash(changed), frame_hash(shifted)}) == 3
    assert frame_hash(frame) == frame_hash(frame.copy())


@pytest.mark.parametrize(
    ("challenger", "champion", "compatible", "promote"),
    [
        (1.0, None, True, True),
        (1.0, 1.0, True, True),  # not worse
        (0.9, 1.0, True, False),
        (0.9, 1.0, False, True),  # the champion reads other inputs
        (float("nan"), 1.0, True, False),
    ],
)
def test_a_challenger_is_promoted_only_if_not_worse(
    challenger: float, champion: float | None, compatible: bool, promote: bool
) -> None:
    # Same size on both sides: the complexity penalties cancel (tests/unit/regime/test_training.py has the rest)
    decision = decide_promotion(
        challenger, champion, challenger_parameters=13, champion_parameters=13, n_train=1000,
        champion_compatible=compatible,
    )  # fmt: skip
    assert decision.promote is promote and decision.reason
