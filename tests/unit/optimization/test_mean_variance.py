"""Mean-variance methods: closed forms, optimality conditions, peers, every constraint kind, error paths, dispatch."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from pypfopt import EfficientFrontier
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction
from sklearn.base import clone

from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, BundledSource, load_sectors
from portfolio_engine.exceptions import InfeasibleError, SpecificationError, UnboundedError
from portfolio_engine.optimization import (
    METHOD_REGISTRY,
    Constraints,
    MeanVarianceOptimizer,
    PortfolioSpec,
    efficient_frontier,
    efficient_return,
    efficient_risk,
    max_sharpe,
    max_utility,
    min_variance,
    optimize,
)
from portfolio_engine.optimization._mv_engine import MeanVarianceEngine
from portfolio_engine.optimization._ucits import ucits_satisfied
from portfolio_engine.optimization.moments import Moments

PEER_TOL = 1e-6


def _moments_of(returns: pd.DataFrame) -> Moments:
    return Moments(returns.mean() * 252, returns.cov() * 252)


def _simulated(n: int = 8, seed: int = 0, days: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mixing = np.eye(n) + 0.4 * rng.standard_normal((n, n))
    values = rng.standard_normal((days, n)) @ mixing * 0.01 + rng.normal(0.0004, 0.0003, n)
    return pd.DataFrame(values, columns=[f"S{i}" for i in range(n)])


@pytest.fixture(scope="module")
def stock_returns() -> pd.DataFrame:
    """Daily returns of the 20 bundled stocks over 2020-2022 (756 days)."""
    bars = BundledSource().fetch(DEFAULT_UNIVERSE)
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")[list(DEFAULT_UNIVERSE)]
    return prices.pct_change().iloc[-756:]


@pytest.fixture(scope="module")
def stocks(stock_returns: pd.DataFrame) -> Moments:
    return _moments_of(stock_returns)


@pytest.fixture(scope="module")
def sim() -> Moments:
    return _moments_of(_simulated())


def _arrays(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    return m.mu.to_numpy(), m.cov.to_numpy()


# --- closed forms and optimality conditions ----------------------------------------------------------------


@pytest.mark.parametrize("direct", [True, False])
def test_unconstrained_min_variance_is_the_closed_form(sim: Moments, direct: bool) -> None:
    # Given a budget only (shorts allowed) / When minimising variance
    w = min_variance(sim, Constraints(long_only=False), direct=direct).weights.to_numpy()
    # Then w = inv(S) 1 / 1' inv(S) 1
    _, cov = _arrays(sim)
    x = np.linalg.solve(cov, np.ones(len(w)))
    np.testing.assert_allclose(w, x / x.sum(), atol=1e-8)


@pytest.mark.parametrize("direct", [True, False])
def test_unconstrained_max_sharpe_is_the_tangency_portfolio(sim: Moments, direct: bool) -> None:
    rf = 0.01
    result = max_sharpe(sim, Constraints(long_only=False), risk_free_rate=rf, direct=direct)
    mu, cov = _arrays(sim)
    x = np.linalg.solve(cov, mu - rf)
    np.testing.assert_allclose(result.weights.to_numpy(), x / x.sum(), atol=1e-8)
    assert result.sharpe == pytest.approx(np.sqrt((mu - rf) @ np.linalg.solve(cov, mu - rf)), abs=1e-10)


def test_long_only_min_variance_satisfies_kkt(stocks: Moments) -> None:
    # Given the 20 bundled stocks / When minimising variance long-only
    result = min_variance(stocks)
    w = result.weights.to_numpy()
    gradient = 2 * stocks.cov.to_numpy() @ w
    support = w > 1e-9
    budget_multiplier = gradient[support].mean()
    # Then: feasible, equal marginal variance on the support, no cheaper asset outside it
    assert w.min() >= -1e-12 and w.sum() == pytest.approx(1.0, abs=1e-12)
    assert 3 <= support.sum() < len(w)  # some bounds bind
    np.testing.assert_allclose(gradient[support], budget_multiplier, rtol=1e-9)
    assert (gradient[~support] >= budget_multiplier * (1 - 1e-9)).all()
    assert result.diagnostics.active_constraints == ("budget", "weight_bounds")


# --- agreement with PyPortfolioOpt and skfolio on the same inputs -------------------------------------------


def _pypfopt(m: Moments) -> EfficientFrontier:
    return EfficientFrontier(m.mu, m.cov, weight_bounds=(0, 1))


def _variance(m: Moments, w: np.ndarray) -> float:
    return float(w @ m.cov.to_numpy() @ w)


def test_min_variance_objective_matches_peers(stocks: Moments, stock_returns: pd.DataFrame) -> None:
    ours = _variance(stocks, min_variance(stocks).weights.to_numpy())
    ef = _pypfopt(stocks)
    ef.min_volatility()
    assert ours == pytest.approx(_variance(stocks, ef.weights), abs=PEER_TOL)
    sk = MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK, risk_measure=RiskMeasure.VARIANCE)
    sk.fit(stock_returns)
    assert ours == pytest.approx(_variance(stocks, sk.weights_), abs=PEER_TOL)
    assert ours <= min(_variance(stocks, ef.weights), _variance(stocks, sk.weights_)) + 1e-12


def test_max_sharpe_objective_matches_peers(stocks: Moments, stock_returns: pd.DataFrame) -> None:
    rf = 0.02
    ours = max_sharpe(stocks, risk_free_rate=rf)
    ef = _pypfopt(stocks)
    ef.max_sharpe(risk_free_rate=rf)
    _, _, pp_sharpe = ef.portfolio_performance(risk_free_rate=rf)
    sk = MeanRisk(
        objective_function=ObjectiveFunction.MAXIMIZE_RATIO, risk_measure=RiskMeasure.VARIANCE, risk_free_rate=rf / 252
    ).fit(stock_returns)
    mu, cov = _arrays(stocks)
    sk_sharpe = (mu @ sk.weights_ - rf) / np.sqrt(sk.weights_ @ cov @ sk.weights_)
    assert ours.sharpe == pytest.approx(pp_sharpe, abs=PEER_TOL)
    assert ours.sharpe == pytest.approx(sk_sharpe, abs=PEER_TOL)


def test_target_return_and_utility_objectives_match_pypfopt(stocks: Moments) -> None:
    target = 0.25
    ef = _pypfopt(stocks)
    ef.efficient_return(target)
    ours = efficient_return(stocks, target)
    assert ours.expected_return == pytest.approx(target, abs=1e-9)
    assert _variance(stocks, ours.weights.to_numpy()) == pytest.approx(_variance(stocks, ef.weights), abs=PEER_TOL)
    delta = 3.0
    mu, cov = _arrays(stocks)

    def utility(w: np.ndarray) -> float:
        return float(mu @ w - delta / 2 * w @ cov @ w)

    ef = _pypfopt(stocks)
    ef.max_quadratic_utility(risk_aversion=delta)
    ours_w = max_utility(stocks, risk_aversion=delta).weights.to_numpy()
    assert utility(ours_w) == pytest.approx(utility(ef.weights), abs=PEER_TOL)
    assert utility(ours_w) >= utility(ef.weights) - 1e-12


def test_target_risk_matches_pypfopt(stocks: Moments) -> None:
    ef = _pypfopt(stocks)
    ef.efficient_risk(0.25)
    ours = efficient_risk(stocks, 0.25)
    assert ours.volatility == pytest.approx(0.25, abs=1e-8)
    assert ours.expected_return == pytest.approx(stocks.mu.to_numpy() @ ef.weights, abs=PEER_TOL)
    assert "target_volatility" in ours.diagnostics.active_constraints


def test_frontier_points_match_pypfopt_and_span_min_variance_to_max_return(stocks: Moments) -> None:
    frontier = efficient_frontier(stocks, n_points=12)
    returns, vols = frontier.expected_returns, frontier.volatilities
    assert np.all(np.diff(returns) > 0) and np.all(np.diff(vols) > 0)
    assert vols[0] == pytest.approx(min_variance(stocks).volatility, abs=1e-9)
    assert returns[-1] == pytest.approx(stocks.mu.max(), abs=1e-6)  # long-only: all in the best asset
    for target, vol in zip(returns[1:-1:3], vols[1:-1:3], strict=True):
        ef = _pypfopt(stocks)
        ef.efficient_return(target)
        assert vol**2 == pytest.approx(_variance(stocks, ef.weights), abs=PEER_TOL)


# --- every constraint kind, active ---------------------------------------------------------------------------


def test_weight_bounds_and_budget_bind(sim: Moments) -> None:
    result = min_variance(sim, Constraints(weight_bounds=(0.02, 0.15), budget=0.9))
    w = result.weights
    assert w.sum() == pytest.approx(0.9, abs=1e-12)
    assert w.max() == pytest.approx(0.15, abs=1e-10) and w.min() == pytest.approx(0.02, abs=1e-10)
    assert result.diagnostics.active_constraints == ("budget", "weight_bounds")


def test_short_and_gross_leverage_limits_bind(sim: Moments) -> None:
    free = max_sharpe(sim, Constraints(long_only=False)).weights
    assert free.clip(upper=0).abs().sum() > 0.3 and free.abs().sum() > 1.6
    short = max_sharpe(sim, Constraints(long_only=False, max_short=0.3))
    assert short.weights.clip(upper=0).abs().sum() == pytest.approx(0.3, abs=1e-8)
    assert "max_short" in short.diagnostics.active_constraints
    gross = max_sharpe(sim, Constraints(long_only=False, gross_leverage=1.6, weight_bounds=(-0.25, 0.6)))
    assert gross.weights.abs().sum() == pytest.approx(1.6, abs=1e-8)
    assert "gross_leverage" in gross.diagnostics.active_constraints


def test_net_leverage_binds_without_a_budget(sim: Moments) -> None:
    result = max_utility(
        sim, Constraints(budget=None, net_leverage=(0.5, 0.7), weight_bounds=(0, 0.3)), risk_aversion=0.5
    )
    assert result.weights.sum() == pytest.approx(0.7, abs=1e-10)
    assert "net_leverage" in result.diagnostics.active_constraints
    # (without the limit the optimum holds more than 0.7)
    free = max_utility(sim, Constraints(budget=None, weight_bounds=(0, 0.3)), risk_aversion=0.5)
    assert free.weights.sum() > 0.7 + 1e-3


def test_per_asset_bounds_bind(sim: Moments) -> None:
    # Given the asset minimum variance loads most, capped at 5 %, and another held at 10 % at least
    free = min_variance(sim).weights
    heaviest, lightest = free.idxmax(), free.idxmin()
    assert free[heaviest] > 0.1 and free[lightest] < 0.1
    bounds = {heaviest: (0.0, 0.05), lightest: (0.10, 0.5)}
    result = min_variance(sim, Constraints(asset_bounds=bounds))
    # Then both bind exactly, and the other assets keep the default (long-only, open above)
    assert result.weights[heaviest] == pytest.approx(0.05, abs=1e-10)
    assert result.weights[lightest] == pytest.approx(0.10, abs=1e-10)
    assert "weight_bounds" in result.diagnostics.active_constraints
    assert result.volatility > min_variance(sim).volatility


def test_sector_limits_bind(stocks: Moments) -> None:
    sectors = load_sectors()
    groups: dict[str, list[str]] = {}
    for symbol, sector in sectors.items():
        groups.setdefault(sector, []).append(symbol)
    free = min_variance(stocks).weights.groupby(sectors).sum()
    assert free.max() > 0.3
    result = min_variance(stocks, Constraints(groups=groups, group_bounds=dict.fromkeys(groups, (0.02, 0.3))))
    by_sector = result.weights.groupby(sectors).sum()
    assert by_sector.max() == pytest.approx(0.3, abs=1e-10) and by_sector.min() >= 0.02 - 1e-10
    assert "group_bounds" in result.diagnostics.active_constraints


def test_ucits_5_10_40_binds_and_holds_exactly(stocks: Moments) -> None:
    free = min_variance(stocks).weights.to_numpy()
    assert not ucits_satisfied(free, (0.05, 0.10, 0.40))
    result = min_variance(stocks, Constraints(ucits=True))
    w = result.weights.to_numpy()
    assert w.max() <= 0.10 + 1e-9
    assert w[w > 0.05 + 1e-9].sum() <= 0.40 + 1e-9
    assert "ucits" in result.diagnostics.active_constraints
    assert result.volatility > np.sqrt(free @ stocks.cov.to_numpy() @ free)


def test_turnover_limit_and_transaction_costs_pull_toward_holdings(sim: Moments) -> None:
    current = pd.Series(1 / 8, index=sim.mu.index)
    free = min_variance(sim).weights
    assert (free - current).abs().sum() > 0.5
    limited = min_variance(sim, Constraints(max_turnover=0.25), current_weights=current)
    assert (limited.weights - current).abs().sum() == pytest.approx(0.25, abs=1e-8)
    assert "max_turnover" in limited.diagnostics.active_constraints
    # Costs: the higher the rate, the closer to the holdings; a prohibitive rate keeps them
    distances = [
        (min_variance(sim, Constraints(transaction_cost_bps=bps), current_weights=current).weights - current)
        .abs()
        .sum()
        for bps in (0.0, 5.0, 20.0, 10_000.0)
    ]
    assert distances[0] == pytest.approx((free - current).abs().sum(), abs=1e-7)
    assert distances[0] > distances[1] > distances[2] > distances[3]
    assert distances[3] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize(
    ("objective", "target"),
    [("max_sharpe", None), ("max_utility", None), ("target_return", 0.05), ("target_risk", 0.2), ("max_return", None)],
)
def test_every_objective_charges_costs_and_limits_turnover(sim: Moments, objective: str, target) -> None:
    # Given equal-weight holdings (which meet the targets) and a prohibitive cost / When optimizing
    current = pd.Series(1 / 8, index=sim.mu.index)
    target_kwargs = {"target_return": target} if objective == "target_return" else {"target_volatility": target}
    free = MeanVarianceOptimizer(objective, **target_kwargs).solve(sim).weights
    assert (free - current).abs().sum() > 0.3
    costly = MeanVarianceOptimizer(objective, Constraints(transaction_cost_bps=10_000), **target_kwargs)
    # Then the holdings are kept, and a turnover limit binds
    np.testing.assert_allclose(costly.solve(sim, current_weights=current).weights, current, atol=1e-6)
    limited = MeanVarianceOptimizer(objective, Constraints(max_turnover=0.2), **target_kwargs)
    traded = (limited.solve(sim, current_weights=current).weights - current).abs().sum()
    assert traded == pytest.approx(0.2, abs=1e-7)


def test_tracking_error_limit_binds(sim: Moments) -> None:
    benchmark = pd.Series(1 / 8, index=sim.mu.index)
    cov = sim.cov.to_numpy()

    def te(w: pd.Series) -> float:
        d = (w - benchmark).to_numpy()
        return float(np.sqrt(d @ cov @ d))

    assert te(max_sharpe(sim).weights) > 0.05
    result = max_sharpe(sim, Constraints(max_tracking_error=0.05), benchmark_weights=benchmark)
    assert te(result.weights) == pytest.approx(0.05, abs=1e-8)
    assert "max_tracking_error" in result.diagnostics.active_constraints


def test_factor_exposure_bounds_bind(stocks: Moments, stock_returns: pd.DataFrame) -> None:
    market = stock_returns.mean(axis=1)
    betas = stock_returns.apply(lambda r: r.cov(market) / market.var())
    loadings = pd.DataFrame({"beta": betas})
    assert betas @ min_variance(stocks).weights < 0.85
    result = min_variance(stocks, Constraints(factor_exposure_bounds={"beta": (0.95, 1.05)}), factor_loadings=loadings)
    assert betas @ result.weights == pytest.approx(0.95, abs=1e-10)
    assert "factor_exposure_bounds" in result.diagnostics.active_constraints


# --- the direct path equals the cvxpy path --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objective", "target"),
    [
        ("min_variance", None),
        ("max_sharpe", None),
        ("target_return", 0.2),
        ("target_risk", 0.24),
        ("max_utility", None),
        ("max_return", None),
    ],
)
def test_direct_path_equals_cvxpy_path(stocks: Moments, stock_returns: pd.DataFrame, objective: str, target) -> None:
    sectors = load_sectors()
    market = stock_returns.mean(axis=1)
    loadings = pd.DataFrame({"beta": stock_returns.apply(lambda r: r.cov(market) / market.var())})
    constraints = Constraints(
        weight_bounds=(0.0, 0.25),
        groups={"staples": [s for s, v in sectors.items() if v == "Consumer Staples"]},
        group_bounds={"staples": (None, 0.3)},
        factor_exposure_bounds={"beta": (0.8, 1.1)},
    )
    assets = tuple(stocks.mu.index)
    resolved = constraints.resolve(assets, factor_loadings=loadings)
    mu, cov = _arrays(stocks)
    kwargs = {"risk_aversion": 4.0, "risk_free_rate": 0.02, "target": target}
    direct, d_diag = MeanVarianceEngine().solve(objective, mu, cov, resolved, use_direct=True, **kwargs)
    via_cvxpy, c_diag = MeanVarianceEngine().solve(objective, mu, cov, resolved, use_direct=False, **kwargs)
    assert d_diag.solver in ("CLARABEL-direct", "active-set") and c_diag.solver == "CLARABEL"
    # target_risk maximises a linear objective over a cone: an interior point (Clarabel stalls near 1e-10 here)
    # places those weights only to ~sqrt(tolerance); the direct path's are polished exactly, so there the
    # objective is compared tightly and the weights to the cvxpy path's own accuracy.
    weight_tol = 5e-6 if objective == "target_risk" else 1e-7
    np.testing.assert_allclose(direct, via_cvxpy, atol=weight_tol)
    assert mu @ direct == pytest.approx(mu @ via_cvxpy, abs=1e-10)
    assert direct @ cov @ direct == pytest.approx(via_cvxpy @ cov @ via_cvxpy, abs=1e-10)
    assert set(d_diag.active_constraints) == set(c_diag.active_constraints)


# --- error paths ---------------------------------------------------------------------------------------------


def test_group_minima_over_the_budget_are_infeasible_and_named(sim: Moments) -> None:
    assets = list(sim.mu.index)
    constraints = Constraints(
        groups={"a": assets[:3], "b": assets[3:6]}, group_bounds={"a": (0.6, None), "b": (0.6, None)}
    )
    with pytest.raises(InfeasibleError) as caught:
        min_variance(sim, constraints)
    assert {"group_bounds", "budget"} <= set(caught.value.constraints)
    assert "group_bounds" in str(caught.value) and caught.value.hint


def test_ucits_that_cannot_hold_the_budget_is_infeasible_and_named(sim: Moments) -> None:
    # Given 5 assets under 5/10/40: at most four positions above 5 % (0.4) and the fifth at 5 %, 0.45 < 1
    five = Moments(sim.mu.iloc[:5], sim.cov.iloc[:5, :5])
    with pytest.raises(InfeasibleError) as caught:
        min_variance(five, Constraints(ucits=True))
    assert "ucits" in caught.value.constraints and caught.value.hint


def test_target_above_the_best_return_names_target_return(sim: Moments) -> None:
    with pytest.raises(InfeasibleError) as caught:
        efficient_return(sim, 10.0)
    assert "target_return" in caught.value.constraints


def test_no_budget_with_shorts_makes_max_return_unbounded(sim: Moments) -> None:
    open_constraints = Constraints(long_only=False, budget=None)
    with pytest.raises(UnboundedError) as caught:
        MeanVarianceOptimizer("max_return", open_constraints).solve(sim)
    assert caught.value.constraints == ["budget", "weight_bounds", "gross_leverage", "net_leverage"]
    with pytest.raises(UnboundedError):
        efficient_frontier(sim, open_constraints)


def test_max_sharpe_when_nothing_beats_the_risk_free_rate(sim: Moments) -> None:
    with pytest.raises(InfeasibleError) as caught:
        max_sharpe(sim, risk_free_rate=float(sim.mu.max()) + 0.01)
    assert caught.value.constraints == ["risk_free_rate"]
    assert "no feasible portfolio has an expected return above the risk-free rate" in str(caught.value)


def test_bad_requests_are_specification_errors(sim: Moments) -> None:
    with pytest.raises(SpecificationError, match="max_sharpe needs a positive budget"):
        max_sharpe(sim, Constraints(budget=None))
    with pytest.raises(SpecificationError, match="target_return needs target_return"):
        MeanVarianceOptimizer("target_return").solve(sim)
    with pytest.raises(SpecificationError, match="Unknown mean-variance objective 'min_risk'"):
        MeanVarianceOptimizer("min_risk").solve(sim)


# --- estimator contract, fallback, dispatch -------------------------------------------------------------------


def test_estimator_contract_fit_predict_clone() -> None:
    returns = _simulated()
    optimizer = MeanVarianceOptimizer("max_sharpe", Constraints(weight_bounds=(0, 0.4)), risk_free_rate=0.01)
    assert optimizer.fit(returns) is optimizer
    assert optimizer.weights_.sum() == pytest.approx(1.0, abs=1e-12) and optimizer.weights_.max() <= 0.4 + 1e-12
    np.testing.assert_allclose(
        optimizer.predict(returns).to_numpy(), returns.to_numpy() @ optimizer.weights_.to_numpy()
    )
    twin = clone(optimizer)
    assert twin.get_params() == optimizer.get_params() and not hasattr(twin, "weights_")
    expected = max_sharpe(_moments_of(returns), Constraints(weight_bounds=(0, 0.4)), risk_free_rate=0.01)
    np.testing.assert_allclose(optimizer.weights_, expected.weights, atol=1e-10)


def test_a_fitted_optimizer_pickles_and_refits_the_same() -> None:
    returns = _simulated()
    optimizer = MeanVarianceOptimizer("min_variance", Constraints(max_turnover=1.5)).fit(returns)
    restored = pickle.loads(pickle.dumps(optimizer))
    assert restored.weights_.equals(optimizer.weights_)
    assert restored.fit(returns).weights_.equals(optimizer.weights_)


def test_solver_fallback_is_reported(sim: Moments) -> None:
    optimizer = MeanVarianceOptimizer("min_variance", direct=False, solver_options={"CLARABEL": {"max_iter": 2}})
    result = optimizer.solve(sim)
    assert result.diagnostics.fallback_used and result.diagnostics.solver == "OSQP"
    np.testing.assert_allclose(result.weights, min_variance(sim).weights, atol=1e-6)


def test_optimize_dispatches_mean_variance_methods(sim: Moments) -> None:
    spec = PortfolioSpec(method="max_utility", risk_aversion=2.0)
    assert optimize(spec, sim).weights.equals(max_utility(sim, risk_aversion=2.0).weights)
    frontier_spec = PortfolioSpec(method="efficient_frontier", frontier_points=8, risk_free_rate=0.01)
    best = optimize(frontier_spec, sim)
    assert best.frontier is not None and len(best.frontier.points) == 8
    assert best.sharpe == pytest.approx(best.frontier.sharpe_ratios.max())
    assert best.sharpe <= max_sharpe(sim, risk_free_rate=0.01).sharpe + 1e-12


def test_optimize_applies_the_regime_policy_and_the_universe(sim: Moments) -> None:
    universe = list(sim.mu.index[:5])
    spec = PortfolioSpec(
        method="max_sharpe", universe=universe, regime_policies={"turbulent": {"method": "min_variance"}}
    )
    calm = optimize(spec, sim, regime="calm")
    turbulent = optimize(spec, sim, regime="turbulent")
    subset = Moments(sim.mu[universe], sim.cov.loc[universe, universe])
    assert list(turbulent.weights.index) == universe
    np.testing.assert_allclose(turbulent.weights, min_variance(subset).weights, atol=1e-12)
    np.testing.assert_allclose(calm.weights, max_sharpe(subset).weights, atol=1e-12)
    with pytest.raises(SpecificationError, match=r"names \['ZZZ'\]"):
        optimize(spec.model_copy(update={"universe": ["ZZZ"]}), sim)
    # With a 4-state model's names the `turbulent` policy applies to its highest-variance state, state_3
    four = ["state_0", "state_1", "state_2", "state_3"]
    np.testing.assert_allclose(optimize(spec, sim, regime="state_3", state_names=four).weights, turbulent.weights)
    np.testing.assert_allclose(optimize(spec, sim, regime="state_2", state_names=four).weights, calm.weights)


def test_optimize_names_a_method_nobody_registered(sim: Moments, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(METHOD_REGISTRY, "hrp", raising=False)
    with pytest.raises(SpecificationError, match="Method 'hrp' is not available"):
        optimize(PortfolioSpec(method="hrp"), sim)


def test_non_psd_covariance_is_repaired_with_a_warning(sim: Moments) -> None:
    cov = sim.cov.to_numpy().copy()
    values, vectors = np.linalg.eigh(cov)
    values[0] = -1e-3
    broken = (vectors * values) @ vectors.T
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = MeanVarianceOptimizer().solve_weights(None, broken, assets=tuple(sim.mu.index))
    assert any("positive semi-definite" in str(c.message) for c in caught)
    assert w.sum() == pytest.approx(1.0, abs=1e-10) and w.min() >= -1e-12
