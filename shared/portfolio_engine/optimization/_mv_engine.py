"""Solve one mean-variance objective: the direct Clarabel QP when the constraints are linear, else cvxpy (DPP).

The engine keeps what can be reused between solves: one :class:`DirectQP` per objective (sparsity
pattern, last active set) and the cvxpy problems by constraint structure (re-solved with new
Parameters, never rebuilt). When the direct path does not return an optimal point (infeasible,
unbounded, inaccurate), the cvxpy path runs: it either succeeds with its fallback chain or raises the
typed error naming the constraints.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import InfeasibleError, SolverFailedError, SpecificationError
from portfolio_engine.optimization._cvx_constraints import binding_families, conflicting_families
from portfolio_engine.optimization._direct_qp import DirectQP
from portfolio_engine.optimization._mv_cvx import OBJECTIVES, CvxMeanVariance, method_constraints
from portfolio_engine.optimization._mv_direct import HIDDEN_ROWS, Rows, build_direct, direct_eligible, linear_rows
from portfolio_engine.optimization._solvers import raise_for_status
from portfolio_engine.optimization._ucits import Node, search_binaries
from portfolio_engine.optimization.constraints import ResolvedConstraints
from portfolio_engine.optimization.moments import Moments, repair_psd
from portfolio_engine.optimization.result import SolverDiagnostics

__all__ = ["MeanVarianceEngine", "arrays_of", "checked_covariance"]


def arrays_of(moments: Moments) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """``(assets, mu, cov)``: ``mu``'s index and numpy arrays in its order."""
    assets = moments.mu.index
    cov = moments.cov
    if not cov.index.equals(assets) or not cov.columns.equals(assets):
        cov = cov.loc[assets, assets]
    return assets, moments.mu.to_numpy(dtype=float), cov.to_numpy(dtype=float)


def checked_covariance(cov: np.ndarray) -> np.ndarray:
    """``cov`` symmetrised, or a PSD repair of it (with a ``NonPSDCovarianceWarning``) when it is not PSD.

    Raises
    ------
    SpecificationError
        Not square or not finite.
    """
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not np.isfinite(cov).all():
        raise SpecificationError(
            f"The covariance must be a finite square matrix; got shape {cov.shape}.", hint="Pass Moments.cov."
        )
    cov = (cov + cov.T) / 2.0
    try:
        np.linalg.cholesky(cov)  # cheap positive-definiteness test for the usual case
    except np.linalg.LinAlgError:
        cov = np.asarray(repair_psd(cov), dtype=float)
    return cov


def _structure(objective: str, resolved: ResolvedConstraints) -> tuple[Any, ...]:
    families = tuple((f.name, f.matrix.shape, f.lower.tobytes(), f.upper.tobytes()) for f in resolved.linear)
    return (
        objective,
        resolved.assets,
        resolved.lower.tobytes(),
        resolved.upper.tobytes(),
        resolved.budget,
        families,
        resolved.max_short,
        resolved.gross_leverage,
        resolved.ucits,
        resolved.max_turnover,
        resolved.costs is not None,
        resolved.max_tracking_error is not None,
    )


class MeanVarianceEngine:
    """Solves mean-variance objectives, reusing solver state between calls.

    Parameters
    ----------
    solvers : sequence of str, optional
        cvxpy fallback chain (default ``DEFAULT_SOLVERS``).
    solver_options : mapping, optional
        Per-solver options for the cvxpy path.
    direct : bool, default True
        Use the direct Clarabel path when every constraint is linear.
    max_cached : int, default 8
        cvxpy problems kept (one per objective and constraint structure).
    """

    def __init__(
        self,
        *,
        solvers: Sequence[str] | None = None,
        solver_options: Mapping[str, Mapping[str, Any]] | None = None,
        direct: bool = True,
        max_cached: int = 8,
    ) -> None:
        self.solvers = solvers
        self.solver_options = solver_options
        self.direct = direct
        self.max_cached = max_cached
        self._direct: dict[str, DirectQP] = {}
        self._problems: dict[tuple[Any, ...], CvxMeanVariance] = {}
        self._rows: tuple[ResolvedConstraints, Rows] | None = None

    def problem(self, objective: str, resolved: ResolvedConstraints) -> CvxMeanVariance:
        """The cached DPP problem for this objective and constraint structure (built on first use)."""
        key = _structure(objective, resolved)
        problem = self._problems.get(key)
        if problem is None:
            if len(self._problems) >= self.max_cached:
                self._problems.pop(next(iter(self._problems)))
            problem = self._problems[key] = CvxMeanVariance(objective, resolved)
        return problem

    def solve(
        self,
        objective: str,
        mu: np.ndarray,
        cov: np.ndarray,
        resolved: ResolvedConstraints,
        *,
        risk_aversion: float = 1.0,
        risk_free_rate: float = 0.0,
        target: float | None = None,
        use_direct: bool | None = None,
    ) -> tuple[np.ndarray, SolverDiagnostics]:
        """Optimal weights of ``objective`` (arrays in ``resolved.assets`` order) and diagnostics.

        Raises
        ------
        SpecificationError
            Unknown objective, missing target, or ``max_sharpe`` without a positive budget.
        InfeasibleError
            No portfolio satisfies the constraints (``constraints`` names them), or for ``max_sharpe`` none
            has an expected return above the risk-free rate (``constraints == ["risk_free_rate"]``).
        UnboundedError
            The objective is unbounded (``constraints`` names the missing limits).
        SolverFailedError
            Every solver failed.
        """
        start = time.perf_counter()
        _check_request(objective, resolved, target, risk_aversion)
        cov = checked_covariance(cov)
        messages: list[str] = []
        direct = self.direct if use_direct is None else use_direct
        if direct and direct_eligible(resolved):
            solved, status = self._solve_direct(
                objective, mu, cov, resolved, risk_aversion=risk_aversion, risk_free_rate=risk_free_rate, target=target
            )
            if solved is not None:
                w, diagnostics = solved
                return w + 0.0, replace(diagnostics, solve_seconds=time.perf_counter() - start)  # no -0.0
            messages.append(f"direct path returned {status!r}; solved again through cvxpy")
        problem = self.problem(objective, resolved)
        problem.update(mu, cov, resolved, risk_aversion=risk_aversion, risk_free_rate=risk_free_rate, target=target)
        outcome = problem.solve(solvers=self.solvers, options=self.solver_options)
        if outcome.status == "infeasible" and objective == "max_sharpe":
            self._explain_sharpe(mu, cov, resolved, risk_free_rate)
        raise_for_status(
            outcome.status,
            diagnose=lambda: self._conflicts(objective, mu, cov, resolved, target),
            unbounded_constraints=_open_limits(resolved),
            what=objective,
        )
        active = [name for name in binding_families(problem.tagged) if name != "max_sharpe"]
        return problem.weights() + 0.0, SolverDiagnostics(
            solver=outcome.solver,
            status="optimal",
            iterations=outcome.iterations,
            solve_seconds=time.perf_counter() - start,
            objective=outcome.objective,
            fallback_used=outcome.fallback_used or bool(messages),
            active_constraints=tuple(active),
            messages=(*messages, *outcome.messages),
        )

    def _solve_direct(
        self,
        objective: str,
        mu: np.ndarray,
        cov: np.ndarray,
        resolved: ResolvedConstraints,
        *,
        risk_aversion: float,
        risk_free_rate: float,
        target: float | None,
    ) -> tuple[tuple[np.ndarray, SolverDiagnostics] | None, str]:
        """The direct Clarabel path (with branch and bound for UCITS); None and the status if not optimal."""
        if self._rows is None or self._rows[0] is not resolved:
            self._rows = (resolved, linear_rows(resolved))  # a backtest passes the same object at every step
        qp = build_direct(
            objective,
            mu,
            cov,
            resolved,
            risk_aversion=risk_aversion,
            risk_free_rate=risk_free_rate,
            target=target,
            rows=self._rows[1],
        )
        solver = self._direct.get(objective)
        if solver is None:
            solver = self._direct[objective] = DirectQP()
        notes: tuple[str, ...] = ()
        if resolved.ucits is None:
            out = solver.solve(qp.p, qp.q, qp.a_eq, qp.b_eq, qp.g, qp.h, qp.soc)
            iterations = out.iterations
        else:

            def node(z_lo: np.ndarray, z_hi: np.ndarray) -> Node:
                g, h = qp.with_binary_bounds(z_lo, z_hi)
                result = solver.solve(qp.p, qp.q, qp.a_eq, qp.b_eq, g, h, qp.soc)
                if result.status != "optimal" or result.x is None:
                    return Node(result.status, iterations=result.iterations, payload=result)
                x = result.x
                return Node("optimal", qp.objective(x), qp.weights(x), qp.binaries(x), result.iterations, result)

            search = search_binaries(node, resolved.n_assets, resolved.ucits)
            if search.best is None:
                return None, "infeasible" if search.root.status == "optimal" else search.root.status
            out, iterations, notes = search.best.payload, search.iterations, (search.note,)
        if out.status != "optimal" or out.x is None:
            return None, out.status
        x = out.x
        w = qp.weights(x)
        if not np.isfinite(w).all():
            return None, "failed"
        active = ["budget"] if resolved.budget is not None else []
        active += [name for name, on in zip(qp.names, out.active, strict=True) if on and name not in HIDDEN_ROWS]
        if qp.soc is not None and np.linalg.norm(qp.soc[0] @ x) >= qp.soc[1] * (1.0 - 1e-7):
            active.append("target_volatility")
        diagnostics = SolverDiagnostics(
            solver=out.solver,
            status="optimal",
            iterations=iterations,
            objective=qp.objective(x),
            active_constraints=tuple(dict.fromkeys(active)),
            messages=(*out.messages, *notes),
        )
        return (w, diagnostics), "optimal"

    @staticmethod
    def _conflicts(
        objective: str, mu: np.ndarray, cov: np.ndarray, resolved: ResolvedConstraints, target: float | None
    ) -> list[str]:
        names = conflicting_families(resolved, cov, method_constraints(objective, mu, cov, resolved, target))
        # The relaxation is feasible but no integer point is: the UCITS rule itself conflicts with the rest.
        return names or (["ucits"] if resolved.ucits is not None else [])

    def _explain_sharpe(self, mu: np.ndarray, cov: np.ndarray, resolved: ResolvedConstraints, rf: float) -> None:
        """The homogenised problem is infeasible: the constraints conflict, or nothing beats the risk-free rate."""
        names = conflicting_families(resolved, cov)
        if names:
            return  # raise_for_status names them
        w, _ = self.solve("max_return", mu, cov, resolved)
        best = float(mu @ w - (resolved.costs @ np.abs(w - resolved.current) if resolved.costs is not None else 0.0))
        if best <= rf:
            raise InfeasibleError(
                f"max_sharpe: no feasible portfolio has an expected return above the risk-free rate {rf:.6g} "
                f"(the highest attainable is {best:.6g}); the Sharpe ratio has no positive maximum.",
                constraints=["risk_free_rate"],
                hint="Lower risk_free_rate, check the expected returns, or use min_variance / max_utility.",
            )
        raise SolverFailedError(
            f"max_sharpe: the homogenised problem was reported infeasible (best attainable return {best:.6g})."
        )


def _open_limits(resolved: ResolvedConstraints) -> list[str]:
    present = set(resolved.families())
    missing = [name for name in ("budget", "gross_leverage", "net_leverage") if name not in present]
    if not (np.isfinite(resolved.lower).all() and np.isfinite(resolved.upper).all()):
        missing.insert(1, "weight_bounds")
    return missing


def _check_request(objective: str, resolved: ResolvedConstraints, target: float | None, risk_aversion: float) -> None:
    if objective not in OBJECTIVES:
        raise SpecificationError(f"Unknown mean-variance objective {objective!r}.", hint=f"Choose one of {OBJECTIVES}.")
    if objective in ("target_return", "target_risk") and (target is None or not np.isfinite(target)):
        field = "target_return" if objective == "target_return" else "target_volatility"
        raise SpecificationError(f"{objective} needs {field}; got {target!r}.", hint=f"Set {field} (annual).")
    if objective == "target_risk" and target is not None and target <= 0:
        raise SpecificationError(f"target_volatility must be > 0; got {target!r}.", hint="Give an annual volatility.")
    if objective == "max_utility" and not (np.isfinite(risk_aversion) and risk_aversion > 0):
        raise SpecificationError(f"risk_aversion must be > 0; got {risk_aversion!r}.", hint="Typical values: 1 to 10.")
    if objective == "max_sharpe" and (resolved.budget is None or resolved.budget <= 0):
        raise SpecificationError(
            f"max_sharpe needs a positive budget; got budget={resolved.budget!r}.",
            hint="Set constraints.budget (1.0 for a fully invested portfolio).",
        )
