"""Risk parity by Spinu's Newton iteration: closed forms, budgets, skfolio's RiskBudgeting, error paths."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, BundledSource
from portfolio_engine.exceptions import SolverFailedError, SpecificationError
from portfolio_engine.optimization.risk_parity import risk_budgeting_weights


@lru_cache(maxsize=1)
def _returns() -> pd.DataFrame:
    """Daily returns of the 20 bundled stocks over their last three years (2020-2022)."""
    bars = BundledSource().fetch(DEFAULT_UNIVERSE)
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    return prices.pct_change().dropna().iloc[-756:]


def _shares(weights: pd.Series, cov: pd.DataFrame) -> np.ndarray:
    """Risk contributions as fractions of the variance, computed from scratch."""
    w = weights.reindex(cov.index).to_numpy()
    contributions = w * (cov.to_numpy() @ w)
    return contributions / contributions.sum()


def test_erc_on_real_stocks_has_equal_risk_contributions() -> None:
    # Given the annual sample covariance of 20 real stocks
    cov = _returns().cov() * 252
    # When the equal-risk-contribution portfolio is solved
    solution = risk_budgeting_weights(cov)
    # Then every asset carries 1/20 of the variance, to 1e-10 relative, long-only and fully invested
    np.testing.assert_allclose(_shares(solution.weights, cov), 1 / 20, rtol=1e-10, atol=0)
    assert solution.max_relative_error <= 1e-10
    assert (solution.weights > 0).all()
    assert solution.weights.sum() == pytest.approx(1.0, abs=1e-14)
    assert solution.iterations < 20


def test_constant_correlation_gives_inverse_volatility() -> None:
    # Given equal pairwise correlations, ERC has the closed form w_i proportional to 1 / sigma_i (Maillard et al.)
    vols = np.array([0.1, 0.2, 0.25, 0.4, 0.6])
    corr = np.full((5, 5), 0.35) + 0.65 * np.eye(5)
    names = list("VWXYZ")
    cov = pd.DataFrame(corr * np.outer(vols, vols), index=names, columns=names)
    # When solved / Then it equals the normalised inverse volatilities
    weights = risk_budgeting_weights(cov).weights
    np.testing.assert_allclose(weights.to_numpy(), (1 / vols) / (1 / vols).sum(), rtol=1e-12)


def test_two_assets_budgets_have_closed_form() -> None:
    # Given two uncorrelated assets and budgets 0.8 / 0.2: RC_i = w_i^2 sigma_i^2, so w_i ~ sqrt(b_i) / sigma_i
    cov = pd.DataFrame(np.diag([0.04, 0.09]), index=["x", "y"], columns=["x", "y"])
    weights = risk_budgeting_weights(cov, pd.Series({"x": 0.8, "y": 0.2}), budget=2.0).weights
    expected = np.sqrt([0.8, 0.2]) / np.array([0.2, 0.3])
    # Then the weights match the closed form scaled to the budget of 2
    np.testing.assert_allclose(weights.to_numpy(), 2 * expected / expected.sum(), rtol=1e-12)


def test_risk_budgets_are_respected_and_zero_budget_excludes() -> None:
    # Given random budgets with one asset at zero
    cov = _returns().cov() * 252
    rng = np.random.default_rng(11)
    budgets = pd.Series(rng.uniform(0.5, 3.0, len(cov)), index=cov.index)
    budgets.iloc[3] = 0.0
    # When solved
    solution = risk_budgeting_weights(cov, budgets, budget=0.6)
    # Then the zero-budget asset is excluded and the others carry their budget share of risk
    shares = _shares(solution.weights, cov)
    target = (budgets / budgets.sum()).to_numpy()
    assert solution.weights.iloc[3] == 0.0
    keep = target > 0
    np.testing.assert_allclose(shares[keep], target[keep], rtol=1e-10, atol=0)
    assert solution.weights.sum() == pytest.approx(0.6, abs=1e-14)


@pytest.mark.parametrize("budgeted", [False, True])
def test_matches_skfolio_risk_budgeting(budgeted: bool) -> None:
    from skfolio import RiskMeasure
    from skfolio.optimization import RiskBudgeting

    # Given real returns and (optionally) unequal budgets
    returns = _returns()
    budgets = np.linspace(1.0, 3.0, returns.shape[1]) if budgeted else None
    # When skfolio (cvxpy + Clarabel at tight tolerances) and we solve the same problem
    tight = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-12}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, risk_budget=budgets, solver_params=tight)
        reference.fit(returns)
    cov = returns.cov() * 252
    ours = risk_budgeting_weights(cov, None if budgets is None else pd.Series(budgets, index=cov.index)).weights
    # Then weights agree to 1e-6 and the portfolio variance (the objective skfolio minimises) to 1e-8 relative
    np.testing.assert_allclose(ours.to_numpy(), reference.weights_, rtol=0, atol=1e-6)
    sigma = cov.to_numpy()
    ours_var, ref_var = ours.to_numpy() @ sigma @ ours.to_numpy(), reference.weights_ @ sigma @ reference.weights_
    assert ours_var == pytest.approx(ref_var, rel=1e-8)
    # And ours is the more exact of the two on the risk-budget condition
    target = np.full(len(cov), 1 / len(cov)) if budgets is None else budgets / budgets.sum()
    ref_error = np.abs(_shares(pd.Series(reference.weights_, index=cov.index), cov) / target - 1).max()
    assert np.abs(_shares(ours, cov) / target - 1).max() <= min(ref_error, 1e-10)


def test_units_do_not_matter() -> None:
    # Given a daily and an annual covariance of the same returns
    daily = _returns().cov()
    # Then the weights are the same (the iteration runs on the correlation matrix)
    np.testing.assert_allclose(
        risk_budgeting_weights(daily).weights.to_numpy(),
        risk_budgeting_weights(daily * 252).weights.to_numpy(),
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    ("budgets", "match"),
    [
        ([1.0, -1.0, 1.0], "non-negative"),
        ([0.0, 0.0, 0.0], "not all zero"),
        ([1.0, np.nan, 1.0], "finite"),
    ],
)
def test_invalid_risk_budgets_raise(budgets: list[float], match: str) -> None:
    cov = pd.DataFrame(np.eye(3) * 0.04, index=list("abc"), columns=list("abc"))
    with pytest.raises(SpecificationError, match=match):
        risk_budgeting_weights(cov, pd.Series(budgets, index=list("abc")))


def test_invalid_inputs_raise() -> None:
    names = list("abc")
    singular = pd.DataFrame(np.ones((3, 3)) * 0.04, index=names, columns=names)
    with pytest.raises(SpecificationError, match="positive definite"):
        risk_budgeting_weights(singular)
    good = pd.DataFrame(np.eye(3) * 0.04, index=names, columns=names)
    with pytest.raises(SpecificationError, match="budget must be > 0"):
        risk_budgeting_weights(good, budget=-1.0)
    with pytest.raises(SpecificationError, match="risk budget"):
        risk_budgeting_weights(good, pd.Series([1.0, 1.0], index=["a", "b"]))
    riskless = pd.DataFrame(np.diag([0.04, 0.0, 0.04]), index=names, columns=names)
    with pytest.raises(SpecificationError, match="zero variance"):
        risk_budgeting_weights(riskless)
    # A riskless asset with a zero budget is simply excluded
    weights = risk_budgeting_weights(riskless, pd.Series([1.0, 0.0, 1.0], index=names)).weights
    np.testing.assert_allclose(weights.to_numpy(), [0.5, 0.0, 0.5], rtol=1e-14)


def test_iteration_limit_raises_solver_failed() -> None:
    cov = _returns().cov() * 252
    with pytest.raises(SolverFailedError, match="relative error"):
        risk_budgeting_weights(cov, max_iter=1)


def test_optimize_entry_reads_risk_budgets_and_refuses_other_constraints() -> None:
    from portfolio_engine.optimization._dispatch import optimize
    from portfolio_engine.optimization.moments import Moments
    from portfolio_engine.optimization.spec import PortfolioSpec

    # Given a spec with risk budgets (and the moments' covariance)
    returns = _returns()
    moments = Moments(mu=returns.mean() * 252, cov=returns.cov() * 252)
    budgets = dict(zip(returns.columns, np.linspace(1.0, 2.0, returns.shape[1]), strict=True))
    result = optimize(PortfolioSpec(method="risk_parity", constraints={"risk_budgets": budgets}), moments)
    # Then the result's variance shares (result.py's risk contributions) are the normalised budgets
    expected = np.array(list(budgets.values())) / sum(budgets.values())
    np.testing.assert_allclose(result.risk_contributions.to_numpy(), expected, rtol=1e-10)
    assert result.diagnostics.solver == "newton-spinu"
    # And constraints risk parity cannot honour are refused by name
    spec = PortfolioSpec(
        method="risk_parity",
        constraints={"weight_bounds": (0.0, 0.1), "groups": {"g": ["AAPL"]}, "group_bounds": {"g": (None, 0.05)}},
    )
    with pytest.raises(SpecificationError, match=r"weight_bounds.*group_bounds") as info:
        optimize(spec, moments)
    assert "min_variance" in info.value.hint
    # And method_params: a typo is refused by name, the rebalancing rule's settings (read outside) are not
    with pytest.raises(SpecificationError, match=r"risk_parity does not read method_params \['tolerance'\]"):
        optimize(PortfolioSpec(method="risk_parity", method_params={"tolerance": 1e-8}), moments)
    with_rule = PortfolioSpec(method="risk_parity", method_params={"rebalance": {"drift_threshold": 0.05}})
    np.testing.assert_allclose(optimize(with_rule, moments).weights, risk_budgeting_weights(moments.cov).weights)
