"""Volatility-rule labels and next-period targets, against plain loops and hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.exceptions import ConfigurationError, DataError, InsufficientDataError
from portfolio_engine.regime.labels import (
    VolatilityRegimeLabeler,
    align_to_next_period,
    next_period_target,
    realized_volatility,
    volatility_regime_labels,
)


def regime_returns(seed: int, n: int = 600) -> pd.Series:
    """Calm, turbulent, calm: daily returns with a volatility burst in the middle."""
    rng = np.random.default_rng(seed)
    values = np.r_[rng.normal(0, 0.01, n // 2), rng.normal(0, 0.03, n // 6), rng.normal(0, 0.01, n - n // 2 - n // 6)]
    return pd.Series(values, index=pd.bdate_range("2020-01-01", periods=n))


def loop_vol(returns: np.ndarray, window: int, periods_per_year: int = 252) -> np.ndarray:
    out = np.full(len(returns), np.nan)
    for t in range(window - 1, len(returns)):
        out[t] = np.std(returns[t - window + 1 : t + 1], ddof=1) * math.sqrt(periods_per_year)
    return out


def test_realized_volatility_matches_a_loop() -> None:
    # Given returns; When the trailing volatility is computed; Then it is the loop's std(ddof=1) x sqrt(252)
    returns = regime_returns(0, 120)
    np.testing.assert_allclose(realized_volatility(returns, window=10).to_numpy(), loop_vol(returns.to_numpy(), 10))


def test_hand_checked_fixed_thresholds() -> None:
    # Given window 2 and no annualisation: vol_t = |r_t - r_{t-1}| / sqrt(2) = [nan, 0.707, 0, 2.121]
    returns = [0.0, 1.0, 1.0, 4.0]
    # When labelled with thresholds 0.5 and 1.0 (three states)
    labels = volatility_regime_labels(returns, window=2, n_states=3, thresholds=[0.5, 1.0], periods_per_year=1)
    # Then state k means thresholds[k-1] < vol <= thresholds[k], NA during the warm-up
    assert labels.dtype == "Int64"
    assert labels.isna().tolist() == [True, False, False, False]
    assert labels.iloc[1:].tolist() == [1, 0, 2]


def test_expanding_thresholds_are_the_quantiles_of_the_past_only() -> None:
    # Given returns with a volatility burst
    returns = regime_returns(1)
    window, min_history, levels = 21, 60, (1 / 3, 2 / 3)
    # When labelled with expanding thresholds
    labels = volatility_regime_labels(returns, window=window, n_states=3, min_history=min_history)
    # Then each label buckets vol_t by numpy quantiles of the volatilities up to t
    vol = loop_vol(returns.to_numpy(), window)
    expected = []
    for t in range(len(vol)):
        seen = vol[: t + 1][~np.isnan(vol[: t + 1])]
        if seen.size < min_history:
            expected.append(None)
            continue
        cuts = np.quantile(seen, levels)
        expected.append(int(np.sum(vol[t] > cuts)))
    got = [None if pd.isna(v) else int(v) for v in labels]
    assert got == expected
    assert labels.notna().sum() == len(returns) - (window - 1) - (min_history - 1)


def test_expanding_labels_do_not_change_when_the_future_changes() -> None:
    # Given a series and the same series with a different future
    returns = regime_returns(2)
    altered = returns.copy()
    altered.iloc[400:] *= 5.0
    # When both are labelled point in time; Then the labels up to the change agree exactly
    a = volatility_regime_labels(returns, min_history=50)
    b = volatility_regime_labels(altered, min_history=50)
    pd.testing.assert_series_equal(a.iloc[:400], b.iloc[:400])
    # ... while in-sample thresholds move with the future (the look-ahead is real, hence its explicit name)
    c = volatility_regime_labels(returns, thresholds="in_sample")
    d = volatility_regime_labels(altered, thresholds="in_sample")
    assert not c.iloc[:400].equals(d.iloc[:400])


def test_in_sample_thresholds_split_the_sample_at_the_quantiles() -> None:
    returns = regime_returns(3)
    labels = volatility_regime_labels(returns, n_states=2, thresholds="in_sample", quantiles=[0.8])
    valid = labels.dropna()
    assert valid.mean() == pytest.approx(0.2, abs=1.0 / len(valid))


def test_labeler_learns_thresholds_on_the_training_window_only() -> None:
    # Given a training window and later data
    returns = regime_returns(4)
    train = returns.iloc[:350]
    labeler = VolatilityRegimeLabeler(window=21, n_states=2, quantiles=[0.75]).fit(train)
    # Then the threshold is the training volatilities' 75% quantile
    vol = loop_vol(train.to_numpy(), 21)
    assert labeler.thresholds_ == pytest.approx([np.quantile(vol[~np.isnan(vol)], 0.75)])
    # And labelling any data applies it unchanged (same result as the fixed-threshold function)
    labels = labeler.transform(returns)
    expected = volatility_regime_labels(returns, thresholds=labeler.thresholds_)
    pd.testing.assert_series_equal(labels, expected)
    # And the burst (rows 300..399) is labelled turbulent most of the time
    assert labels.iloc[320:400].mean() > 0.9


def test_next_period_target_shifts_back_and_leaves_the_unknown_future_missing() -> None:
    labels = pd.Series([0, 1, 1, 0, 1], index=list("abcde"))
    target = next_period_target(labels, horizon=2)
    assert target.index.tolist() == list("abcde")
    assert target.iloc[:3].tolist() == [1, 0, 1]
    assert target.iloc[3:].isna().all()
    assert next_period_target(labels, horizon=0).tolist() == [0, 1, 1, 0, 1]


def test_align_to_next_period_pairs_features_with_the_later_label() -> None:
    # Given features and labels with a missing label at row 2
    X = pd.DataFrame({"x": [10.0, 11.0, 12.0, 13.0, 14.0]})
    labels = pd.Series([0, 1, pd.NA, 0, 1], dtype="Int64")
    # When aligned one period ahead
    X_al, y_al = align_to_next_period(X, labels, 1)
    # Then row t carries label t+1; rows whose next label is missing, and the last row, are dropped
    assert X_al["x"].tolist() == [10.0, 12.0, 13.0]
    assert y_al.tolist() == [1, 0, 1]
    X_arr, y_arr = align_to_next_period(X.to_numpy(), [0, 1, 1, 0, 1], 0)
    assert X_arr.shape == (5, 1) and y_arr.tolist() == [0, 1, 1, 0, 1]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"window": 1}, ConfigurationError),
        ({"n_states": 1}, ConfigurationError),
        ({"quantiles": [0.5, 0.4], "n_states": 3}, ConfigurationError),
        ({"thresholds": [0.2, 0.1], "n_states": 3}, ConfigurationError),
        ({"thresholds": "future"}, ConfigurationError),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        volatility_regime_labels(regime_returns(5, 100), **kwargs)


def test_bad_inputs_are_refused_with_typed_errors() -> None:
    with pytest.raises(DataError, match="infinite"):
        volatility_regime_labels([0.0, np.inf, 0.1, 0.2])
    with pytest.raises(DataError, match="2 columns"):
        volatility_regime_labels(pd.DataFrame({"a": [0.1, 0.2], "b": [0.1, 0.2]}))
    with pytest.raises(InsufficientDataError):
        VolatilityRegimeLabeler(window=21).fit(np.zeros(10))
    with pytest.raises(ConfigurationError):
        next_period_target([0, 1], horizon=-1)
    with pytest.raises(DataError):
        align_to_next_period(np.zeros((3, 1)), [0, 1], 1)
