"""Mean-variance problems built once in cvxpy with Parameters (DPP) and re-solved with new moments.

Every objective is scaled so that its value is O(1) whatever the units: with ``s`` the mean variance
(``trace(Sigma) / n``) the covariance factor Parameter is ``F = Sigma^(1/2) / sqrt(s)``, so
``||F w||^2 = w' Sigma w / s``; return terms are divided by ``lambda s`` (utility) or by ``max |mu|``.

Objectives (``c`` the transaction cost per unit traded, ``|w - w0|`` the trades; costs are charged once
against the annual expected return):

* ``min_variance``: minimise ``w' Sigma w + c'|w - w0|``;
* ``max_utility``: maximise ``mu' w - c'|w - w0| - lambda/2 w' Sigma w``;
* ``target_return``: minimise ``w' Sigma w + c'|w - w0|`` subject to ``mu' w - c'|w - w0| >= r``;
* ``target_risk``: maximise ``mu' w - c'|w - w0|`` subject to ``sqrt(w' Sigma w) <= sigma``;
* ``max_return``: maximise ``mu' w - c'|w - w0|`` (the top of the frontier);
* ``max_sharpe``: maximise ``(mu' w - c'|w - w0| - r_f) / sqrt(w' Sigma w)`` by the Charnes-Cooper
  transformation ``y = k w``, ``k >= 0``: minimise ``y' Sigma y`` subject to
  ``(mu - r_f)' y - c'|y - k w0| >= 1`` and every constraint homogenised (``A w <= b`` -> ``A y <= b k``).
  It needs a budget (``sum(w) = b > 0``) for ``r_f`` to be charged on the whole portfolio.

References
----------
.. [1] Markowitz, H. (1952). "Portfolio Selection". Journal of Finance 7(1), 77-91.
.. [2] Charnes, A. and Cooper, W. W. (1962). "Programming with linear fractional functionals". Naval Research
   Logistics Quarterly 9(3-4), 181-186.
.. [3] Cornuejols, G. and Tutuncu, R. (2007). Optimization Methods in Finance, section 8.2 (maximum Sharpe ratio
   as a convex quadratic program). Cambridge University Press.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cvxpy as cp
import numpy as np

from portfolio_engine.optimization._cvx_constraints import CvxInputs, TaggedConstraint, cvxpy_constraints
from portfolio_engine.optimization._linalg import psd_factor, return_scale, variance_scale
from portfolio_engine.optimization._solvers import SolveOutcome, solve_with_fallback
from portfolio_engine.optimization._ucits import branch_and_bound
from portfolio_engine.optimization.constraints import ResolvedConstraints

__all__ = ["OBJECTIVES", "CvxMeanVariance", "method_constraints"]

OBJECTIVES: tuple[str, ...] = (
    "min_variance",
    "max_sharpe",
    "target_return",
    "target_risk",
    "max_utility",
    "max_return",
)


def _scalar(value: object) -> float:
    return float(np.asarray(value, dtype=float))


class CvxMeanVariance:
    """One mean-variance objective over one constraint structure, as a DPP cvxpy problem.

    Parameters
    ----------
    objective : str
        One of :data:`OBJECTIVES`.
    resolved : ResolvedConstraints
        Fixes the structure (bounds, families); holdings, benchmark and loadings are Parameters.
    """

    def __init__(self, objective: str, resolved: ResolvedConstraints) -> None:
        n = resolved.n_assets
        self.objective = objective
        self.ucits = resolved.ucits
        self.factor = cp.Parameter((n, n), name="cov_factor")
        self.inputs = CvxInputs.parameters(resolved, self.factor)
        self.w = cp.Variable(n, name="weights")
        self.k: cp.Variable | None = cp.Variable(nonneg=True, name="scale") if objective == "max_sharpe" else None
        k: Any = self.k if self.k is not None else 1.0
        built = cvxpy_constraints(resolved, self.w, inputs=self.inputs, scale=k)
        self.branching = built.branching
        self.mu_obj = cp.Parameter(n, name="mu_objective")
        self.mu_con = cp.Parameter(n, name="mu")
        self.target = cp.Parameter(nonneg=objective == "target_risk", name="target")
        self.cost_obj = cp.Parameter(n, nonneg=True, name="cost_objective")
        self.cost_con = cp.Parameter(n, nonneg=True, name="cost")
        self.has_cost = resolved.costs is not None
        auxiliary: list[cp.Constraint] = []
        cost_obj: Any = 0.0
        cost_con: Any = 0.0
        if self.has_cost:
            # A trade variable keeps "parameter @ |trade|" DPP (|w - w0 k| would multiply two parameters).
            trade = cp.Variable(n, name="trades")
            auxiliary.append(trade == self.w - self.inputs.current * k)
            cost_obj, cost_con = self.cost_obj @ cp.abs(trade), self.cost_con @ cp.abs(trade)
        risk = cp.sum_squares(self.factor @ self.w)
        method: list[TaggedConstraint] = []
        if objective == "min_variance":
            expression = risk + cost_obj
        elif objective == "max_utility":
            expression = 0.5 * risk - self.mu_obj @ self.w + cost_obj
        elif objective == "target_return":
            expression = risk + cost_obj
            method.append(TaggedConstraint("target_return", (self.mu_con @ self.w - cost_con >= self.target,)))
        elif objective == "target_risk":
            expression = cost_obj - self.mu_obj @ self.w
            method.append(TaggedConstraint("target_volatility", (cp.norm(self.factor @ self.w) <= self.target,)))
        elif objective == "max_return":
            expression = cost_obj - self.mu_obj @ self.w
        elif objective == "max_sharpe":
            expression = risk
            method.append(TaggedConstraint("max_sharpe", (self.mu_obj @ self.w - cost_obj >= 1.0,)))
        else:
            raise ValueError(f"unknown objective {objective!r}")
        self.tagged: tuple[TaggedConstraint, ...] = (*built.tagged, *method)
        constraints = [c for t in self.tagged for c in t.all] + auxiliary
        self.problem = cp.Problem(cp.Minimize(expression), constraints)
        if not self.problem.is_dcp(dpp=True):  # type: ignore[call-arg]  # pragma: no cover - a construction bug, not a user error
            raise AssertionError(f"mean-variance problem {objective!r} is not DPP")

    def update(
        self,
        mu: np.ndarray,
        cov: np.ndarray,
        resolved: ResolvedConstraints,
        *,
        risk_aversion: float,
        risk_free_rate: float,
        target: float | None,
    ) -> None:
        """Fill every Parameter for one solve (the covariance must be symmetric PSD)."""
        n = len(mu)
        scale = variance_scale(cov)
        self.factor.value = psd_factor(cov) / np.sqrt(scale)
        self.inputs.assign(resolved, scale)
        costs = resolved.costs if resolved.costs is not None else np.zeros(n)
        objective = self.objective
        if objective == "min_variance":
            self.cost_obj.value = costs / scale
        elif objective == "max_utility":
            self.mu_obj.value = mu / (risk_aversion * scale)
            self.cost_obj.value = costs / (risk_aversion * scale)
        elif objective == "target_return":
            self.mu_con.value, self.cost_con.value, self.cost_obj.value = mu, costs, costs / scale
            self.target.value = float(target if target is not None else 0.0)
        elif objective in ("target_risk", "max_return"):
            m = return_scale(mu)
            self.mu_obj.value, self.cost_obj.value = mu / m, costs / m
            if objective == "target_risk":
                self.target.value = float(target if target is not None else 0.0) / np.sqrt(scale)
        else:  # max_sharpe
            excess = mu - risk_free_rate
            m = return_scale(excess)
            self.mu_obj.value, self.cost_obj.value = excess / m, costs / m

    def weights(self) -> np.ndarray:
        """The solution's weights (``y / k`` for the maximum Sharpe ratio)."""
        w = np.asarray(self.w.value, dtype=float)
        if self.k is not None:
            return w / max(_scalar(self.k.value), 1e-300)
        return w

    def solve(
        self,
        *,
        solvers: Sequence[str] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> SolveOutcome:
        """Solve with the fallback chain (and branch and bound when UCITS is on)."""

        def once() -> SolveOutcome:
            return solve_with_fallback(self.problem, solvers=solvers, options=options)

        if self.branching is None or self.ucits is None:
            return once()
        k = self.k

        def scale() -> float:
            return 1.0 if k is None else _scalar(k.value)

        return branch_and_bound(self.problem, self.branching, self.ucits, once, self.weights, scale)


def method_constraints(
    objective: str,
    mu: np.ndarray,
    cov: np.ndarray,
    resolved: ResolvedConstraints,
    target: float | None,
) -> Callable[[cp.Variable], list[TaggedConstraint]]:
    """The method's own constraints on plain weights, as constants (for infeasibility diagnosis)."""

    def build(w: cp.Variable) -> list[TaggedConstraint]:
        if objective == "target_return" and target is not None:
            cost: Any = 0.0
            if resolved.costs is not None:
                cost = resolved.costs @ cp.abs(w - resolved.current)
            return [TaggedConstraint("target_return", (mu @ w - cost >= target,))]
        if objective == "target_risk" and target is not None:
            return [TaggedConstraint("target_volatility", (cp.norm(psd_factor(cov) @ w) <= target,))]
        return []

    return build
