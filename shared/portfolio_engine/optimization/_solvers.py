"""The solver layer: a fallback chain over cvxpy solvers, tight tolerances, and status -> typed error mapping.

Solver tolerances are absolute, so the problems handed here are scaled to O(1) objectives by their builders
(annual covariance divided by its mean variance). Clarabel (interior point, exact infeasibility and
unboundedness certificates) goes first; OSQP with solution polishing and SCS follow when it fails or returns an
inaccurate status. A certificate of infeasibility or unboundedness from a solver stops the chain: the
caller names the constraints involved (see :func:`raise_for_status`).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import clarabel
import cvxpy as cp

from portfolio_engine.exceptions import InfeasibleError, SolverFailedError, UnboundedError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SOLVERS",
    "SOLVER_OPTIONS",
    "SolveOutcome",
    "clarabel_settings",
    "raise_for_status",
    "solve_with_fallback",
]

#: Order in which cvxpy solvers are tried.
DEFAULT_SOLVERS: tuple[str, ...] = ("CLARABEL", "OSQP", "SCS")

#: Tight tolerances per solver (the problems are scaled so that absolute tolerances are meaningful).
SOLVER_OPTIONS: dict[str, dict[str, Any]] = {
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-8, "max_iter": 300},
    "OSQP": {"eps_abs": 1e-9, "eps_rel": 1e-9, "polishing": True, "max_iter": 200_000},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
}

_CLARABEL_DIRECT: dict[str, Any] = {
    "verbose": False,
    "tol_gap_abs": 1e-10,
    "tol_gap_rel": 1e-10,
    "tol_feas": 1e-10,
    "tol_ktratio": 1e-8,
    "max_iter": 300,
    # The problems are already scaled; Ruiz equilibration costs time without adding accuracy here.
    "equilibrate_enable": False,
}


def clarabel_settings(**overrides: Any) -> clarabel.DefaultSettings:
    """Clarabel settings for the direct path: tight tolerances, quiet, plus ``overrides``.

    Raises
    ------
    AttributeError
        An unknown setting name.
    """
    settings = clarabel.DefaultSettings()
    for name, value in {**_CLARABEL_DIRECT, **overrides}.items():
        if not hasattr(settings, name):
            raise AttributeError(f"clarabel.DefaultSettings has no setting {name!r}")
        setattr(settings, name, value)
    return settings


@dataclass(frozen=True)
class SolveOutcome:
    """What the chain did: the accepted solver and status (``optimal``, ``infeasible`` or ``unbounded``)."""

    solver: str
    status: str
    iterations: int | None
    solve_seconds: float
    objective: float | None
    fallback_used: bool
    messages: tuple[str, ...] = field(default=())


_ACCEPTED = {cp.OPTIMAL: "optimal", cp.INFEASIBLE: "infeasible", cp.UNBOUNDED: "unbounded"}
_INACCURATE = {cp.INFEASIBLE_INACCURATE: "infeasible", cp.UNBOUNDED_INACCURATE: "unbounded"}


def solve_with_fallback(
    problem: cp.Problem,
    *,
    solvers: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> SolveOutcome:
    """Solve ``problem`` with each solver in turn until one returns a certified status.

    Parameters
    ----------
    problem : cvxpy Problem
        Built once (DPP) or not; its variables hold the solution when the status is ``optimal``.
    solvers : sequence of str, optional
        cvxpy solver names, default :data:`DEFAULT_SOLVERS` (solvers not installed are skipped).
    options : mapping of str to mapping, optional
        Per-solver keyword arguments, merged over :data:`SOLVER_OPTIONS`.

    Returns
    -------
    SolveOutcome
        ``status`` is ``optimal``, ``infeasible`` or ``unbounded`` (possibly from an inaccurate
        certificate when no solver gave a better answer).

    Raises
    ------
    SolverFailedError
        No solver returned an optimal solution or a certificate; the message lists each attempt.
    """
    chain = list(solvers or DEFAULT_SOLVERS)
    installed = set(cp.installed_solvers())
    messages: list[str] = []
    uncertain: str | None = None
    start = time.perf_counter()
    for position, name in enumerate(chain):
        if name not in installed:
            messages.append(f"{name}: not installed")
            continue
        kwargs = {**SOLVER_OPTIONS.get(name, {}), **(options or {}).get(name, {})}
        try:
            with warnings.catch_warnings():
                # cvxpy warns on an inaccurate status; the chain records it and moves on.
                warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
                problem.solve(solver=name, **kwargs)
        except (cp.SolverError, ValueError, ArithmeticError) as exc:
            messages.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        status = problem.status
        if status in _ACCEPTED:
            stats = problem.solver_stats
            value = problem.value
            return SolveOutcome(
                solver=name,
                status=_ACCEPTED[status],
                iterations=None if stats is None else stats.num_iters,
                solve_seconds=time.perf_counter() - start,
                objective=float(value) if value is not None and status == cp.OPTIMAL else None,
                fallback_used=position > 0,
                messages=tuple(messages),
            )
        uncertain = uncertain or _INACCURATE.get(status)
        messages.append(f"{name}: status {status}")
    if uncertain is not None:
        return SolveOutcome(chain[-1], uncertain, None, time.perf_counter() - start, None, True, tuple(messages))
    logger.warning("every solver failed", extra={"attempts": messages})
    raise SolverFailedError(f"No solver in {chain} solved the problem: {'; '.join(messages)}.")


def raise_for_status(
    status: str,
    *,
    diagnose: Callable[[], list[str]],
    unbounded_constraints: Sequence[str],
    what: str,
) -> None:
    """Raise the typed error for a non-optimal status; return for ``optimal``.

    Parameters
    ----------
    status : str
        ``optimal``, ``infeasible`` or ``unbounded``.
    diagnose : callable
        Returns the names of the conflicting constraint families (called only when infeasible).
    unbounded_constraints : sequence of str
        Families whose absence lets the objective grow without limit (named in the UnboundedError).
    what : str
        The problem, for messages (``"max_sharpe"``).

    Raises
    ------
    InfeasibleError
        ``status == "infeasible"``; ``constraints`` names the conflicting families.
    UnboundedError
        ``status == "unbounded"``.
    SolverFailedError
        Any other status.
    """
    if status == "optimal":
        return
    if status == "infeasible":
        names = diagnose()
        raise InfeasibleError(
            f"{what}: no portfolio satisfies the constraints; conflicting: {names}.",
            constraints=names,
            hint=f"Relax one of {names} (bounds, group limits, targets) or check that they are consistent.",
        )
    if status == "unbounded":
        missing = list(unbounded_constraints)
        raise UnboundedError(
            f"{what}: the objective is unbounded; nothing limits the weights ({', '.join(missing)} absent or open).",
            constraints=missing,
        )
    raise SolverFailedError(f"{what}: solver status {status!r}.")
