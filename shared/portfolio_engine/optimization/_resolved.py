"""Constraints resolved against a universe: numpy arrays in the universe's order (see ``Constraints.resolve``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError

__all__ = ["Interval", "LinearFamily", "ResolvedConstraints", "bounds_arrays", "check_known", "weight_vector"]

Interval = tuple[float | None, float | None]


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
        raise SpecificationError(f"{field} hold NaN or infinite values.", hint="Give finite weights.")
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
