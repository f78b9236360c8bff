"""Michaud resampling: seeded draws, rank matching, closed-form ranks, the ``optimize`` entry and error paths."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, BundledSource
from portfolio_engine.exceptions import InfeasibleError, SpecificationError
from portfolio_engine.optimization._dispatch import optimize
from portfolio_engine.optimization.constraints import Constraints
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.resampling import (
    draw_moments,
    resampled_frontier,
    resampled_portfolio,
)
from portfolio_engine.optimization.spec import PortfolioSpec

ASSETS = ["AAPL", "JNJ", "JPM", "KO", "MSFT", "XOM"]


@lru_cache(maxsize=1)
def _returns() -> pd.DataFrame:
    """Daily returns of six bundled stocks over 2022 (252 days)."""
    bars = BundledSource().fetch(DEFAULT_UNIVERSE)
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")[ASSETS]
    return prices.pct_change().dropna().iloc[-252:]


def _moments() -> Moments:
    returns = _returns()
    return Moments(mu=returns.mean() * 252, cov=returns.cov() * 252)


def test_same_seed_same_weights_different_seed_different_weights() -> None:
    moments = _moments()
    # Given the same seed twice, and another seed
    first, _ = resampled_portfolio(moments, n_resamples=30, n_observations=252, seed=42)
    again, _ = resampled_portfolio(moments, n_resamples=30, n_observations=252, seed=42)
    other, _ = resampled_portfolio(moments, n_resamples=30, n_observations=252, seed=43)
    # Then the same seed reproduces the weights bit for bit; another seed moves them
    assert np.array_equal(first.to_numpy(), again.to_numpy())
    assert np.abs(first - other).max() > 1e-3
    # And a SeedSequence root works like its integer
    from_sequence, _ = resampled_portfolio(moments, n_resamples=30, n_observations=252, seed=np.random.SeedSequence(42))
    assert np.array_equal(first.to_numpy(), from_sequence.to_numpy())


def test_parametric_draws_are_unbiased() -> None:
    # Given 400 parametric draws of 252 days from the annual moments
    moments = _moments()
    draws = list(draw_moments(moments, n_resamples=400, n_observations=252, seed=1))
    means = np.array([mu for mu, _ in draws])
    covs = np.array([cov for _, cov in draws])
    # Then the re-estimated means average to mu within 5 standard errors, covariances to Sigma (unbiased ddof=1)
    standard_error = means.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(means.mean(axis=0) - moments.mu.to_numpy()) < 5 * standard_error)
    cov_error = covs.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(covs.mean(axis=0) - moments.cov.to_numpy()) < 5 * cov_error + 1e-12)
    # And each draw's mean has the sampling variance Sigma / T (annual units: diag(Sigma) * 252 / T)
    np.testing.assert_allclose(means.var(axis=0, ddof=1), np.diag(moments.cov.to_numpy()) * 252 / 252, rtol=0.2)


def test_bootstrap_draws_resample_history_rows() -> None:
    # Given a tiny history of three distinct days
    history = pd.DataFrame([[0.01, 0.02], [-0.01, 0.0], [0.03, -0.02]], columns=["a", "b"])
    moments = Moments(mu=history.mean() * 252, cov=history.cov() * 252)
    # When bootstrapping 3-day histories
    draws = list(draw_moments(moments, n_resamples=50, returns=history, sampling="bootstrap", seed=9))
    # Then every draw's daily mean is an average of three historical rows (a multiple of 1/3 of row sums)
    rows = history.to_numpy()
    possible = {tuple(np.round(rows[[i, j, k]].mean(axis=0), 12)) for i in range(3) for j in range(3) for k in range(3)}
    assert all(tuple(np.round(mu / 252, 12)) in possible for mu, _ in draws)


def test_rank_zero_is_the_average_of_closed_form_minimum_variance() -> None:
    # Given shorting allowed and a budget of one: each draw's minimum variance is Sigma^-1 1 / 1' Sigma^-1 1
    moments = _moments()
    constraints = Constraints(long_only=False)
    ours, used = resampled_portfolio(
        moments, constraints, portfolio=0, n_points=5, n_resamples=25, n_observations=252, seed=7
    )
    # When the same draws are replayed by hand
    expected = []
    for _, cov in draw_moments(moments, n_resamples=25, n_observations=252, seed=7):
        x = np.linalg.solve(cov, np.ones(len(cov)))
        expected.append(x / x.sum())
    # Then the resampled rank-0 portfolio is their average
    assert used == 25
    np.testing.assert_allclose(ours.to_numpy(), np.mean(expected, axis=0), rtol=0, atol=1e-7)


def test_frontier_points_are_rank_matched() -> None:
    # Given a long-only resampled frontier of 6 points from 10 draws
    moments = _moments()
    frontier = resampled_frontier(moments, n_points=6, n_resamples=10, n_observations=252, seed=11)
    draws = list(draw_moments(moments, n_resamples=10, n_observations=252, seed=11))
    # Then in each draw, point m earns low + m/5 (high - low) under the draw's own mu (low: min variance,
    # high: the best asset, long-only), and the frontier rows average the draws
    for (mu, _), weights in zip(draws, frontier.draw_weights, strict=True):
        returns = weights @ mu
        low, high = returns[0], mu.max()
        np.testing.assert_allclose(returns, low + np.arange(6) / 5 * (high - low), rtol=0, atol=1e-6)
        assert np.all(weights >= -1e-8)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-8)
    np.testing.assert_allclose(frontier.weights.to_numpy(), frontier.draw_weights.mean(axis=0), rtol=1e-15)
    # And the averaged frontier is evaluated with the original moments
    w = frontier.weights.to_numpy()
    np.testing.assert_allclose(frontier.expected_returns, w @ moments.mu.to_numpy(), rtol=1e-12)
    assert np.all(np.diff(frontier.expected_returns) > 0)


def test_optimize_entry_is_reproducible_and_attaches_the_frontier() -> None:
    # Given a spec for a resampled max-Sharpe portfolio with a seed and the frontier asked for
    moments, returns = _moments(), _returns()
    spec = PortfolioSpec(method="resampled", seed=5, n_resamples=15, method_params={"frontier": True, "n_points": 4})
    # When optimized twice
    first = optimize(spec, moments, returns=returns)
    second = optimize(spec, moments, returns=returns)
    # Then the weights repeat, sum to one, and the frontier has the 4 points
    assert np.array_equal(first.weights.to_numpy(), second.weights.to_numpy())
    assert first.weights.sum() == pytest.approx(1.0, abs=1e-8)
    assert first.method == "resampled"
    assert first.frontier is not None and len(first.frontier.points) == 4
    assert first.extras["draws_used"] == 15
    # And it equals the direct call with the window's length as the draw length
    direct, _ = resampled_portfolio(moments, n_resamples=15, n_observations=len(returns), n_points=4, seed=5)
    np.testing.assert_allclose(first.weights.to_numpy(), direct.to_numpy(), rtol=0, atol=1e-12)


def test_no_tangency_in_any_draw_raises() -> None:
    moments = _moments()
    with pytest.raises(InfeasibleError) as info:
        resampled_portfolio(moments, n_resamples=3, n_observations=252, seed=1, risk_free_rate=50.0)
    assert info.value.constraints == ["risk_free_rate"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_resamples": 0, "n_observations": 252}, "n_resamples"),
        ({"n_resamples": 5}, "history length"),
        ({"n_resamples": 5, "n_observations": 252, "sampling": "jackknife"}, "sampling"),
        ({"n_resamples": 5, "n_observations": 252, "sampling": "bootstrap"}, "Bootstrap"),
        ({"n_resamples": 5, "n_observations": 252, "portfolio": 20, "n_points": 20}, "rank"),
    ],
)
def test_invalid_parameters_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(SpecificationError, match=match):
        resampled_portfolio(_moments(), **kwargs)
