"""Regime-conditional moments against group sample moments, numpy's weighted covariance and a Monte Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.exceptions import DataError, InsufficientDataError, SpecificationError
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.regime_moments import RegimeMoments, blend_moments, regime_conditional_moments


@pytest.fixture(scope="module")
def returns() -> pd.DataFrame:
    """Three assets, 900 days alternating between a calm and a volatile regime (seeded)."""
    rng = np.random.default_rng(42)
    calm = rng.multivariate_normal([0.0008, 0.0005, 0.0003], np.diag([0.008, 0.006, 0.004]) ** 2, 600)
    wild = rng.multivariate_normal([-0.002, -0.001, 0.0005], np.full((3, 3), 0.0002) + np.eye(3) * 0.0002, 300)
    values = np.vstack([calm[:300], wild[:150], calm[300:], wild[150:]])
    return pd.DataFrame(values, index=pd.bdate_range("2015-01-01", periods=900), columns=["a", "b", "c"])


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.r_[np.zeros(300), np.ones(150), np.zeros(300), np.ones(150)].astype(int)


def test_one_hot_posterior_gives_the_group_sample_moments(returns: pd.DataFrame, labels: np.ndarray) -> None:
    # Given a one-hot posterior with named states
    posterior = pd.DataFrame(np.eye(2)[labels], index=returns.index, columns=["calm", "wild"])
    # When the regime moments are estimated
    result = regime_conditional_moments(returns, posterior)
    # Then each regime has its group's sample mean and covariance (ddof=1), annualised, unshrunk
    for state, label in (("calm", 0), ("wild", 1)):
        group = returns[labels == label]
        assert np.allclose(result[state].mu, group.mean() * 252, rtol=1e-12, atol=0)
        assert np.allclose(result[state].cov, group.cov() * 252, rtol=1e-12, atol=0)
    assert result.effective_sample_size.to_dict() == pytest.approx({"calm": 600.0, "wild": 300.0})
    assert (result.own_weight == 1.0).all()
    assert list(result) == ["calm", "wild"] and len(result) == 2


def test_soft_posterior_matches_numpy_weighted_covariance(returns: pd.DataFrame) -> None:
    # Given soft probabilities (an array: states 0 and 1)
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, len(returns))
    posterior = np.column_stack([p, 1.0 - p])
    result = regime_conditional_moments(returns, posterior, periods_per_year=1)
    # Then the moments are numpy's weighted average and reliability-weighted covariance
    for k in (0, 1):
        w = posterior[:, k]
        assert np.allclose(result[k].mu, np.average(returns.to_numpy(), axis=0, weights=w), rtol=1e-12, atol=0)
        assert np.allclose(
            result[k].cov, np.cov(returns.to_numpy(), rowvar=False, aweights=w, ddof=1), rtol=1e-12, atol=0
        )
        assert result.effective_sample_size[k] == pytest.approx(w.sum() ** 2 / (w @ w), rel=1e-12)


def test_sparse_regime_is_shrunk_toward_the_pooled_moments(returns: pd.DataFrame, labels: np.ndarray) -> None:
    # Given a third regime holding only 5 observations
    rare = np.zeros(len(returns), dtype=bool)
    rare[[10, 200, 320, 500, 800]] = True
    posterior = np.column_stack([(labels == 0) & ~rare, (labels == 1) & ~rare, rare]).astype(float)
    # When estimated with a threshold of 20 effective observations
    result = regime_conditional_moments(returns, posterior, min_effective_observations=20, periods_per_year=1)
    # Then the rare regime keeps 5/20 of its own estimate and takes 15/20 of the pooled one
    own = returns[rare]
    assert result.own_weight[2] == pytest.approx(0.25)
    assert np.allclose(result[2].mu, 0.25 * own.mean() + 0.75 * returns.mean(), rtol=1e-12, atol=0)
    assert np.allclose(result[2].cov, 0.25 * own.cov() + 0.75 * returns.cov(), rtol=1e-12, atol=0)
    # And a regime the sample never visits gets the pooled moments
    empty = np.column_stack([labels == 0, labels == 1, np.zeros(len(returns))]).astype(float)
    result = regime_conditional_moments(returns, empty, periods_per_year=1)
    assert result.own_weight[2] == 0.0 and result.effective_sample_size[2] == 0.0
    assert np.allclose(result[2].cov, returns.cov(), rtol=1e-12, atol=0)
    # Or, if asked, a typed error
    with pytest.raises(InsufficientDataError, match=r"effective sample of 5\.0"):
        regime_conditional_moments(returns, posterior, min_effective_observations=20, on_sparse="raise")


def test_bad_posteriors_are_rejected(returns: pd.DataFrame, labels: np.ndarray) -> None:
    one_hot = np.eye(2)[labels]
    with pytest.raises(DataError, match="sum to one"):
        regime_conditional_moments(returns, one_hot * 0.9)
    with pytest.raises(DataError, match="shape"):
        regime_conditional_moments(returns, one_hot[:-1])
    with pytest.raises(DataError, match="indexed like the returns"):
        regime_conditional_moments(returns, pd.DataFrame(one_hot))
    with pytest.raises(DataError, match="negative"):
        regime_conditional_moments(returns, np.column_stack([one_hot[:, 0] + 0.5, one_hot[:, 1] - 0.5]))


def _moments(mu: list[float], cov: np.ndarray) -> Moments:
    assets = ["a", "b"]
    return Moments(pd.Series(mu, index=assets), pd.DataFrame(cov, index=assets, columns=assets))


BULL = _moments([0.10, 0.06], np.array([[0.04, 0.01], [0.01, 0.02]]))
BEAR = _moments([-0.15, 0.02], np.array([[0.16, 0.06], [0.06, 0.05]]))


def test_blend_with_a_one_hot_probability_returns_that_regime() -> None:
    blended = blend_moments({"bull": BULL, "bear": BEAR}, {"bull": 0.0, "bear": 1.0})
    assert np.allclose(blended.mu, BEAR.mu, rtol=0, atol=1e-15)
    assert np.allclose(blended.cov, BEAR.cov, rtol=0, atol=1e-15)
    assert np.allclose(blend_moments([BULL, BEAR], [1.0, 0.0]).cov, BULL.cov, atol=1e-15)


def test_a_regime_held_for_a_year_matches_a_monte_carlo_of_annual_returns() -> None:
    # Given a 30/70 mixture of two Gaussian regimes, each drawn once for a whole year (horizon 252 periods)
    p = np.array([0.3, 0.7])
    blended = blend_moments([BULL, BEAR], p, horizon_periods=252)
    # When 400,000 annual returns are drawn: a regime, then a year's return from it
    rng = np.random.default_rng(2026)
    n = 400_000
    regime = rng.random(n) < p[0]
    draws = np.where(
        regime[:, None],
        rng.multivariate_normal(BULL.mu.to_numpy(), BULL.cov.to_numpy(), n),
        rng.multivariate_normal(BEAR.mu.to_numpy(), BEAR.cov.to_numpy(), n),
    )
    # Then the sample moments agree within Monte Carlo error (se of a variance ~ 0.3 / sqrt(n) ~ 5e-4)
    assert np.allclose(blended.mu, draws.mean(axis=0), rtol=0, atol=2.5e-3)
    assert np.allclose(blended.cov, np.cov(draws, rowvar=False), rtol=0, atol=2.5e-3)
    # And the spread of the annual means adds to the variance in full (law of total variance), by hand for asset a
    var_a = 0.3 * (0.04 + 0.10**2) + 0.7 * (0.16 + 0.15**2) - (0.3 * 0.10 - 0.7 * 0.15) ** 2
    assert blended.cov.loc["a", "a"] == pytest.approx(var_a, rel=1e-12)


def test_the_default_blend_is_the_next_period_mixture_annualised() -> None:
    # Given the same regimes, drawn afresh every day (the one-step-ahead distribution of a daily regime model)
    p = np.array([0.3, 0.7])
    blended = blend_moments([BULL, BEAR], p)
    # Then by hand: the variance of a daily mixture, times 252, counts the spread of annual means / 252
    spread_a = 0.3 * 0.7 * (0.10 - (-0.15)) ** 2
    assert blended.cov.loc["a", "a"] == pytest.approx(0.3 * 0.04 + 0.7 * 0.16 + spread_a / 252, rel=1e-12)
    spread_ab = 0.3 * 0.7 * (0.10 + 0.15) * (0.06 - 0.02)
    assert blended.cov.loc["a", "b"] == pytest.approx(0.3 * 0.01 + 0.7 * 0.06 + spread_ab / 252, rel=1e-12)
    assert np.allclose(blended.mu, 0.3 * BULL.mu + 0.7 * BEAR.mu, rtol=1e-14, atol=0)
    # And a Monte Carlo of 1,000,000 days (a regime per day) agrees, annualised (4 standard errors ~ 7e-4)
    rng = np.random.default_rng(7)
    n = 1_000_000
    bull = rng.random(n) < p[0]
    shocks = rng.standard_normal((n, 2))
    daily = np.empty((n, 2))
    for mask, regime in ((bull, BULL), (~bull, BEAR)):
        root = np.linalg.cholesky(regime.cov.to_numpy() / 252)
        daily[mask] = regime.mu.to_numpy() / 252 + shocks[mask] @ root.T
    assert np.allclose(blended.cov, np.cov(daily, rowvar=False) * 252, rtol=0, atol=7e-4)
    # A monthly holding (21 periods) sits in between, linearly in the horizon
    monthly = blend_moments([BULL, BEAR], p, horizon_periods=21)
    assert monthly.cov.loc["a", "a"] == pytest.approx(0.3 * 0.04 + 0.7 * 0.16 + spread_a * 21 / 252, rel=1e-12)
    with pytest.raises(SpecificationError, match="horizon_periods must be a positive number; got 0"):
        blend_moments([BULL, BEAR], p, horizon_periods=0)


def test_blend_accepts_regime_moments_and_series(returns: pd.DataFrame, labels: np.ndarray) -> None:
    posterior = pd.DataFrame(np.eye(2)[labels], index=returns.index, columns=["calm", "wild"])
    per_regime = regime_conditional_moments(returns, posterior)
    assert isinstance(per_regime, RegimeMoments)
    blended = blend_moments(per_regime, pd.Series({"wild": 0.25, "calm": 0.75}))
    expected_mu = 0.75 * per_regime["calm"].mu + 0.25 * per_regime["wild"].mu
    assert np.allclose(blended.mu, expected_mu, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("probabilities", "message"),
    [({"bull": 0.5, "crash": 0.5}, "states"), ({"bull": 0.6, "bear": 0.6}, "sum to one"), ([1.0], "one probability")],
)
def test_blend_rejects_bad_probabilities(probabilities: object, message: str) -> None:
    with pytest.raises(SpecificationError, match=message):
        blend_moments({"bull": BULL, "bear": BEAR}, probabilities)


def test_blend_rejects_regimes_on_different_assets() -> None:
    other = Moments(pd.Series([0.1, 0.1], index=["a", "z"]), pd.DataFrame(np.eye(2), ["a", "z"], ["a", "z"]))
    with pytest.raises(SpecificationError, match="different assets"):
        blend_moments([BULL, other], [0.5, 0.5])
