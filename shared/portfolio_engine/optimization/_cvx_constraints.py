"""Resolved constraints as cvxpy constraints, each tagged with its family name, and infeasibility diagnosis.

The builder writes every constraint in homogeneous form with a scale ``k``: ``k = 1`` for an ordinary
problem, ``k`` a non-negative variable for the Charnes-Cooper form of the maximum Sharpe ratio
(``y = k w``), where ``lo <= A w <= hi`` becomes ``lo k <= A y <= hi k``. Data that change between solves
(holdings, benchmark, loadings, the covariance factor) can be cvxpy Parameters, so a problem built once
stays DPP (``problem.is_dcp(dpp=True)``) and is re-solved with new values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from portfolio_engine.optimization._linalg import psd_factor
from portfolio_engine.optimization.constraints import ResolvedConstraints

__all__ = [
    "Branching",
    "ConstraintSet",
    "CvxInputs",
    "TaggedConstraint",
    "binding_families",
    "conflicting_families",
    "cvxpy_constraints",
]


@dataclass(frozen=True)
class TaggedConstraint:
    """cvxpy constraints of one family (``name`` as in :mod:`portfolio_engine.optimization.constraints`).

    ``auxiliary`` holds definitions of helper variables (never "binding" by themselves); they go with the
    family when it is dropped.
    """

    name: str
    constraints: tuple[cp.Constraint, ...]
    auxiliary: tuple[cp.Constraint, ...] = ()

    @property
    def all(self) -> list[cp.Constraint]:
        """Constraints and auxiliary definitions."""
        return [*self.constraints, *self.auxiliary]


@dataclass(frozen=True)
class Branching:
    """The relaxed binaries of a mixed-integer family: ``z`` within ``[z_lo, z_hi]`` (Parameters), times ``k``."""

    name: str
    z: cp.Variable
    z_lo: cp.Parameter
    z_hi: cp.Parameter


@dataclass(frozen=True)
class ConstraintSet:
    """Tagged constraints and, when UCITS is on, the branching variables of its relaxation."""

    tagged: tuple[TaggedConstraint, ...]
    branching: Branching | None = None

    @property
    def constraints(self) -> list[cp.Constraint]:
        """Every constraint, flattened."""
        return [c for t in self.tagged for c in t.all]


@dataclass
class CvxInputs:
    """Data the constraints read, as arrays (a one-off problem) or cvxpy Parameters (a problem re-solved).

    ``cov_factor`` is ``F`` with ``||F w||^2 = w' Sigma w / s`` and ``te_limit`` the tracking-error limit
    divided by ``sqrt(s)``, for a scale ``s`` chosen by the caller (1 for no scaling).
    """

    current: Any
    benchmark: Any = None
    matrices: dict[str, Any] = field(default_factory=dict)
    cov_factor: Any = None
    te_limit: Any = None

    @classmethod
    def constants(cls, resolved: ResolvedConstraints, cov: np.ndarray | None = None) -> CvxInputs:
        """Arrays taken from ``resolved`` (and ``cov``, needed for a tracking-error limit)."""
        factor = psd_factor(cov) if cov is not None else None
        return cls(
            current=resolved.current,
            benchmark=resolved.benchmark,
            matrices={f.name: f.matrix for f in resolved.linear},
            cov_factor=factor,
            te_limit=resolved.max_tracking_error,
        )

    @classmethod
    def parameters(cls, resolved: ResolvedConstraints, cov_factor: cp.Parameter) -> CvxInputs:
        """Parameters shaped like ``resolved``'s data; fill them with :meth:`assign`."""
        n = resolved.n_assets
        te = resolved.max_tracking_error is not None
        return cls(
            current=cp.Parameter(n, name="current_weights"),
            benchmark=cp.Parameter(n, name="benchmark_weights") if te else None,
            matrices={f.name: cp.Parameter(f.matrix.shape, name=f.name) for f in resolved.linear},
            cov_factor=cov_factor,
            te_limit=cp.Parameter(nonneg=True, name="tracking_error_limit") if te else None,
        )

    def assign(self, resolved: ResolvedConstraints, scale: float) -> None:
        """Copy ``resolved``'s data into the Parameters (``scale`` is the ``s`` of the covariance factor)."""
        self.current.value = resolved.current
        if self.benchmark is not None:
            self.benchmark.value = resolved.benchmark
            self.te_limit.value = float(resolved.max_tracking_error or 0.0) / np.sqrt(scale)
        for family in resolved.linear:
            self.matrices[family.name].value = family.matrix


def cvxpy_constraints(
    resolved: ResolvedConstraints,
    w: cp.Variable,
    *,
    inputs: CvxInputs | None = None,
    cov: np.ndarray | None = None,
    scale: Any = 1.0,
) -> ConstraintSet:
    """Turn resolved constraints into cvxpy constraints on ``w``, tagged by family.

    Parameters
    ----------
    resolved : ResolvedConstraints
        From :meth:`Constraints.resolve`.
    w : cvxpy Variable of shape (n_assets,)
    inputs : CvxInputs, optional
        Parameters of a problem that will be re-solved; by default constants from ``resolved`` and ``cov``.
    cov : ndarray of shape (n_assets, n_assets), optional
        Annual covariance; needed for a tracking-error limit when ``inputs`` is not given.
    scale : float or cvxpy Variable, default 1.0
        The homogenising variable ``k`` of a Charnes-Cooper reformulation, or 1.

    Returns
    -------
    ConstraintSet
        ``tagged`` constraints, and ``branching`` (the relaxed binaries) when UCITS is on: solve the
        problem with :func:`portfolio_engine.optimization._ucits.branch_and_bound` for an exact answer.

    Raises
    ------
    ValueError
        A tracking-error limit without a covariance.
    """
    data = inputs if inputs is not None else CvxInputs.constants(resolved, cov)
    k = scale
    tagged: list[TaggedConstraint] = []

    def add(name: str, *items: cp.Constraint, auxiliary: tuple[cp.Constraint, ...] = ()) -> None:
        tagged.append(TaggedConstraint(name, tuple(items), auxiliary))

    lo_idx = np.flatnonzero(np.isfinite(resolved.lower))
    hi_idx = np.flatnonzero(np.isfinite(resolved.upper))
    bounds = []
    if lo_idx.size:
        bounds.append(w[lo_idx] >= resolved.lower[lo_idx] * k)
    if hi_idx.size:
        bounds.append(w[hi_idx] <= resolved.upper[hi_idx] * k)
    if bounds:
        add("weight_bounds", *bounds)
    if resolved.budget is not None:
        add("budget", cp.sum(w) == resolved.budget * k)
    for family in resolved.linear:
        rows = data.matrices[family.name] @ w
        items = []
        lo_rows = np.flatnonzero(np.isfinite(family.lower))
        hi_rows = np.flatnonzero(np.isfinite(family.upper))
        if lo_rows.size:
            items.append(rows[lo_rows] >= family.lower[lo_rows] * k)
        if hi_rows.size:
            items.append(rows[hi_rows] <= family.upper[hi_rows] * k)
        add(family.name, *items)
    if resolved.max_short is not None:
        add("max_short", cp.sum(cp.neg(w)) <= resolved.max_short * k)
    if resolved.gross_leverage is not None:
        add("gross_leverage", cp.norm1(w) <= resolved.gross_leverage * k)
    if resolved.max_turnover is not None:
        add("max_turnover", cp.norm1(w - data.current * k) <= resolved.max_turnover * k)
    if resolved.max_tracking_error is not None:
        if data.cov_factor is None:
            raise ValueError("a tracking-error limit needs the covariance (cov=...)")
        # An auxiliary active-weight variable keeps F @ (...) parameter-times-variable: DPP.
        active = cp.Variable(resolved.n_assets, name="active_weights")
        add(
            "max_tracking_error",
            cp.norm(data.cov_factor @ active) <= data.te_limit * k,
            auxiliary=(active == w - data.benchmark * k,),
        )
    branching = None
    if resolved.ucits is not None:
        small, big, total = resolved.ucits
        n = resolved.n_assets
        z = cp.Variable(n, name="ucits_large")  # 1: the position may exceed `small` (and is counted)
        z_lo = cp.Parameter(n, name="ucits_z_lo", value=np.zeros(n))
        z_hi = cp.Parameter(n, name="ucits_z_hi", value=np.ones(n))
        # Convex-hull (disaggregated) form, tighter than big-M: the exposure splits into a part `small_part`
        # allowed when z = 0 and a counted part allowed when z = 1 (see _ucits for why it is exact).
        small_part = cp.Variable(n, nonneg=True, name="ucits_small_part")
        counted = cp.Variable(n, nonneg=True, name="ucits_counted")
        add(
            "ucits",
            small_part <= small * (k - z),
            counted <= big * z,
            cp.sum(counted) <= total * k,
            auxiliary=(
                cp.abs(w) <= small_part + counted,
                z >= cp.multiply(z_lo, k) if isinstance(k, cp.Expression) else z >= z_lo,
                z <= cp.multiply(z_hi, k) if isinstance(k, cp.Expression) else z <= z_hi,
            ),
        )
        branching = Branching("ucits", z, z_lo, z_hi)
    return ConstraintSet(tuple(tagged), branching)


MethodConstraints = Callable[[cp.Variable], Sequence[TaggedConstraint]]


def _feasible(constraints: list[cp.Constraint]) -> bool:
    problem = cp.Problem(cp.Minimize(0), constraints)
    try:
        problem.solve(solver=cp.CLARABEL)
    except cp.SolverError:
        problem.solve(solver=cp.SCS)
    return problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


def conflicting_families(
    resolved: ResolvedConstraints,
    cov: np.ndarray | None = None,
    method_constraints: MethodConstraints | None = None,
) -> list[str]:
    """Name the constraint families that make the constraints infeasible (on the continuous relaxation).

    Drops one family at a time and re-solves a feasibility problem: a family whose removal makes the rest
    feasible takes part in every conflict. If no single family does, pairs are tried; if none does either,
    every family is named.

    Parameters
    ----------
    resolved : ResolvedConstraints
    cov : ndarray of shape (n_assets, n_assets), optional
        Needed for a tracking-error limit.
    method_constraints : callable, optional
        ``f(w) -> [TaggedConstraint]``: constraints of the method (``target_return``, ``target_volatility``).

    Returns
    -------
    list of str
        Family names; empty when the constraints are feasible (the conflict lies elsewhere, e.g. no
        portfolio beats the risk-free rate, or only the integer UCITS rule fails).
    """
    w = cp.Variable(resolved.n_assets)
    tagged = list(cvxpy_constraints(resolved, w, cov=cov).tagged)
    if method_constraints is not None:
        tagged += list(method_constraints(w))
    families: dict[str, list[cp.Constraint]] = {}
    for item in tagged:
        families.setdefault(item.name, []).extend(item.all)
    names = list(families)

    def without(*dropped: str) -> list[cp.Constraint]:
        return [c for name in names if name not in dropped for c in families[name]]

    if _feasible(without()):
        return []
    single = [name for name in names if _feasible(without(name))]
    if single:
        return single
    pairs: set[str] = set()
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if _feasible(without(first, second)):
                pairs.update((first, second))
    return sorted(pairs) or names


def binding_families(tagged: Sequence[TaggedConstraint], tol: float = 1e-7) -> tuple[str, ...]:
    """Families with a constraint holding with equality at the current variable values.

    Equality constraints always bind; an inequality binds when its slack is within ``tol`` (weights are
    O(1), so ``tol`` is in weight units).
    """
    names: list[str] = []
    for item in tagged:
        for constraint in item.constraints:
            if isinstance(constraint, cp.constraints.Equality):
                binding = True
            else:
                value = constraint.expr.value if isinstance(constraint, cp.constraints.Inequality) else None
                binding = value is not None and float(np.max(value)) >= -tol
            if binding:
                names.append(item.name)
                break
    return tuple(dict.fromkeys(names))
