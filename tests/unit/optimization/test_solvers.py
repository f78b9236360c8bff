"""Solver layer: fallback chain, status mapping, direct Clarabel QP, DPP re-solves, UCITS branch and bound."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest

from portfolio_engine.exceptions import InfeasibleError, SolverFailedError, UnboundedError
from portfolio_engine.optimization import Constraints
from portfolio_engine.optimization._direct_qp import DirectQP
from portfolio_engine.optimization._mv_engine import MeanVarianceEngine
from portfolio_engine.optimization._solvers import raise_for_status, solve_with_fallback
from portfolio_engine.optimization._ucits import ucits_satisfied


def _cov(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((400, n)) @ (np.eye(n) + 0.4 * rng.standard_normal((n, n))) * 0.01
    return np.cov(x, rowvar=False) * 252


def _simple_qp() -> tuple[cp.Problem, cp.Variable]:
    # min ||x - (1, 2, 0.5)||^2 s.t. sum(x) = 1, 0 <= x <= 0.6: by KKT x = (0.4, 0.6, 0) (x2 at its cap, x3 at 0,
    # x1 takes the rest of the budget)
    x = cp.Variable(3)
    target = np.array([1.0, 2.0, 0.5])
    return cp.Problem(cp.Minimize(cp.sum_squares(x - target)), [cp.sum(x) == 1, x >= 0, x <= 0.6]), x


# --- fallback chain ---------------------------------------------------------------------------------------


def test_first_solver_failing_falls_back_to_the_next() -> None:
    # Given Clarabel limited to one iteration / When solving through the chain
    problem, x = _simple_qp()
    outcome = solve_with_fallback(
        problem, solvers=("NOT-A-SOLVER", "CLARABEL", "OSQP"), options={"CLARABEL": {"max_iter": 1}}
    )
    # Then OSQP's answer is accepted and the failed attempts are reported
    assert outcome.solver == "OSQP" and outcome.status == "optimal" and outcome.fallback_used
    assert outcome.messages[0] == "NOT-A-SOLVER: not installed"
    assert outcome.messages[1].startswith("CLARABEL: status")
    np.testing.assert_allclose(x.value, [0.4, 0.6, 0.0], atol=1e-7)


def test_every_solver_failing_raises_solver_failed_with_the_attempts() -> None:
    problem, _ = _simple_qp()
    with pytest.raises(SolverFailedError) as caught:
        solve_with_fallback(problem, solvers=("CLARABEL",), options={"CLARABEL": {"max_iter": 1}})
    assert "CLARABEL: status" in str(caught.value) and caught.value.hint


def test_infeasible_and_unbounded_certificates_stop_the_chain() -> None:
    x = cp.Variable(2)
    infeasible = cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1, cp.sum(x) <= 1])
    unbounded = cp.Problem(cp.Minimize(cp.sum(x)), [x <= 1])
    assert solve_with_fallback(infeasible).status == "infeasible"
    assert solve_with_fallback(unbounded).status == "unbounded"


def test_status_maps_to_typed_errors() -> None:
    assert raise_for_status("optimal", diagnose=list, unbounded_constraints=[], what="x") is None
    with pytest.raises(InfeasibleError) as infeasible:
        raise_for_status("infeasible", diagnose=lambda: ["budget", "group_bounds"], unbounded_constraints=[], what="p")
    assert infeasible.value.constraints == ["budget", "group_bounds"]
    assert "conflicting: ['budget', 'group_bounds']" in str(infeasible.value)
    with pytest.raises(UnboundedError) as unbounded:
        raise_for_status("unbounded", diagnose=list, unbounded_constraints=["budget"], what="p")
    assert unbounded.value.constraints == ["budget"]
    with pytest.raises(SolverFailedError, match="status 'weird'"):
        raise_for_status("weird", diagnose=list, unbounded_constraints=[], what="p")


# --- direct Clarabel QP -----------------------------------------------------------------------------------


def _random_qp(seed: int, n: int = 12) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    p = _cov(n, seed)
    p = p / np.trace(p) * n
    q = rng.normal(0.0, 0.3, n)
    a_eq = np.ones((1, n))
    b_eq = np.array([1.0])
    extra = rng.normal(0.0, 1.0, (3, n))
    g = np.vstack([-np.eye(n), np.eye(n), extra])
    h = np.concatenate([np.full(n, 0.05), np.full(n, 0.35), rng.uniform(0.1, 0.5, 3)])
    return p, q, a_eq, b_eq, g, h


def _cvxpy_qp(p: np.ndarray, q: np.ndarray, a_eq: np.ndarray, b_eq: np.ndarray, g: np.ndarray, h: np.ndarray):
    x = cp.Variable(p.shape[0])
    problem = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(p)) + q @ x), [a_eq @ x == b_eq, g @ x <= h])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    return x.value, problem.value


@pytest.mark.parametrize("seed", range(8))
def test_direct_qp_matches_cvxpy_and_satisfies_kkt(seed: int) -> None:
    # Given a random QP with bounds, a budget and general rows
    p, q, a_eq, b_eq, g, h = _random_qp(seed)
    # When solving directly
    out = DirectQP(warm_start=False).solve(p, q, a_eq, b_eq, g, h)
    # Then it agrees with cvxpy and its polished point satisfies the KKT conditions to round-off
    expected, value = _cvxpy_qp(p, q, a_eq, b_eq, g, h)
    assert out.status == "optimal" and out.x is not None
    np.testing.assert_allclose(out.x, expected, atol=1e-7)
    assert 0.5 * out.x @ p @ out.x + q @ out.x == pytest.approx(value, abs=1e-9)
    assert (g @ out.x - h).max() <= 1e-12
    assert out.messages == ("polished on the active set (KKT verified)",)


def test_warm_active_set_gives_the_cold_answer_without_calling_clarabel() -> None:
    p, q, a_eq, b_eq, g, h = _random_qp(3)
    warm = DirectQP()
    warm.solve(p, q, a_eq, b_eq, g, h)
    rng = np.random.default_rng(7)
    nudged = p + 1e-3 * np.diag(rng.uniform(0, 1, p.shape[0]))  # a nearby problem (next month's covariance)
    second = warm.solve(nudged, q, a_eq, b_eq, g, h)
    cold = DirectQP(warm_start=False).solve(nudged, q, a_eq, b_eq, g, h)
    assert second.solver == "active-set" and cold.solver == "CLARABEL-direct"
    assert second.x is not None and cold.x is not None
    np.testing.assert_allclose(second.x, cold.x, atol=1e-10)


def test_direct_qp_reports_infeasible_and_unbounded() -> None:
    n = 3
    eq = np.ones((1, n))
    infeasible = DirectQP().solve(np.eye(n), np.zeros(n), eq, np.array([1.0]), -np.eye(n), -np.full(n, 0.5))
    assert infeasible.status == "infeasible" and infeasible.x is None
    # min -x1 with only sum(x) = 1: x1 grows without limit, the others going short
    q = np.array([-1.0, 0.0, 0.0])
    unbounded = DirectQP().solve(np.zeros((n, n)), q, eq, np.array([1.0]), np.zeros((0, n)), np.zeros(0))
    assert unbounded.status == "unbounded"


def test_direct_second_order_cone_matches_cvxpy() -> None:
    cov = _cov(6, 1)
    mu = np.linspace(0.02, 0.12, 6)
    factor = np.linalg.cholesky(cov).T
    # A volatility cap between the minimum-variance portfolio's and the riskiest asset's binds
    cap = 0.5 * (1 / np.sqrt(np.ones(6) @ np.linalg.solve(cov, np.ones(6))) + np.sqrt(cov[-1, -1]))
    eq, budget, g, h = np.ones((1, 6)), np.array([1.0]), -np.eye(6), np.zeros(6)
    out = DirectQP().solve(np.zeros((6, 6)), -mu, eq, budget, g, h, (factor, cap))
    w = cp.Variable(6)
    reference = cp.Problem(cp.Maximize(mu @ w), [cp.sum(w) == 1, w >= 0, cp.norm(factor @ w) <= cap])
    reference.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    assert out.x is not None
    # (a linear objective on a cone: the value is sharper than the weights)
    assert mu @ out.x == pytest.approx(mu @ w.value, abs=1e-9)
    np.testing.assert_allclose(out.x, w.value, atol=1e-5)
    assert np.sqrt(out.x @ cov @ out.x) == pytest.approx(cap, abs=1e-8)


# --- DPP: built once, re-solved ---------------------------------------------------------------------------


def test_dpp_re_solve_equals_a_fresh_solve() -> None:
    # Given a cvxpy problem (non-linear constraints force the cvxpy path) solved once
    assets = tuple("ABCDEF")
    constraints = Constraints(long_only=False, weight_bounds=(-0.3, 0.6), gross_leverage=1.6, max_turnover=1.2)
    resolved = constraints.resolve(assets, current_weights=dict.fromkeys(assets, 1 / 6))
    mu_a, mu_b = np.linspace(0.03, 0.11, 6), np.linspace(0.12, 0.02, 6)
    engine = MeanVarianceEngine()
    engine.solve("max_sharpe", mu_a, _cov(6, 1), resolved)
    problem = engine.problem("max_sharpe", resolved)
    assert problem.problem.is_dcp(dpp=True)
    # When re-solving with new moments
    w_again, _ = engine.solve("max_sharpe", mu_b, _cov(6, 2), resolved)
    # Then the same problem object was re-used and the answer equals a problem built from scratch
    assert engine.problem("max_sharpe", resolved) is problem
    w_fresh, _ = MeanVarianceEngine().solve("max_sharpe", mu_b, _cov(6, 2), resolved)
    np.testing.assert_allclose(w_again, w_fresh, atol=1e-9)


# --- UCITS: branch and bound is exact ---------------------------------------------------------------------


def test_ucits_branch_and_bound_equals_enumerating_every_binary_choice() -> None:
    # Given a scaled rule (each <= 30%, those above 15% together <= 45%) on 7 assets, where it binds
    n, limits = 7, (0.15, 0.30, 0.45)
    assets = tuple(f"A{i}" for i in range(n))
    cov = _cov(n, 5)
    mu = np.linspace(0.02, 0.20, n)
    engine = MeanVarianceEngine()
    # When solving the mixed-integer problem by branch and bound
    w, diagnostics = engine.solve("max_utility", mu, cov, Constraints(ucits=limits).resolve(assets), risk_aversion=2.0)

    # Then it equals the best of the 2^7 convex problems with the binaries fixed (S: positions allowed above 15%)
    def utility(x: np.ndarray) -> float:
        return float(mu @ x - x @ cov @ x)

    best = -np.inf
    for chosen in itertools.product([0, 1], repeat=n):
        big = [a for a, c in zip(assets, chosen, strict=True) if c]
        if limits[0] * (n - len(big)) + min(limits[2], limits[1] * len(big)) < 1.0:
            continue  # cannot hold a budget of 1: infeasible by counting
        fixed = Constraints(
            asset_bounds={a: (0.0, limits[1] if a in big else limits[0]) for a in assets},
            groups={"big": big} if big else {},
            group_bounds={"big": (None, limits[2])} if big else {},
        )
        x, _ = MeanVarianceEngine().solve("max_utility", mu, cov, fixed.resolve(assets), risk_aversion=2.0)
        best = max(best, utility(x))
    assert ucits_satisfied(w, limits)
    assert utility(w) == pytest.approx(best, abs=1e-8)
    assert any("branch and bound" in m for m in diagnostics.messages)
    # And the rule binds: without it the optimum breaks it
    unconstrained, _ = engine.solve("max_utility", mu, cov, Constraints().resolve(assets), risk_aversion=2.0)
    assert not ucits_satisfied(unconstrained, limits)
