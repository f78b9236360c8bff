"""A direct path to Clarabel for small QPs with linear constraints, with active-set polishing and warm starts.

Problem::

    minimise 1/2 x' P x + q' x   subject to   A x = b,   G x <= h,   (optionally) ||F x|| <= t

Calling Clarabel's Python API directly skips cvxpy's canonicalisation (about 4x faster per solve for a
20-asset minimum variance). Two steps make it exact and faster still:

* **polishing**: from the interior-point solution, the inequality rows whose dual exceeds their slack are
  taken as active and the equality-constrained KKT system is solved exactly; the polished point is kept
  only if it passes the KKT check (primal feasible, multipliers of active rows non-negative), which for
  a convex QP certifies optimality to round-off;
* **warm active set**: a sequence of related problems (a walk-forward, a frontier) changes its active set
  little; starting from the last one, a few primal-dual active-set updates usually reach a point that passes
  the same KKT check, and Clarabel runs only when they do not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import clarabel
import numpy as np
import scipy.sparse as sp

from portfolio_engine.optimization._solvers import clarabel_settings

__all__ = ["DirectOutcome", "DirectQP"]

_WARM_NOTE = "warm start: previous active set updated to a verified KKT point; Clarabel not called"

_STATUS = {
    "Solved": "optimal",
    "AlmostSolved": "inaccurate",
    "PrimalInfeasible": "infeasible",
    "AlmostPrimalInfeasible": "infeasible",
    "DualInfeasible": "unbounded",
    "AlmostDualInfeasible": "unbounded",
}


@dataclass(frozen=True)
class DirectOutcome:
    """Result of :meth:`DirectQP.solve`.

    Attributes
    ----------
    x : ndarray of shape (n,) or None
    status : str
        ``optimal``, ``infeasible``, ``unbounded``, ``inaccurate`` or ``failed``.
    solver : str
        ``CLARABEL-direct`` or ``active-set`` (warm active set verified, Clarabel not called).
    iterations : int
    solve_seconds : float
    active : ndarray of bool, shape (n_inequalities,)
        Inequality rows binding at ``x``.
    messages : tuple of str
    """

    x: np.ndarray | None
    status: str
    solver: str
    iterations: int
    solve_seconds: float
    active: np.ndarray
    messages: tuple[str, ...] = field(default=())


def _upper_csc_pattern(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row/column picks and CSC index arrays of a dense upper triangle, column by column."""
    cols, rows = np.tril_indices(m)  # row-major lower triangle == column-major upper triangle, transposed
    indptr = np.concatenate([[0], np.cumsum(np.arange(1, m + 1))])
    return rows, cols, indptr


class DirectQP:
    """Clarabel on dense small QPs, keeping the sparsity pattern and the last active set between solves.

    Parameters
    ----------
    polish : bool, default True
        Polish interior-point solutions on their active set (QPs without the cone constraint).
    warm_start : bool, default True
        Try the previous active set first.
    **settings
        Clarabel settings overriding :func:`clarabel_settings`.
    """

    def __init__(self, *, polish: bool = True, warm_start: bool = True, **settings: object) -> None:
        self.polish = polish
        self.warm_start = warm_start
        self._settings = clarabel_settings(**settings)
        self._pattern: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._last_active: np.ndarray | None = None
        self._a_cache: tuple[np.ndarray, sp.csc_matrix] | None = None

    def _p_matrix(self, p: np.ndarray) -> sp.csc_matrix:
        m = p.shape[0]
        if self._pattern is None or self._pattern[0] != m:
            self._pattern = (m, _upper_csc_pattern(m))
        rows, cols, indptr = self._pattern[1]
        return sp.csc_matrix((p[rows, cols], rows, indptr), shape=(m, m))

    def _a_matrix(self, a: np.ndarray) -> sp.csc_matrix:
        if self._a_cache is not None and self._a_cache[0].shape == a.shape and np.array_equal(self._a_cache[0], a):
            return self._a_cache[1]
        matrix = sp.csc_matrix(a)
        self._a_cache = (a.copy(), matrix)
        return matrix

    def solve(
        self,
        p: np.ndarray,
        q: np.ndarray,
        a_eq: np.ndarray,
        b_eq: np.ndarray,
        g: np.ndarray,
        h: np.ndarray,
        soc: tuple[np.ndarray, float] | None = None,
    ) -> DirectOutcome:
        """Solve the QP; rows of ``G`` with ``h = inf`` must have been dropped by the caller.

        Parameters
        ----------
        p : ndarray of shape (n, n)
            Symmetric positive semi-definite.
        q : ndarray of shape (n,)
        a_eq : ndarray of shape (m_eq, n)
        b_eq : ndarray of shape (m_eq,)
        g : ndarray of shape (m_in, n)
        h : ndarray of shape (m_in,)
        soc : (F, t), optional
            Adds ``||F x||_2 <= t`` with ``F`` of shape (k, n).

        Returns
        -------
        DirectOutcome
        """
        start = time.perf_counter()
        m_in = g.shape[0]
        linear_cone = soc is not None and not p.any()  # maximise a linear objective over an ellipsoid
        if (
            self.warm_start
            and (soc is None or linear_cone)
            and self._last_active is not None
            and (self._last_active.shape == (m_in,))
        ):
            found = _active_set(p, q, a_eq, b_eq, g, h, self._last_active, soc=soc)
            if found is not None:
                self._last_active = found[1]
                seconds = time.perf_counter() - start
                return DirectOutcome(found[0], "optimal", "active-set", 0, seconds, found[1], (_WARM_NOTE,))
        blocks = [a_eq, g]
        b_parts = [b_eq, h]
        cones: list[object] = []
        if a_eq.shape[0]:
            cones.append(clarabel.ZeroConeT(a_eq.shape[0]))
        if m_in:
            cones.append(clarabel.NonnegativeConeT(m_in))
        if soc is not None:
            factor, limit = soc
            # s = b - A x in the cone {(t, u): ||u|| <= t} with t = limit, u = F x.
            blocks += [np.zeros((1, p.shape[0])), -factor]
            b_parts += [np.array([limit]), np.zeros(factor.shape[0])]
            cones.append(clarabel.SecondOrderConeT(factor.shape[0] + 1))
        a_all = np.vstack(blocks)
        solver = clarabel.DefaultSolver(
            self._p_matrix(p), q, self._a_matrix(a_all), np.concatenate(b_parts), cones, self._settings
        )
        solution = solver.solve()
        status = _STATUS.get(str(solution.status).split(".")[-1], "failed")
        iterations = int(solution.iterations)
        if status not in ("optimal", "inaccurate"):
            seconds = time.perf_counter() - start
            return DirectOutcome(None, status, "CLARABEL-direct", iterations, seconds, np.zeros(m_in, bool))
        x = np.asarray(solution.x, dtype=float)
        slack = h - g @ x
        duals = np.asarray(solution.z, dtype=float)[a_eq.shape[0] : a_eq.shape[0] + m_in]
        active = duals > np.maximum(slack, 0.0)
        messages: list[str] = []
        if self.polish and (soc is None or linear_cone):
            polished = _active_set(p, q, a_eq, b_eq, g, h, active, max_steps=3, soc=soc)
            if polished is not None:
                x, status = polished[0], "optimal"
                messages.append("polished on the active set (KKT verified)")
                self._last_active = polished[1]
        elif status == "optimal":
            self._last_active = None
        if status == "optimal":
            active = h - g @ x <= 1e-9 * (1.0 + np.abs(h))
        return DirectOutcome(
            x, status, "CLARABEL-direct", iterations, time.perf_counter() - start, active, tuple(messages)
        )


def _kkt_solve(
    p: np.ndarray,
    q: np.ndarray,
    a_eq: np.ndarray,
    b_eq: np.ndarray,
    g: np.ndarray,
    h: np.ndarray,
    active: np.ndarray,
    tol: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Minimiser and multipliers of the QP with ``active`` rows of ``G`` held as equalities (None if singular)."""
    n, m_eq = p.shape[0], a_eq.shape[0]
    rows = np.flatnonzero(active)
    size = n + m_eq + rows.size
    kkt = np.zeros((size, size))
    kkt[:n, :n] = p
    kkt[n : n + m_eq, :n] = a_eq
    kkt[n + m_eq :, :n] = g[rows]
    kkt[:n, n:] = kkt[n:, :n].T
    rhs = np.empty(size)
    rhs[:n] = -q
    rhs[n : n + m_eq] = b_eq
    rhs[n + m_eq :] = h[rows]
    try:
        solution = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(solution).all() or np.abs(kkt @ solution - rhs).max() > tol * (1.0 + np.abs(rhs).max()):
        return None  # singular or ill-conditioned: do not trust it
    multipliers = np.zeros(g.shape[0])
    multipliers[rows] = solution[n + m_eq :]
    return solution[:n], multipliers


def _cone_kkt_solve(
    q: np.ndarray,
    a_eq: np.ndarray,
    b_eq: np.ndarray,
    g: np.ndarray,
    h: np.ndarray,
    active: np.ndarray,
    soc: tuple[np.ndarray, float],
    tol: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """KKT point of ``min q'x`` s.t. ``||F x|| = t`` and the ``active`` rows as equalities, or None.

    Stationarity ``q + mu F'F x + E' lambda = 0`` (``mu > 0``) makes ``x = x_b + tau x_m`` with ``tau = 1/mu``,
    where ``(x_b, y_b)`` and ``(x_m, y_m)`` solve the KKT systems of ``F'F`` with right-hand sides ``(0, b_E)``
    and ``(-q, 0)``; ``||F x|| = t`` is then a quadratic in ``tau``, solved exactly. Row multipliers are
    ``lambda = (y_b + tau y_m) / tau``.
    """
    factor, limit = soc
    curvature = factor.T @ factor
    first = _kkt_solve(curvature, np.zeros_like(q), a_eq, b_eq, g, h, active, tol)
    second = _kkt_solve(curvature, q, a_eq, np.zeros_like(b_eq), g, np.zeros_like(h), active, tol)
    if first is None or second is None:
        return None
    (x_b, y_b), (x_m, y_m) = first, second
    fb, fm = factor @ x_b, factor @ x_m
    a, b, c = fm @ fm, 2.0 * fb @ fm, fb @ fb - limit**2
    disc = b * b - 4.0 * a * c
    if a <= 0.0 or disc < 0.0:
        return None
    tau = (-b + np.sqrt(disc)) / (2.0 * a)
    if not tau > 0.0:
        return None
    return x_b + tau * x_m, (y_b + tau * y_m) / tau


def _active_set(
    p: np.ndarray,
    q: np.ndarray,
    a_eq: np.ndarray,
    b_eq: np.ndarray,
    g: np.ndarray,
    h: np.ndarray,
    start: np.ndarray,
    max_steps: int = 8,
    tol: float = 1e-9,
    soc: tuple[np.ndarray, float] | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """KKT point reached from the active set ``start`` by primal-dual active-set updates, or None.

    With ``soc = (F, t)`` the problem is ``min q'x`` over ``||F x|| <= t`` and the rows, the cone binding (see
    :func:`_cone_kkt_solve`). Each step solves the equality-constrained KKT system of the current active set, then
    drops rows with a
    negative multiplier and adds violated rows (the primal-dual active-set update). A point is returned only
    when it satisfies every KKT condition (primal feasible, active multipliers >= 0, complementary by
    construction), which certifies optimality for a convex QP; otherwise None after ``max_steps``.

    References
    ----------
    Hintermueller, M., Ito, K. and Kunisch, K. (2002). "The primal-dual active set strategy as a semismooth
    Newton method". SIAM Journal on Optimization 13(3), 865-888.
    """
    active = start.copy()
    h_scale = tol * (1.0 + np.abs(h))
    for _ in range(max_steps):
        if soc is None:
            solved = _kkt_solve(p, q, a_eq, b_eq, g, h, active, tol)
        else:
            solved = _cone_kkt_solve(q, a_eq, b_eq, g, h, active, soc, tol)
        if solved is None:
            return None
        x, multipliers = solved
        violation = g @ x - h
        dual_tol = tol * (1.0 + np.abs(multipliers).max(initial=0.0))
        dropped = active & (multipliers < -dual_tol)
        added = ~active & (violation > h_scale)
        if not dropped.any() and not added.any():
            return x, active
        active = (active & ~dropped) | added
    return None
