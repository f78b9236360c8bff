"""Constraints resolved against a universe: numpy arrays in the universe's order (see ``Constraints.resolve``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError

__all__ = [
    "FEASIBILITY_TOLERANCE",
    "Interval",
    "LinearFamily",
    "ResolvedConstraints",
    "bounds_arrays",
    "check_known",
    "ucits_satisfied",
    "weight_vector",
]

Interval = tuple[float | None, float | None]

#: Largest violation of a constraint accepted in a solver's answer, in the constraint's units (weights, or
#: annual volatility for tracking error), relative to ``1 + |limit|``.
FEASIBILITY_TOLERANCE = 1e-6


def ucits_satisfied(weights: np.ndarray, limits: tuple[float, float, float], tol: float = 1e-7) -> bool:
    """True when ``weights`` obey the 5/10/40-style rule ``limits = (small, big, total)`` (within ``tol``)."""
    small, big, total = limits
    exposure = np.abs(weights)
    return bool(exposure.max(initial=0.0) <= big + tol and exposure[exposure > small + tol].sum() <= total + tol)


def bounds_arrays(pairs: Sequence[Interval]) -> tuple[np.ndarray, np.ndarray]:
    lower = np.array([-np.inf if lo is None else lo for lo, _ in pairs], dtype=float)
    upper = np.array([np.inf if hi is None else hi for _, hi in pairs], dtype=float)
    return lower, upper


def check_known(field: str, keys: Mapping[str, Any], index: Mapping[str, int]) -> None:
    unknown = [k for k in keys if k not in index]
    if unknown:
        raise SpecificationError(
            f"{field} names assets outside the universe: {unknown}.",
            hint=f"Use assets of the universe ({', '.join(index)}), or add these to it.",
        )


def weight_vector(
    field: str, values: Mapping[str, float] | pd.Series | None, index: dict[str, int]
) -> np.ndarray | None:
    if values is None:
        return None
    items = {str(k): v for k, v in values.items()}
    check_known(field, items, index)
    vector = np.zeros(len(index))
    for asset, weight in items.items():
        vector[index[asset]] = float(weight)
    if not np.isfinite(vector).all():
        bad = {asset: items[asset] for asset in items if not np.isfinite(vector[index[asset]])}
        raise SpecificationError(f"{field} hold NaN or infinite values: {bad}.", hint="Give finite weights.")
    return vector


@dataclass(frozen=True, eq=False)
class LinearFamily:
    """Rows ``lower <= matrix @ w <= upper`` of one constraint family (``-inf``/``inf`` for open sides).

    Attributes
    ----------
    name : str
    matrix : ndarray of shape (n_rows, n_assets)
    lower, upper : ndarray of shape (n_rows,)
    labels : tuple of str
        One label per row (group or factor name).
    """

    name: str
    matrix: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    labels: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ResolvedConstraints:
    """Constraints as arrays in the universe's order (see :meth:`Constraints.resolve`).

    Attributes
    ----------
    assets : tuple of str
    lower, upper : ndarray of shape (n_assets,)
        Weight bounds (``-inf``/``inf`` when open).
    budget : float or None
    linear : tuple of LinearFamily
        Group, net-leverage, factor-exposure rows (and gross leverage when no weight can be negative).
    max_short, gross_leverage : float or None
        None when absent or made redundant/linear by non-negative bounds.
    ucits : (small, big, total) or None
    max_turnover : float or None
    costs : ndarray of shape (n_assets,) or None
        Cost per unit traded (``bps / 1e4``); None when there is no cost.
    current : ndarray of shape (n_assets,)
        Holdings (zeros when none were given).
    max_tracking_error : float or None
    benchmark : ndarray of shape (n_assets,) or None
    risk_budgets : ndarray of shape (n_assets,) or None
        Normalised to sum to one.
    """

    assets: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    budget: float | None
    linear: tuple[LinearFamily, ...]
    max_short: float | None
    gross_leverage: float | None
    ucits: tuple[float, float, float] | None
    max_turnover: float | None
    costs: np.ndarray | None
    current: np.ndarray
    max_tracking_error: float | None
    benchmark: np.ndarray | None
    risk_budgets: np.ndarray | None

    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return len(self.assets)

    @property
    def is_linear(self) -> bool:
        """True when every constraint is a linear row or a bound, and there is no cost penalty."""
        return (
            self.max_short is None
            and self.gross_leverage is None
            and self.ucits is None
            and self.max_turnover is None
            and self.costs is None
            and self.max_tracking_error is None
        )

    def trading_cost(self, weights: np.ndarray) -> float:
        """``sum(c_i |w_i - current_i|)``: the one-off cost of trading from the holdings to ``weights`` (0 if free)."""
        return 0.0 if self.costs is None else float(self.costs @ np.abs(np.asarray(weights) - self.current))

    @cached_property
    def _rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Bounds, budget and linear families stacked as ``lo <= R w <= hi``, with each row's family index."""
        n = self.n_assets
        blocks, lows, highs, names = [np.eye(n)], [self.lower], [self.upper], [np.zeros(n, dtype=int)]
        if self.budget is not None:
            blocks.append(np.ones((1, n)))
            lows.append(np.array([self.budget]))
            highs.append(np.array([self.budget]))
            names.append(np.array([1]))
        for position, family in enumerate(self.linear, start=2):
            blocks.append(family.matrix)
            lows.append(family.lower)
            highs.append(family.upper)
            names.append(np.full(len(family.lower), position))
        return np.vstack(blocks), np.concatenate(lows), np.concatenate(highs), np.concatenate(names)

    def violations(
        self, weights: np.ndarray, cov: np.ndarray | None = None, *, tol: float = FEASIBILITY_TOLERANCE
    ) -> dict[str, float]:
        """Constraint families that ``weights`` break by more than ``tol * (1 + |limit|)``, with the excess.

        Parameters
        ----------
        weights : ndarray of shape (n_assets,)
        cov : ndarray of shape (n_assets, n_assets), optional
            Annual covariance, to check a tracking-error limit (skipped without it).
        tol : float, default :data:`FEASIBILITY_TOLERANCE`

        Returns
        -------
        dict of str to float
            Family name -> largest excess over its limit (empty when every constraint holds);
            ``{"finite_weights": inf}`` for weights that are not a finite vector of the right length.
        """
        w = np.asarray(weights, dtype=float)
        if w.shape != (self.n_assets,) or not np.isfinite(w).all():
            return {"finite_weights": float("inf")}
        matrix, lower, upper, family = self._rows
        values = matrix @ w
        with np.errstate(invalid="ignore"):  # inf - inf on open sides: NaN, never > 0
            excess = np.maximum(values - upper, lower - values)
            broken = excess > tol * (1.0 + np.minimum(np.abs(lower), np.abs(upper)))
        found: dict[str, float] = {}
        if broken.any():
            labels = ["weight_bounds", "budget", *(f.name for f in self.linear)]
            for position in np.flatnonzero(broken):
                name = labels[family[position]]
                found[name] = max(found.get(name, 0.0), float(excess[position]))

        def over(name: str, value: float, limit: float) -> None:
            if value - limit > tol * (1.0 + abs(limit)):
                found[name] = value - limit

        if self.max_short is not None:
            over("max_short", float(np.maximum(-w, 0.0).sum()), self.max_short)
        if self.gross_leverage is not None:
            over("gross_leverage", float(np.abs(w).sum()), self.gross_leverage)
        if self.max_turnover is not None:
            over("max_turnover", float(np.abs(w - self.current).sum()), self.max_turnover)
        if self.max_tracking_error is not None and self.benchmark is not None and cov is not None:
            active = w - self.benchmark
            over("max_tracking_error", float(np.sqrt(max(active @ cov @ active, 0.0))), self.max_tracking_error)
        if self.ucits is not None and not ucits_satisfied(w, self.ucits, tol=tol):
            found["ucits"] = float(np.abs(w).max(initial=0.0))
        return found

    def families(self) -> list[str]:
        """Names of the constraint families present."""
        names = []
        if np.isfinite(self.lower).any() or np.isfinite(self.upper).any():
            names.append("weight_bounds")
        if self.budget is not None:
            names.append("budget")
        names += [f.name for f in self.linear]
        for name in ("max_short", "gross_leverage", "ucits", "max_turnover", "max_tracking_error"):
            if getattr(self, name) is not None:
                names.append(name)
        return names
