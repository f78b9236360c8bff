"""CVaR by the Rockafellar-Uryasev LP: sort-based CVaR, skfolio's MeanRisk, both solve paths, constraints, errors."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, BundledSource
from portfolio_engine.exceptions import DataError, InfeasibleError, SpecificationError, UnboundedError
from portfolio_engine.optimization.constraints import Constraints
from portfolio_engine.optimization.cvar import maximize_return_cvar, minimize_cvar, scenario_cvar

#: Forces the cvxpy path without binding: the turnover of a fully invested portfolio from cash is 1.
LOOSE_TURNOVER = Constraints(max_turnover=5.0)


@lru_cache(maxsize=1)
def _returns() -> pd.DataFrame:
    """Daily returns of the 20 bundled stocks, last 1,000 days (to 2022-12-28)."""
    bars = BundledSource().fetch(DEFAULT_UNIVERSE)
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    return prices.pct_change().dropna().iloc[-1000:]


def _worst_mean(portfolio: np.ndarray, count: int) -> float:
    """Mean loss of the `count` worst scenarios (an independent, sort-based CVaR when (1 - beta) T is whole)."""
    return float(-np.sort(portfolio)[:count].mean())


@pytest.mark.parametrize("n_scenarios", [1000, 400])
def test_lp_optimum_equals_sorted_tail_mean(n_scenarios: int) -> None:
    # Given real daily returns with (1 - beta) T whole: 50 or 20 tail scenarios
    scenarios = _returns().iloc[-n_scenarios:]
    # When the minimum-CVaR portfolio is found
    solution = minimize_cvar(scenarios, beta=0.95)
    # Then the LP optimum is the mean of the worst 5 % losses of those weights, and VaR sits at the tail's edge
    portfolio = scenarios.to_numpy() @ solution.weights.to_numpy()
    count = round(0.05 * n_scenarios)
    assert solution.cvar == pytest.approx(_worst_mean(portfolio, count), rel=1e-10)
    losses = np.sort(-portfolio)[::-1]
    assert losses[count] - 1e-12 <= solution.value_at_risk <= losses[count - 1] + 1e-12
    assert solution.weights.min() >= -1e-12
    assert solution.weights.sum() == pytest.approx(1.0, abs=1e-10)
    assert solution.outcome.solver == "HIGHS-dual"


def test_fractional_tail_cvar() -> None:
    # Given 10 scenarios at beta = 0.75: the tail holds 2.5 scenarios
    returns = np.array([0.05, -0.04, 0.01, -0.10, 0.02, 0.0, -0.02, 0.03, -0.01, 0.04])
    # Then CVaR = (0.10 + 0.04 + 0.5 * 0.02) / 2.5
    assert scenario_cvar(returns, 0.75) == pytest.approx((0.10 + 0.04 + 0.01) / 2.5, rel=1e-14)


def _skfolio(scenarios: pd.DataFrame, **kwargs: float) -> np.ndarray:
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MeanRisk(risk_measure=RiskMeasure.CVAR, cvar_beta=0.95, **kwargs).fit(scenarios)
    return np.asarray(model.weights_)


def test_min_cvar_matches_skfolio() -> None:
    # Given the same scenarios / When skfolio's MeanRisk (cvxpy + Clarabel) and we minimise the 95 % CVaR
    scenarios = _returns().iloc[-252:]
    ours = minimize_cvar(scenarios)
    reference = _skfolio(scenarios)
    # Then the objectives agree to 1e-6 (relative), ours being the lower or equal
    ref_cvar = scenario_cvar(scenarios.to_numpy() @ reference, 0.95)
    assert ours.cvar == pytest.approx(ref_cvar, rel=1e-6)
    assert ours.cvar <= ref_cvar + 1e-12


def test_mean_cvar_with_return_floor_matches_skfolio() -> None:
    # Given a return floor at the 80th percentile of the assets' mean daily returns
    scenarios = _returns().iloc[-252:]
    target = float(scenarios.mean().quantile(0.8))
    # When both solve min CVaR s.t. mean return >= target
    ours = minimize_cvar(scenarios, target_return=target)
    reference = _skfolio(scenarios, min_return=target)
    # Then the floor binds and the CVaR agrees to 1e-6
    assert ours.expected_return == pytest.approx(target, rel=1e-9)
    assert ours.cvar == pytest.approx(scenario_cvar(scenarios.to_numpy() @ reference, 0.95), rel=1e-6)


def test_dual_and_primal_paths_agree_with_group_bounds() -> None:
    # Given sector-like groups with binding bounds, and annual mu with an annual return floor
    scenarios = _returns()
    groups = {"tech": ["AAPL", "AMD", "MSFT"], "energy": ["CVX", "XOM", "RRC"]}
    constraints = Constraints(groups=groups, group_bounds={"tech": (0.2, None), "energy": (None, 0.05)})
    mu = scenarios.mean() * 252
    # When solved on the dual LP, and on the primal in cvxpy (a loose turnover limit forces that path)
    dual = minimize_cvar(scenarios, mu=mu, target_return=0.15, constraints=constraints)
    primal = minimize_cvar(scenarios, mu=mu, target_return=0.15, constraints=constraints.replace(max_turnover=5.0))
    # Then they agree, the group bounds hold, and the return floor holds in mu's (annual) units
    assert primal.outcome.solver != "HIGHS-dual"
    assert dual.cvar == pytest.approx(primal.cvar, rel=1e-7)
    np.testing.assert_allclose(dual.weights.to_numpy(), primal.weights.to_numpy(), atol=1e-5)
    assert dual.weights[groups["tech"]].sum() >= 0.2 - 1e-9
    assert dual.weights[groups["energy"]].sum() <= 0.05 + 1e-9
    assert dual.expected_return >= 0.15 - 1e-9
    unconstrained = minimize_cvar(scenarios, mu=mu, target_return=0.15)
    assert unconstrained.cvar < dual.cvar - 1e-6  # the groups bind


def test_max_return_under_cvar_limit_is_the_frontier_dual() -> None:
    # Given the min-CVaR portfolio at a return floor r, with CVaR c
    scenarios = _returns().iloc[-252:]
    target = float(scenarios.mean().quantile(0.9))
    floor = minimize_cvar(scenarios, target_return=target)
    assert floor.expected_return == pytest.approx(target, rel=1e-9)  # the floor binds
    # When the return is maximised under CVaR <= c
    best = maximize_return_cvar(scenarios, cvar_limit=floor.cvar)
    # Then it reaches r again (same frontier point) and the limit holds on the sorted losses
    assert best.expected_return == pytest.approx(target, rel=1e-6)
    assert scenario_cvar(scenarios.to_numpy() @ best.weights.to_numpy()) <= floor.cvar * (1 + 1e-7)
    assert best.cvar == pytest.approx(floor.cvar, rel=1e-6)


def test_turnover_and_costs_against_holdings() -> None:
    # Given current holdings in three stocks and a turnover limit of 0.4
    scenarios = _returns().iloc[-252:]
    current = pd.Series({"AAPL": 0.4, "MSFT": 0.3, "AMD": 0.3})
    resolved = Constraints(max_turnover=0.4).resolve(list(scenarios.columns), current_weights=current)
    free = minimize_cvar(scenarios)
    # When minimised under the limit
    limited = minimize_cvar(scenarios, constraints=resolved)
    # Then the limit binds, and the CVaR lies between the free optimum and the holdings' own CVaR
    held = current.reindex(scenarios.columns, fill_value=0.0)
    assert np.abs(limited.weights - held).sum() == pytest.approx(0.4, abs=1e-7)
    assert free.cvar < limited.cvar < scenario_cvar(scenarios.to_numpy() @ held.to_numpy())
    # And a transaction cost of 100 bps makes trading less attractive: the portfolio stays closer to the holdings
    costly = Constraints(transaction_cost_bps=100.0).resolve(list(scenarios.columns), current_weights=current)
    with_costs = minimize_cvar(scenarios, constraints=costly)
    assert np.abs(with_costs.weights - held).sum() < np.abs(free.weights - held).sum() - 1e-3


def test_shorts_with_gross_leverage() -> None:
    # Given shorting allowed within a gross leverage of 1.6 (the cvxpy path)
    scenarios = _returns().iloc[-252:]
    constraints = Constraints(long_only=False, weight_bounds=(-0.3, 0.5), gross_leverage=1.6)
    solution = minimize_cvar(scenarios, constraints=constraints)
    # Then the weights use shorts, gross exposure is within 1.6, and the CVaR is below the long-only one
    assert solution.weights.min() < -1e-4
    assert solution.weights.abs().sum() <= 1.6 + 1e-7
    assert solution.cvar < minimize_cvar(scenarios).cvar
    assert solution.cvar == pytest.approx(scenario_cvar(scenarios.to_numpy() @ solution.weights.to_numpy()), rel=1e-6)


def test_infeasible_problems_name_the_constraints() -> None:
    scenarios = _returns().iloc[-252:]
    # A return floor above every asset's mean
    with pytest.raises(InfeasibleError) as info:
        minimize_cvar(scenarios, target_return=float(scenarios.mean().max()) * 1.5)
    assert "target_return" in info.value.constraints
    # A CVaR limit below the minimum CVaR
    least = minimize_cvar(scenarios).cvar
    with pytest.raises(InfeasibleError) as info:
        maximize_return_cvar(scenarios, cvar_limit=0.5 * least)
    assert "cvar_limit" in info.value.constraints
    # Group floors that sum above the budget
    groups = {"g1": ["AAPL", "MSFT"], "g2": ["XOM", "CVX"]}
    clash = Constraints(groups=groups, group_bounds={"g1": (0.6, None), "g2": (0.6, None)})
    with pytest.raises(InfeasibleError) as info:
        minimize_cvar(scenarios, constraints=clash)
    assert "group_bounds" in info.value.constraints


def test_unbounded_problem_raises() -> None:
    # Given scenarios where asset "a" beats "b" every time, and unlimited shorting
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 0.01, 200)
    scenarios = pd.DataFrame({"a": base + 0.001, "b": base, "c": rng.normal(0, 0.01, 200)})
    constraints = Constraints(long_only=False)
    # When the CVaR is minimised / Then long a, short b drives it to minus infinity
    with pytest.raises(UnboundedError) as info:
        minimize_cvar(scenarios, constraints=constraints)
    assert "weight_bounds" in info.value.constraints
    with pytest.raises(UnboundedError):
        maximize_return_cvar(scenarios, cvar_limit=0.02, constraints=constraints)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta": 1.0}, "beta"),
        ({"beta": 0.05}, r"confidence level\) must be in \[0.5, 1\); got 0.05"),
        ({"mu": pd.Series({"x": 0.1})}, "mu names"),
        ({"target_return": np.nan}, "target_return"),
    ],
)
def test_invalid_inputs_raise(kwargs: dict, match: str) -> None:
    scenarios = _returns().iloc[-100:, :3]
    with pytest.raises(SpecificationError, match=match):
        minimize_cvar(scenarios, **kwargs)


def test_nan_scenarios_and_te_without_cov_raise() -> None:
    scenarios = _returns().iloc[-100:, :3].copy()
    with pytest.raises(SpecificationError, match="tracking-error"):
        minimize_cvar(
            scenarios,
            constraints=Constraints(max_tracking_error=0.05).resolve(
                list(scenarios.columns), benchmark_weights=pd.Series(1 / 3, index=scenarios.columns)
            ),
        )
    scenarios.iloc[5, 1] = np.nan
    with pytest.raises(DataError, match=rf"scenarios has 1 row\(s\) with NaN.*\['{scenarios.columns[1]}'\]"):
        minimize_cvar(scenarios)


def test_optimize_entries_use_the_trailing_window() -> None:
    from portfolio_engine.optimization._dispatch import optimize
    from portfolio_engine.optimization.moments import Moments
    from portfolio_engine.optimization.spec import PortfolioSpec

    # Given 1,000 days of returns, annual moments of the last 252, and specs with a 252-day lookback
    returns = _returns()
    window = returns.iloc[-252:]
    moments = Moments(mu=window.mean() * 252, cov=window.cov() * 252)
    # When min_cvar and both mean_cvar forms are optimized through the registry
    low = optimize(PortfolioSpec(method="min_cvar", cvar_alpha=0.9), moments, returns=returns)
    floor = optimize(PortfolioSpec(method="mean_cvar", target_return=0.3), moments, returns=returns)
    capped = optimize(PortfolioSpec(method="mean_cvar", method_params={"cvar_limit": 0.02}), moments, returns=returns)
    # Then they match the core functions on the window (annual mu, per-period CVaR)
    direct = minimize_cvar(window, beta=0.9)
    np.testing.assert_allclose(low.weights.to_numpy(), direct.weights.to_numpy(), atol=1e-9)
    assert low.extras["cvar"] == pytest.approx(direct.cvar, rel=1e-12)
    assert low.extras["n_scenarios"] == 252
    assert floor.expected_return == pytest.approx(0.3, rel=1e-8)
    assert "target_return" in floor.diagnostics.active_constraints
    assert capped.extras["cvar"] == pytest.approx(0.02, rel=1e-6)
    assert "cvar_limit" in capped.diagnostics.active_constraints
    assert capped.expected_return > floor.expected_return
    # And missing inputs are refused
    with pytest.raises(SpecificationError, match="target_return"):
        optimize(PortfolioSpec(method="mean_cvar"), moments, returns=returns)
    with pytest.raises(SpecificationError, match="scenarios"):
        optimize(PortfolioSpec(method="min_cvar"), moments)
