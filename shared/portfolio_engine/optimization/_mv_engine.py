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

from portfolio_engine.exceptions import InfeasibleError, SolverFailedError, SpecificationError, UnboundedError
from portfolio_engine.optimization._cvx_constraints import binding_families, conflicting_families
from portfolio_engine.optimization._direct_qp import DirectQP
from portfolio_engine.optimization._linalg import checked_covariance
from portfolio_engine.optimization._mv_cvx import OBJECTIVES, CvxMeanVariance, method_constraints
from portfolio_engine.optimization._mv_direct import HIDDEN_ROWS, Rows, build_direct, direct_eligible, linear_rows
from portfolio_engine.optimization._solvers import raise_for_status
from portfolio_engine.optimization._ucits import Node, search_binaries
from portfolio_engine.optimization.constraints import ResolvedConstraints
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.result import SolverDiagnostics

__all__ = ["MeanVarianceEngine", "arrays_of", "request_arrays"]


def arrays_of(moments: Moments) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """``(assets, mu, cov)``: ``mu``'s index and numpy arrays in its order."""
    assets = moments.mu.index
    cov = moments.cov
    if not cov.index.equals(assets) or not cov.columns.equals(assets):
        cov = cov.loc[assets, assets]
    return assets, moments.mu.to_numpy(dtype=float), cov.to_numpy(dtype=float)


def request_arrays(
    mu: np.ndarray | pd.Series | None, cov: np.ndarray | pd.DataFrame, assets: Sequence[str] | None
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """``(names, mu, cov)`` of a :meth:`MeanVarianceOptimizer.solve_weights` request, checked and aligned.

    Names come from ``assets``, else ``cov``'s index, else ``"0", "1", ...``; a ``mu`` Series is aligned to them
    by label (a misaligned Series must not be read by position).

    Raises
    ------
    SpecificationError
        Shapes that disagree, a ``mu`` Series naming other assets, or a non-finite ``mu``.
    """
    if isinstance(cov, pd.DataFrame):
        names = _names(assets if assets is not None else cov.index.tolist())
        cov_values = cov.to_numpy(dtype=float)
    else:
        cov_values = np.asarray(cov, dtype=float)
        count = cov_values.shape[0] if cov_values.ndim else 0
        names = _names(assets) if assets is not None else tuple(str(i) for i in range(count))
    n = len(names)
    if isinstance(mu, pd.Series) and not mu.index.equals(pd.Index(names)):
        labels = {str(a) for a in mu.index}
        if len(mu) != n or labels != set(names):
            raise SpecificationError(
                f"mu names {sorted(labels)}; the covariance's assets are {list(names)}.",
                hint="Estimate mu and cov on the same universe (Moments does the alignment).",
            )
        mu = mu.rename(index=str).reindex(list(names))
    mu_values = np.zeros(n) if mu is None else np.asarray(mu, dtype=float)
    if mu_values.shape != (n,) or cov_values.shape != (n, n) or not np.isfinite(mu_values).all():
        raise SpecificationError(
            f"mu has shape {mu_values.shape} and cov {cov_values.shape} for {n} assets "
            f"(or mu is not finite: {mu_values.tolist() if mu_values.size <= 50 else '...'}).",
            hint="Pass mu of shape (n,) and cov of shape (n, n) in the same asset order.",
        )
    return names, mu_values, cov_values


def _names(assets: Sequence[object]) -> tuple[str, ...]:
    # Asset names are nearly always str already; str() on each (an arrow-backed Index) costs more than a solve step.
    return tuple(a if type(a) is str else str(a) for a in assets)


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
            The objective is unbounded (``constraints`` names the missing limits); for ``max_sharpe``, also
            when the Sharpe ratio only approaches its supremum as the weights grow without limit.
        SolverFailedError
            Every solver failed, or the accepted answer breaks a constraint by more than
            :data:`~portfolio_engine.optimization._resolved.FEASIBILITY_TOLERANCE` (never returned silently).
        """
        start = time.perf_counter()
        _check_request(objective, resolved, target, risk_aversion)
        cov = checked_covariance(cov, labels=resolved.assets)
        messages: list[str] = []
        direct = self.direct if use_direct is None else use_direct
        if direct and direct_eligible(resolved):
            solved, status = self._solve_direct(
                objective, mu, cov, resolved, risk_aversion=risk_aversion, risk_free_rate=risk_free_rate, target=target
            )
            if solved is not None:
                w, diagnostics = solved
                _check_leverage(objective, w, resolved)
                broken = resolved.violations(w, cov)
                if not broken:
                    return w + 0.0, replace(diagnostics, solve_seconds=time.perf_counter() - start)  # no -0.0
                status = f"a point breaking {broken}"
            messages.append(f"direct path returned {status}; solved again through cvxpy")
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
        w = problem.weights()
        _check_leverage(objective, w, resolved)
        if broken := resolved.violations(w, cov):
            raise SolverFailedError(
                f"{objective}: the solver ({outcome.solver}) reported optimal weights that break {broken} "
                "(constraint family -> excess over its limit).",
                hint="Scale the inputs (annual covariance), tighten solver_options, or try another solver order.",
            )
        active = [name for name in binding_families(problem.tagged) if name != "max_sharpe"]
        return w + 0.0, SolverDiagnostics(
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
        best = float(mu @ w) - resolved.trading_cost(w)
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


#: Largest |weight| / max(1, |budget|) accepted from the maximum-Sharpe reformulation: beyond it the optimum of
#: the homogenised problem has k = 0, i.e. no finite portfolio attains the supremum of the Sharpe ratio.
MAX_SHARPE_LEVERAGE = 1e6


def _check_leverage(objective: str, w: np.ndarray, resolved: ResolvedConstraints) -> None:
    """Raise when the maximum-Sharpe weights ``y / k`` blew up because the optimal ``k`` is 0.

    With shorts and no bound on leverage, a zero-net long-short position can have a higher Sharpe ratio than
    any portfolio with the budget: adding ever more of it to the budget approaches that ratio without reaching
    it, and the solver returns ``k ~ 0`` (weights of 1e10 and more, budget broken by round-off).
    """
    if objective != "max_sharpe":
        return
    limit = MAX_SHARPE_LEVERAGE * max(1.0, abs(resolved.budget or 0.0))
    largest = float(np.abs(w).max(initial=0.0))
    if not largest <= limit:
        missing = [name for name in _open_limits(resolved) if name != "budget"] or ["weight_bounds"]
        raise UnboundedError(
            f"max_sharpe: no portfolio attains the highest Sharpe ratio; it is approached only as the weights grow "
            f"without limit (largest |weight| {largest:.3g}), through a long-short position with zero net weight. "
            f"Nothing bounds it: {missing} absent or open.",
            constraints=missing,
            hint="Bound the weights (weight_bounds, long_only) or the leverage (gross_leverage, max_short).",
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
