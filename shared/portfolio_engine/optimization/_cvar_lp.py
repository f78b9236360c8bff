"""The two solve paths of :mod:`portfolio_engine.optimization.cvar`: HiGHS on the dual LP, and cvxpy on the primal.

Primal (Rockafellar-Uryasev), scenarios ``R`` (T, n), ``c = 1 / ((1 - beta) T)``:

    ``min  alpha + c 1'u   s.t.  u >= -R w - alpha 1,  u >= 0,  lo_G <= G w <= hi_G,  l <= w <= h``

where the rows ``G`` hold the budget, group / net-leverage / factor rows and a return floor. Its LP dual is

    ``max  lo_G' r+ - hi_G' r- + l' s+ - h' s-``
    ``s.t. R' q + G' (r+ - r-) + s+ - s- = 0,  1' q = 1,  0 <= q <= c,  r+-, s+- >= 0``

(a multiplier is dropped where its bound is infinite; an equality row gets one free multiplier). It has
``n + 1`` rows whatever ``T``; the primal weights are its first ``n`` equality multipliers and the VaR ``alpha``
the last one, with the signs scipy reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sps
from scipy.optimize import linprog

from portfolio_engine.exceptions import SolverFailedError, UnboundedError
from portfolio_engine.optimization._cvx_constraints import (
    TaggedConstraint,
    binding_families,
    conflicting_families,
    cvxpy_constraints,
)
from portfolio_engine.optimization._solvers import SolveOutcome, raise_for_status, solve_with_fallback
from portfolio_engine.optimization._ucits import branch_and_bound
from portfolio_engine.optimization.constraints import ResolvedConstraints

#: cvxpy chain for the primal: Clarabel (tight tolerances from the solver layer), HiGHS for plain LPs, SCS.
CVXPY_SOLVERS: tuple[str, ...] = ("CLARABEL", "HIGHS", "SCS")
#: Families whose absence can leave the CVaR (or the return) unbounded.
UNBOUNDED_FAMILIES = ["weight_bounds", "budget", "gross_leverage"]


@dataclass(frozen=True)
class CVaRProblem:
    """Validated inputs: scenarios scaled by ``1 / scale`` (unit root-mean-square), the rest in caller units."""

    returns: np.ndarray
    scale: float
    mu: np.ndarray
    beta: float
    resolved: ResolvedConstraints
    cov: np.ndarray | None
    target_return: float | None
    cvar_limit: float | None

    def method_constraints(
        self, w: cp.Variable, cvar: tuple[cp.Expression, tuple[cp.Constraint, ...]] | None = None
    ) -> list[TaggedConstraint]:
        """The method's own constraints (return floor, CVaR limit), tagged, on any weight variable.

        ``cvar`` is an existing ``(expression, definitions)`` pair for ``w``; a new one is made when None.
        """
        tagged = []
        if self.target_return is not None:
            tagged.append(TaggedConstraint("target_return", (self._mu_scaled @ w >= self._target_scaled,)))
        if self.cvar_limit is not None:
            expression, definitions = cvar if cvar is not None else self.cvar_expression(w)[:2]
            tagged.append(TaggedConstraint("cvar_limit", (*definitions, expression <= self.cvar_limit / self.scale)))
        return tagged

    def cvar_expression(self, w: cp.Variable) -> tuple[cp.Expression, tuple[cp.Constraint, ...], cp.Variable]:
        """Scaled CVaR of ``w`` as ``alpha + c sum(u)``, the constraints defining ``u`` and ``alpha`` itself."""
        t_count = self.returns.shape[0]
        alpha, excess = cp.Variable(name="value_at_risk"), cp.Variable(t_count, nonneg=True, name="tail_excess")
        cvar = alpha + cp.sum(excess) / ((1.0 - self.beta) * t_count)
        return cvar, (excess >= -(self.returns @ w) - alpha,), alpha

    @property
    def _mu_scale(self) -> float:
        return float(np.abs(self.mu).max()) or 1.0

    @property
    def _mu_scaled(self) -> np.ndarray:
        return self.mu / self._mu_scale

    @property
    def _target_scaled(self) -> float:
        return float(self.target_return or 0.0) / self._mu_scale


def _linear_rows(problem: CVaRProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack budget, linear families and the return floor as ``lo <= G w <= hi``, each row scaled to max |G| = 1."""
    resolved, n = problem.resolved, problem.returns.shape[1]
    rows: list[np.ndarray] = []
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    if resolved.budget is not None:
        rows.append(np.ones((1, n)))
        lower.append(np.array([resolved.budget]))
        upper.append(np.array([resolved.budget]))
    for family in resolved.linear:
        rows.append(family.matrix)
        lower.append(family.lower)
        upper.append(family.upper)
    if problem.target_return is not None:
        rows.append(problem.mu[None, :])
        lower.append(np.array([problem.target_return]))
        upper.append(np.array([np.inf]))
    if not rows:
        return np.zeros((0, n)), np.zeros(0), np.zeros(0)
    matrix = np.vstack(rows).astype(float)
    lo, hi = np.concatenate(lower).astype(float), np.concatenate(upper).astype(float)
    norms = np.abs(matrix).max(axis=1)
    norms[norms == 0] = 1.0
    return matrix / norms[:, None], lo / norms, hi / norms


def solve_dual(problem: CVaRProblem) -> tuple[np.ndarray, float, float, SolveOutcome]:
    """Minimum CVaR under linear constraints by HiGHS on the dual LP: weights, CVaR, VaR (unscaled), outcome."""
    start = time.perf_counter()
    r, (t_count, n) = problem.returns, problem.returns.shape
    g, g_lo, g_hi = _linear_rows(problem)
    blocks: list[sps.spmatrix] = [sps.csr_matrix(-r.T)]
    cost: list[np.ndarray] = [np.zeros(t_count)]
    lower: list[np.ndarray] = [np.zeros(t_count)]
    upper: list[np.ndarray] = [np.full(t_count, 1.0 / ((1.0 - problem.beta) * t_count))]

    def add(columns: np.ndarray, objective: np.ndarray, free: np.ndarray | None = None) -> None:
        blocks.append(sps.csr_matrix(columns))
        cost.append(objective)
        lower.append(np.where(free, -np.inf, 0.0) if free is not None else np.zeros(len(objective)))
        upper.append(np.full(len(objective), np.inf))

    equal = np.isfinite(g_lo) & (g_lo == g_hi)
    add(-g[equal].T, g_lo[equal], free=np.ones(int(equal.sum()), dtype=bool))
    has_lo, has_hi = np.isfinite(g_lo) & ~equal, np.isfinite(g_hi) & ~equal
    add(-g[has_lo].T, g_lo[has_lo])
    add(g[has_hi].T, -g_hi[has_hi])
    bounds_lo, bounds_hi = problem.resolved.lower, problem.resolved.upper
    eye = np.eye(n)
    add(-eye[:, np.isfinite(bounds_lo)], bounds_lo[np.isfinite(bounds_lo)])
    add(eye[:, np.isfinite(bounds_hi)], -bounds_hi[np.isfinite(bounds_hi)])
    top = sps.hstack(blocks)
    probability = sps.hstack([sps.csr_matrix(np.ones((1, t_count))), sps.csr_matrix((1, top.shape[1] - t_count))])
    result = linprog(
        -np.concatenate(cost),
        A_eq=sps.vstack([top, probability]).tocsc(),
        b_eq=np.r_[np.zeros(n), 1.0],
        bounds=np.c_[np.concatenate(lower), np.concatenate(upper)],
        method="highs",
    )
    if result.status in (2, 3):
        # The dual is infeasible (primal unbounded or infeasible) or unbounded (primal infeasible).
        names = conflicting_families(problem.resolved, problem.cov, problem.method_constraints)
        if names:
            raise_for_status("infeasible", diagnose=lambda: names, unbounded_constraints=[], what="min_cvar")
        raise UnboundedError(
            "min_cvar: the CVaR is unbounded below: a long-short portfolio gains in every scenario.",
            constraints=UNBOUNDED_FAMILIES,
        )
    if result.status != 0:
        raise SolverFailedError(f"min_cvar: HiGHS stopped on the dual LP: {result.message}")
    weights = _verified(np.asarray(result.eqlin.marginals[:n], dtype=float), problem, "min_cvar", "HIGHS-dual")
    outcome = SolveOutcome(
        solver="HIGHS-dual",
        status="optimal",
        iterations=int(result.nit),
        solve_seconds=time.perf_counter() - start,
        objective=-float(result.fun),
        fallback_used=False,
        messages=(),
    )
    scale = problem.scale
    return weights, -float(result.fun) * scale, -float(result.eqlin.marginals[n]) * scale, outcome


def solve_primal(problem: CVaRProblem, what: str) -> tuple[np.ndarray, float, float, SolveOutcome]:
    """Any constraint set, min CVaR or (with ``cvar_limit``) max return, in cvxpy; UCITS by branch and bound."""
    resolved, n = problem.resolved, problem.returns.shape[1]
    w = cp.Variable(n, name="weights")
    cvar, definitions, alpha = problem.cvar_expression(w)
    constraint_set = cvxpy_constraints(resolved, w, cov=problem.cov)
    constraints = [*constraint_set.constraints]
    for tagged in problem.method_constraints(w, (cvar, definitions)):
        constraints += list(tagged.constraints)
    if problem.cvar_limit is None:
        constraints += list(definitions)
    trading = 0.0 if resolved.costs is None else resolved.costs @ cp.abs(w - resolved.current)
    if problem.cvar_limit is None:
        # A trading cost is a sure loss in the first period: it shifts every scenario's loss, hence the CVaR.
        objective = cvar + trading / problem.scale
    else:
        scale = float(np.abs(problem.mu).max()) or 1.0
        objective = -(problem.mu @ w - trading) / scale
    lp = cp.Problem(cp.Minimize(objective), constraints)

    def solve() -> SolveOutcome:
        return solve_with_fallback(lp, solvers=CVXPY_SOLVERS)

    if constraint_set.branching is not None and resolved.ucits is not None:
        outcome = branch_and_bound(lp, constraint_set.branching, resolved.ucits, solve, lambda: np.asarray(w.value))
    else:
        outcome = solve()
    raise_for_status(
        outcome.status,
        diagnose=lambda: conflicting_families(resolved, problem.cov, problem.method_constraints),
        unbounded_constraints=UNBOUNDED_FAMILIES,
        what=what,
    )
    weights = _verified(np.asarray(w.value, dtype=float), problem, what, outcome.solver)
    if problem.cvar_limit is not None:
        # Under a limit the tail variables need not be at their minimum: measure the CVaR of the weights exactly.
        return weights, *scenario_tail(problem.returns @ weights, problem.beta, problem.scale), outcome
    cvar_value, var_value = float(np.asarray(cvar.value)), float(np.asarray(alpha.value))
    return weights, cvar_value * problem.scale, var_value * problem.scale, outcome


def _verified(weights: np.ndarray, problem: CVaRProblem, what: str, solver: str) -> np.ndarray:
    """``weights`` if they satisfy every constraint (and the return floor), else :class:`SolverFailedError`."""
    broken = problem.resolved.violations(weights, problem.cov)
    if problem.target_return is not None and problem.mu @ weights < problem.target_return - 1e-6 * (
        1.0 + abs(problem.target_return)
    ):
        broken["target_return"] = float(problem.target_return - problem.mu @ weights)
    if broken:
        raise SolverFailedError(
            f"{what}: the solver ({solver}) reported optimal weights that break {broken} "
            "(constraint family -> excess over its limit).",
            hint="Check the scenarios' scale and the constraints, or loosen them slightly.",
        )
    return weights


def scenario_tail(portfolio_returns: np.ndarray, beta: float, scale: float = 1.0) -> tuple[float, float]:
    """Exact ``(CVaR, VaR)`` of equally likely returns times ``scale``: the RU minimum and its minimiser.

    The minimiser is the ``(floor((1 - beta) T) + 1)``-th largest loss; the CVaR averages the worst
    ``(1 - beta) T`` losses, counting the boundary loss fractionally.
    """
    losses = -np.sort(np.asarray(portfolio_returns, dtype=float))
    tail = (1.0 - beta) * losses.size
    whole = min(int(np.floor(tail)), losses.size)
    boundary = losses[whole] if whole < losses.size else losses[-1]
    partial = boundary * (tail - whole) if whole < losses.size else 0.0
    return float((losses[:whole].sum() + partial) / tail) * scale, float(boundary) * scale


def binding(problem: CVaRProblem, weights: np.ndarray, cvar: float) -> tuple[str, ...]:
    """Constraint families holding with equality at ``weights`` (auxiliary-variable families are not detected)."""
    w = cp.Variable(len(weights))
    w.value = weights
    tagged = list(cvxpy_constraints(problem.resolved, w, cov=problem.cov).tagged)
    if problem.target_return is not None:
        tagged += [t for t in problem.method_constraints(w) if t.name == "target_return"]
    names = list(binding_families(tagged))
    if problem.cvar_limit is not None and cvar >= problem.cvar_limit - 1e-9 * max(1.0, abs(problem.cvar_limit)):
        names.append("cvar_limit")
    return tuple(names)
