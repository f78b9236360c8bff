"""Adversarial inputs across methods: singular and degenerate problems give exact answers or typed errors, never
silent garbage (one asset, duplicated assets, pinned bounds, all-negative returns, unbounded leverage, NaN)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.exceptions import (
    InfeasibleError,
    SolverFailedError,
    SpecificationError,
    UnboundedError,
)
from portfolio_engine.optimization import (
    Constraints,
    MeanVarianceOptimizer,
    Moments,
    PortfolioSpec,
    efficient_frontier,
    max_sharpe,
    max_utility,
    min_variance,
    minimize_cvar,
    optimize,
)
from portfolio_engine.optimization._mv_cvx import CvxMeanVariance

N = 6


@pytest.fixture(scope="module")
def returns() -> pd.DataFrame:
    """Six correlated assets, 500 days, distinct positive drifts (seeded)."""
    rng = np.random.default_rng(17)
    mixing = np.eye(N) + 0.4 * rng.standard_normal((N, N))
    values = rng.standard_normal((500, N)) @ mixing * 0.01 + np.linspace(0.0002, 0.0008, N)
    return pd.DataFrame(values, columns=[f"S{i}" for i in range(N)])


@pytest.fixture(scope="module")
def moments(returns: pd.DataFrame) -> Moments:
    return Moments(returns.mean() * 252, returns.cov() * 252)


def _with_twin(moments: Moments) -> Moments:
    """The moments plus an exact copy of S0 (same mean, perfectly correlated): a singular covariance."""
    names = [*moments.mu.index, "S0_twin"]
    cov = moments.cov.reindex(index=names, columns=names)
    cov.loc["S0_twin", :] = cov.loc["S0", :]
    cov.loc[:, "S0_twin"] = cov.loc[:, "S0"]
    cov.loc["S0_twin", "S0_twin"] = cov.loc["S0", "S0"]
    return Moments(moments.mu.reindex(names).fillna(moments.mu["S0"]), cov)


def test_a_single_asset_gets_the_whole_budget_from_every_method(moments: Moments) -> None:
    # Given a universe of one asset / When any method allocates / Then it holds the budget in that asset
    one = Moments(moments.mu[["S3"]], moments.cov.loc[["S3"], ["S3"]])
    for method in ("min_variance", "max_sharpe", "max_utility", "risk_parity", "hrp", "efficient_frontier"):
        result = optimize(PortfolioSpec(method=method), one)
        assert result.weights.to_dict() == pytest.approx({"S3": 1.0}, abs=1e-12), method
        assert result.volatility == pytest.approx(np.sqrt(moments.cov.loc["S3", "S3"]), rel=1e-12)


def test_a_duplicated_asset_leaves_the_minimum_variance_unchanged(moments: Moments) -> None:
    # Given the universe plus a perfect copy of S0 (singular covariance) / When minimising variance
    twin = _with_twin(moments)
    for constraints in (Constraints(), Constraints(long_only=False)):
        base = min_variance(moments, constraints)
        doubled = min_variance(twin, constraints)
        # Then the variance is the same optimum, and S0 and its twin together hold S0's weight
        assert doubled.volatility == pytest.approx(base.volatility, rel=1e-9)
        assert doubled.weights["S0"] + doubled.weights["S0_twin"] == pytest.approx(base.weights["S0"], abs=1e-7)
    # And risk parity, which needs a positive definite covariance, says so instead of dividing by zero
    with pytest.raises(SpecificationError, match="not positive definite"):
        optimize(PortfolioSpec(method="risk_parity"), twin)


def test_bounds_that_pin_every_weight_give_that_portfolio_for_every_objective(moments: Moments) -> None:
    # Given lo = hi = 1/N for every asset: the feasible set is one point
    pinned = Constraints(weight_bounds=(1 / N, 1 / N))
    targets = {"target_return": {"target_return": -1.0}, "target_risk": {"target_volatility": 1.0}}
    for objective in ("min_variance", "max_sharpe", "max_utility", "target_return", "target_risk", "max_return"):
        w = MeanVarianceOptimizer(objective, pinned, **targets.get(objective, {})).solve(moments).weights
        np.testing.assert_allclose(w.to_numpy(), 1 / N, rtol=0, atol=1e-9, err_msg=objective)
    frontier = efficient_frontier(moments, pinned, n_points=3)
    np.testing.assert_allclose(frontier.weights.to_numpy(), 1 / N, rtol=0, atol=1e-9)
    scenarios = pd.DataFrame(np.random.default_rng(0).normal(0, 0.01, (300, N)), columns=moments.mu.index)
    np.testing.assert_allclose(minimize_cvar(scenarios, constraints=pinned).weights.to_numpy(), 1 / N, atol=1e-9)


def test_all_negative_expected_returns(moments: Moments) -> None:
    losing = Moments(-moments.mu.abs() - 0.02, moments.cov)
    # Long-only: no portfolio beats the risk-free rate of 0, a typed error names it
    with pytest.raises(InfeasibleError) as caught:
        max_sharpe(losing)
    assert caught.value.constraints == ["risk_free_rate"]
    # Maximum utility and minimum variance are still well posed (the least bad portfolio)
    utility = max_utility(losing, risk_aversion=2.0)
    assert utility.weights.sum() == pytest.approx(1.0, abs=1e-12) and utility.weights.min() >= -1e-12
    mu, cov = losing.mu.to_numpy(), losing.cov.to_numpy()
    for corner in np.eye(N):  # no single asset has a higher utility than the optimum
        assert mu @ corner - cov @ corner @ corner <= utility.expected_return - utility.volatility**2 + 1e-12


@pytest.mark.parametrize("direct", [True, False])
def test_a_sharpe_ratio_reached_only_at_infinite_leverage_is_unbounded(moments: Moments, direct: bool) -> None:
    # Given shorts without limits and returns whose tangency direction has a negative net weight
    # (1' Sigma^-1 mu < 0): with a budget of one, the Sharpe ratio only approaches its supremum as a
    # zero-net long-short position grows without limit
    losing = Moments(-moments.mu.abs() - 0.02, moments.cov)
    assert np.ones(N) @ np.linalg.solve(losing.cov.to_numpy(), losing.mu.to_numpy()) < 0
    # When maximising the Sharpe ratio / Then a typed error says so, naming the missing limits
    with pytest.raises(UnboundedError, match="grow without limit") as caught:
        max_sharpe(losing, Constraints(long_only=False), direct=direct)
    assert {"weight_bounds", "gross_leverage"} <= set(caught.value.constraints)
    # And a gross-leverage limit makes the problem well posed again
    bounded = max_sharpe(losing, Constraints(long_only=False, gross_leverage=2.0), direct=direct)
    assert bounded.weights.abs().sum() == pytest.approx(2.0, abs=1e-7)
    assert bounded.weights.sum() == pytest.approx(1.0, abs=1e-9)


def test_the_sharpe_ratio_reported_is_the_one_maximised_whatever_the_budget(moments: Moments) -> None:
    # Given a budget of one half (the rest in cash at the risk-free rate)
    rf = 0.03
    full = max_sharpe(moments, risk_free_rate=rf)
    half = max_sharpe(moments, Constraints(budget=0.5), risk_free_rate=rf)
    # Then the weights are scaled and the Sharpe ratio, (mu - rf)' w / vol, is the same
    np.testing.assert_allclose(half.weights.to_numpy(), 0.5 * full.weights.to_numpy(), atol=1e-10)
    assert half.sharpe == pytest.approx(full.sharpe, rel=1e-9)
    w = half.weights.to_numpy()
    assert half.sharpe == pytest.approx((moments.mu.to_numpy() - rf) @ w / half.volatility, rel=1e-12)


def test_nan_inputs_are_typed_errors_naming_the_asset(moments: Moments) -> None:
    mu = moments.mu.copy()
    mu["S2"] = np.nan
    with pytest.raises(SpecificationError, match=r"mu holds NaN or infinite values for \['S2'\]"):
        Moments(mu, moments.cov)
    cov = moments.cov.to_numpy().copy()
    cov[1, 1] = np.inf
    with pytest.raises(SpecificationError, match=r"NaN or infinite values in the rows of \['S1'\]"):
        MeanVarianceOptimizer().solve_weights(None, cov, assets=list(moments.mu.index))
    with pytest.raises(SpecificationError, match=r"mu has shape \(6,\).*not finite"):
        MeanVarianceOptimizer().solve_weights(mu.to_numpy(), moments.cov.to_numpy())


def test_a_mu_series_is_aligned_by_label_not_by_position(moments: Moments) -> None:
    # Given mu as a Series in reverse order and cov as a DataFrame / When solving on arrays
    reversed_mu = moments.mu.iloc[::-1]
    optimizer = MeanVarianceOptimizer("max_sharpe")
    w = optimizer.solve_weights(reversed_mu, moments.cov)
    # Then it is the answer on aligned moments, and a Series naming other assets is refused
    np.testing.assert_allclose(w, max_sharpe(moments).weights.to_numpy(), atol=1e-12)
    with pytest.raises(SpecificationError, match="mu names"):
        optimizer.solve_weights(reversed_mu.rename({"S0": "ZZZ"}), moments.cov)


def test_weights_breaking_a_constraint_are_never_returned(moments: Moments, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a solver that reports "optimal" but hands back weights above their cap
    constraints = Constraints(weight_bounds=(0.0, 0.3))

    def broken(self: CvxMeanVariance) -> np.ndarray:
        return np.array([0.5, 0.5, 0.0, 0.0, 0.0, 0.0])

    monkeypatch.setattr(CvxMeanVariance, "weights", broken)
    # When solving through cvxpy / Then a typed error names the family and the excess
    with pytest.raises(SolverFailedError, match=r"break \{'weight_bounds': 0\.2"):
        min_variance(moments, constraints, direct=False)


def test_resolved_constraints_report_their_violations() -> None:
    assets = ("A", "B", "C")
    resolved = Constraints(
        long_only=False,
        weight_bounds=(-0.2, 0.6),
        gross_leverage=1.4,
        groups={"g": ["A", "B"]},
        group_bounds={"g": (None, 0.7)},
        max_turnover=0.5,
    ).resolve(assets, current_weights={"A": 0.4, "B": 0.3, "C": 0.3})
    assert resolved.violations(np.array([0.4, 0.3, 0.3])) == {}
    found = resolved.violations(np.array([0.7, 0.6, -0.3]))
    assert found == pytest.approx(
        {"weight_bounds": 0.1, "group_bounds": 0.6, "gross_leverage": 0.2, "max_turnover": 0.7}, abs=1e-12
    )
    assert resolved.violations(np.array([0.5, 0.5, 0.1])) == pytest.approx({"budget": 0.1, "group_bounds": 0.3})
    assert resolved.violations(np.array([np.nan, 0.5, 0.5])) == {"finite_weights": np.inf}


def test_returns_missing_an_asset_of_the_universe_are_named(moments: Moments, returns: pd.DataFrame) -> None:
    spec = PortfolioSpec(method="min_cvar", universe=["S0", "S1", "S2"])
    with pytest.raises(SpecificationError, match=r"returns lack the universe's assets \['S2'\]"):
        optimize(spec, moments, returns=returns.drop(columns="S2"))
