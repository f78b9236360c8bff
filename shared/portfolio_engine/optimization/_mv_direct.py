"""Mean-variance objectives in the QP form of :class:`DirectQP`, scaled exactly like :class:`CvxMeanVariance`.

Eligible problems: every constraint linear in the weights (bounds, budget, groups, net leverage, factor
exposures, gross leverage without shorts) and, for long-only portfolios, UCITS in its disaggregated form
with variables ``x = (w, c, z)`` (``c`` the counted part, ``z`` the relaxed binaries; see
:mod:`portfolio_engine.optimization._ucits`)::

    w - c + small z <= small,   c >= 0,   c - big z <= 0,   sum(c) <= total,   z_lo <= z <= z_hi.

(The "small part" ``s`` of the hull form is projected out: some ``s`` in ``[0, small (1 - z)]`` with
``s >= w - c`` exists exactly when ``w - c <= small (1 - z)`` and ``z <= 1``.) The maximum Sharpe ratio
uses the Charnes-Cooper variables ``(x, k)``: every row ``G x <= h`` becomes ``G x - h k <= 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portfolio_engine.optimization._linalg import psd_factor, return_scale, variance_scale
from portfolio_engine.optimization.constraints import ResolvedConstraints

__all__ = ["DirectProblem", "Rows", "build_direct", "direct_eligible", "linear_rows"]

Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]

#: Row names that never count as a binding constraint family.
HIDDEN_ROWS = frozenset({"scale", "ucits_aux", "ucits_branch"})


def direct_eligible(resolved: ResolvedConstraints) -> bool:
    """True when the direct QP can take the constraints (linear, or linear plus UCITS when long-only)."""
    if resolved.is_linear:
        return True
    if resolved.ucits is None or not bool((resolved.lower >= 0).all()):
        return False
    return (
        resolved.max_short is None
        and resolved.gross_leverage is None
        and resolved.max_turnover is None
        and resolved.costs is None
        and resolved.max_tracking_error is None
    )


def linear_rows(resolved: ResolvedConstraints) -> Rows:
    """``A w = b`` (budget) and ``G w <= h`` (bounds and linear families), open sides dropped."""
    n = resolved.n_assets
    eye = np.eye(n)
    a_eq = np.ones((1, n)) if resolved.budget is not None else np.zeros((0, n))
    b_eq = np.array([resolved.budget]) if resolved.budget is not None else np.zeros(0)
    upper, lower = np.isfinite(resolved.upper), np.isfinite(resolved.lower)
    g_rows, h_rows = [eye[upper], -eye[lower]], [resolved.upper[upper], -resolved.lower[lower]]
    names = ["weight_bounds"] * int(upper.sum() + lower.sum())
    for family in resolved.linear:
        hi, lo = np.isfinite(family.upper), np.isfinite(family.lower)
        g_rows += [family.matrix[hi], -family.matrix[lo]]
        h_rows += [family.upper[hi], -family.lower[lo]]
        names += [family.name] * int(hi.sum() + lo.sum())
    return a_eq, b_eq, np.vstack(g_rows), np.concatenate(h_rows), names


@dataclass(frozen=True, eq=False)
class DirectProblem:
    """``min 1/2 x'Px + q'x  s.t.  A x = b, G x <= h (, ||F x|| <= t)`` for one objective.

    ``z_lo_rows``/``z_hi_rows`` index the rows holding the UCITS binaries' bounds (empty without UCITS).
    """

    p: np.ndarray
    q: np.ndarray
    a_eq: np.ndarray
    b_eq: np.ndarray
    g: np.ndarray
    h: np.ndarray
    names: tuple[str, ...]
    soc: tuple[np.ndarray, float] | None
    n_assets: int
    homogeneous: bool
    z_lo_rows: np.ndarray
    z_hi_rows: np.ndarray

    def weights(self, x: np.ndarray) -> np.ndarray:
        """The weights in a solution ``x`` (divided by ``k`` when homogenised)."""
        w = x[: self.n_assets]
        if not self.homogeneous:
            return w
        with np.errstate(divide="ignore", invalid="ignore"):  # k = 0: no finite portfolio (the caller raises)
            return w / x[-1]

    def binaries(self, x: np.ndarray) -> np.ndarray:
        """The relaxed UCITS binaries in ``x``."""
        n = self.n_assets
        z = x[2 * n : 3 * n]
        return z / x[-1] if self.homogeneous else z

    def objective(self, x: np.ndarray) -> float:
        """``1/2 x'Px + q'x``."""
        return float(0.5 * x @ self.p @ x + self.q @ x)

    def with_binary_bounds(self, z_lo: np.ndarray, z_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(G, h)`` with the binaries bounded by ``z_lo <= z <= z_hi`` (copies)."""
        g, h = self.g.copy(), self.h.copy()
        if self.homogeneous:  # rows -z + z_lo k <= 0 and z - z_hi k <= 0
            g[self.z_lo_rows, -1], g[self.z_hi_rows, -1] = z_lo, -z_hi
        else:
            h[self.z_lo_rows], h[self.z_hi_rows] = -z_lo, z_hi
        return g, h


def _ucits_rows(
    n: int, limits: tuple[float, float, float], g: np.ndarray, h: np.ndarray, names: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Pad ``G w <= h`` to ``x = (w, c, z)`` and append the UCITS rows."""
    small, big, total = limits
    eye, zero = np.eye(n), np.zeros((n, n))
    block = np.vstack(
        [
            np.hstack([eye, -eye, small * eye]),  # w - c + small z <= small
            np.hstack([zero, -eye, zero]),  # c >= 0
            np.hstack([zero, eye, -big * eye]),  # c <= big z
            np.hstack([np.zeros((1, n)), np.ones((1, n)), np.zeros((1, n))]),  # sum(c) <= total
            np.hstack([zero, zero, -eye]),  # z >= z_lo
            np.hstack([zero, zero, eye]),  # z <= z_hi
        ]
    )
    padded = np.hstack([g, np.zeros((g.shape[0], 2 * n))])
    start = g.shape[0] + 3 * n + 1
    rhs = np.concatenate([h, np.full(n, small), np.zeros(2 * n), [total], np.zeros(n), np.ones(n)])
    labels = [*names, *["ucits"] * n, *["ucits_aux"] * n, *["ucits"] * (n + 1), *["ucits_branch"] * (2 * n)]
    return np.vstack([padded, block]), rhs, labels, np.arange(start, start + n), np.arange(start + n, start + 2 * n)


def build_direct(
    objective: str,
    mu: np.ndarray,
    cov: np.ndarray,
    resolved: ResolvedConstraints,
    *,
    risk_aversion: float,
    risk_free_rate: float,
    target: float | None,
    rows: Rows | None = None,
) -> DirectProblem:
    """The objective as a :class:`DirectProblem` (``rows``: :func:`linear_rows` of ``resolved``, if cached)."""
    n = len(mu)
    scale = variance_scale(cov)
    a_eq, b_eq, g, h, row_names = rows if rows is not None else linear_rows(resolved)
    names = list(row_names)
    p = 2.0 * cov / scale  # 1/2 x'Px = w' Sigma w / s, the value CvxMeanVariance reports
    q = np.zeros(n)
    soc = None
    if objective == "max_utility":
        p, q = cov / scale, -mu / (risk_aversion * scale)
    elif objective == "target_return":
        g, h, names = np.vstack([g, -mu[None, :]]), np.append(h, -float(target or 0.0)), [*names, "target_return"]
    elif objective in ("target_risk", "max_return"):
        p, q = np.zeros((n, n)), -mu / return_scale(mu)
        if objective == "target_risk":
            soc = (psd_factor(cov) / np.sqrt(scale), float(target or 0.0) / np.sqrt(scale))
    z_lo_rows = z_hi_rows = np.zeros(0, dtype=int)
    if resolved.ucits is not None:
        g, h, names, z_lo_rows, z_hi_rows = _ucits_rows(n, resolved.ucits, g, h, names)
        a_eq = np.hstack([a_eq, np.zeros((a_eq.shape[0], 2 * n))])
        p_full = np.zeros((3 * n, 3 * n))
        p_full[:n, :n] = p
        p, q = p_full, np.concatenate([q, np.zeros(2 * n)])
        if soc is not None:
            soc = (np.hstack([soc[0], np.zeros((n, 2 * n))]), soc[1])
    if objective != "max_sharpe":
        return DirectProblem(p, q, a_eq, b_eq, g, h, tuple(names), soc, n, False, z_lo_rows, z_hi_rows)
    # Charnes-Cooper: x' = (x, k); rows homogenised; (mu - rf)' w = 1 (scaled); k >= 0.
    size = p.shape[0]
    excess = mu - risk_free_rate
    p_h = np.zeros((size + 1, size + 1))
    p_h[:size, :size] = p
    normalise = np.zeros(size + 1)
    normalise[:n] = excess / return_scale(excess)
    a_h = np.vstack([np.hstack([a_eq, -b_eq[:, None]]), normalise[None, :]])
    b_h = np.append(np.zeros(len(b_eq)), 1.0)
    k_row = np.zeros(size + 1)
    k_row[-1] = -1.0
    g_h = np.vstack([np.hstack([g, -h[:, None]]), k_row[None, :]])
    return DirectProblem(
        p_h,
        np.zeros(size + 1),
        a_h,
        b_h,
        g_h,
        np.zeros(len(h) + 1),
        (*names, "scale"),
        None,
        n,
        True,
        z_lo_rows,
        z_hi_rows,
    )
