"""Portfolio constraints: a frozen, validated description, resolved against a universe at solve time.

:class:`Constraints` is plain data (YAML/JSON in, JSON out). It is checked on construction (intervals,
signs, group names); :meth:`Constraints.resolve` checks it against the universe and the data given at
solve time (current holdings, benchmark, factor loadings) and returns :class:`ResolvedConstraints`:
numpy arrays in the universe's order, which every optimizer (and
:func:`portfolio_engine.optimization.cvxpy_constraints`) turns into solver constraints.

Constraint families, by the name used in errors and diagnostics:

========================== ===============================================================
``weight_bounds``           ``lo_i <= w_i <= hi_i`` (``long_only``, ``weight_bounds``, ``asset_bounds``)
``budget``                  ``sum(w) = budget``
``max_short``               ``sum(max(-w_i, 0)) <= max_short``
``gross_leverage``          ``sum(|w_i|) <= gross_leverage``
``net_leverage``            ``lo <= sum(w) <= hi``
``group_bounds``            ``lo_g <= sum(w_i, i in g) <= hi_g`` (sectors)
``ucits``                   ``|w_i| <= 10%`` and the positions above 5% together ``<= 40%`` (UCITS 5/10/40)
``max_turnover``            ``sum(|w_i - current_i|) <= max_turnover``
``max_tracking_error``      ``sqrt((w - b)' Sigma (w - b)) <= max_tracking_error`` (annual)
``factor_exposure_bounds``  ``lo_f <= sum_i B_if w_i <= hi_f``
========================== ===============================================================

``transaction_cost_bps`` is not a constraint but a penalty ``sum(c_i |w_i - current_i|)`` with
``c_i = bps_i / 1e4``, charged once against the (annual) expected return. ``risk_budgets`` feed risk parity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import field_validator, model_validator

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._resolved import (
    Interval,
    LinearFamily,
    ResolvedConstraints,
    bounds_arrays,
    check_known,
    weight_vector,
)
from portfolio_engine.optimization._spec_model import SpecModel

__all__ = ["UCITS_DEFAULT", "Constraints", "LinearFamily", "ResolvedConstraints"]

#: UCITS 5/10/40: a position may reach 10 % of NAV, and positions above 5 % may together reach 40 %.
UCITS_DEFAULT: tuple[float, float, float] = (0.05, 0.10, 0.40)


def _interval(field: str, value: Interval, *, key: str | None = None) -> Interval:
    """Validate ``(lo, hi)``: None or an infinity means open on that side; NaN and lo > hi are errors."""
    where = f"{field}[{key!r}]" if key is not None else field
    lo, hi = value
    if (lo is not None and math.isnan(lo)) or (hi is not None and math.isnan(hi)):
        raise SpecificationError(f"{where} holds NaN: {value!r}.", hint="Use null (None) for an open side.")
    lo = None if lo is None or lo == -math.inf else float(lo)
    hi = None if hi is None or hi == math.inf else float(hi)
    if (lo is not None and lo == math.inf) or (hi is not None and hi == -math.inf):
        raise SpecificationError(f"{where} = {value!r} admits no value.", hint="Give (lo, hi) with lo <= hi.")
    if lo is not None and hi is not None and lo > hi:
        raise SpecificationError(f"{where} has lo > hi: {value!r}.", hint="Give (lo, hi) with lo <= hi.")
    return (lo, hi)


def _finite(field: str, value: float | None, *, positive: bool = False, nonnegative: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or (positive and value <= 0) or (nonnegative and value < 0):
        need = "> 0" if positive else ">= 0" if nonnegative else "finite"
        raise SpecificationError(f"{field} must be {need}; got {value!r}.", hint=f"Set {field} to a number {need}.")


class Constraints(SpecModel):
    """Constraints on a weight vector ``w`` (fractions of capital, annual units for risk).

    Parameters
    ----------
    long_only : bool, default True
        ``w >= 0``. Default upper bound: none (the budget caps each weight when long-only).
    weight_bounds : (lo, hi), optional
        Bounds for every asset; ``None`` (null) for an open side. Default ``(0, None)`` long-only, open otherwise.
    asset_bounds : dict of str to (lo, hi)
        Per-asset bounds; they replace ``weight_bounds`` for those assets.
    budget : float or None, default 1.0
        ``sum(w) = budget``; None for no budget constraint.
    max_short : float, optional
        Total short exposure ``sum(max(-w, 0))``.
    gross_leverage : float, optional
        ``sum(|w|)``.
    net_leverage : (lo, hi), optional
        Bounds on ``sum(w)`` (use with ``budget=None``).
    groups : dict of str to list of str
        Named sets of assets (sectors, e.g. from ``load_sectors()`` regrouped). Members outside the universe
        are ignored at solve time; a group with no member in the universe is an error.
    group_bounds : dict of str to (lo, hi)
        Bounds on each group's total weight.
    ucits : bool or (small, big, total), default False
        True for UCITS 5/10/40 (``UCITS_DEFAULT``): ``|w_i| <= big`` and positions above ``small`` together
        ``<= total``. Solved exactly by branch and bound (see :mod:`portfolio_engine.optimization._ucits`).
    max_turnover : float, optional
        ``sum(|w - current|)``, against ``current_weights`` given at solve time (all cash if none).
    transaction_cost_bps : float or dict of str to float, optional
        Cost per unit traded, in basis points (one rate, or per asset; missing assets cost nothing).
    max_tracking_error : float, optional
        Annual tracking-error volatility against ``benchmark_weights`` given at solve time.
    factor_exposure_bounds : dict of str to (lo, hi)
        Bounds on ``B' w`` for the factors (columns) of a loadings matrix given at solve time.
    risk_budgets : dict of str to float, optional
        Risk budgets for risk parity (positive; normalised to sum to one; every asset of the universe).

    Raises
    ------
    SpecificationError
        Unknown field, a bound with lo > hi or NaN, a negative lower bound with ``long_only``, a group bound
        for an undefined group, an empty group, a negative cost or limit, a bad UCITS triple.
    """

    long_only: bool = True
    weight_bounds: Interval | None = None
    asset_bounds: dict[str, Interval] = {}
    budget: float | None = 1.0
    max_short: float | None = None
    gross_leverage: float | None = None
    net_leverage: Interval | None = None
    groups: dict[str, list[str]] = {}
    group_bounds: dict[str, Interval] = {}
    ucits: bool | tuple[float, float, float] = False
    max_turnover: float | None = None
    transaction_cost_bps: float | dict[str, float] | None = None
    max_tracking_error: float | None = None
    factor_exposure_bounds: dict[str, Interval] = {}
    risk_budgets: dict[str, float] | None = None

    @field_validator("weight_bounds", "net_leverage")
    @classmethod
    def _one_interval(cls, value: Interval | None, info: Any) -> Interval | None:
        return None if value is None else _interval(info.field_name, value)

    @field_validator("asset_bounds", "group_bounds", "factor_exposure_bounds")
    @classmethod
    def _named_intervals(cls, value: dict[str, Interval], info: Any) -> dict[str, Interval]:
        return {key: _interval(info.field_name, pair, key=key) for key, pair in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _finite("budget", self.budget)
        _finite("max_short", self.max_short, nonnegative=True)
        _finite("gross_leverage", self.gross_leverage, positive=True)
        _finite("max_turnover", self.max_turnover, nonnegative=True)
        _finite("max_tracking_error", self.max_tracking_error, positive=True)
        if self.long_only:
            lows = {"weight_bounds": self.weight_bounds[0] if self.weight_bounds else None}
            lows |= {f"asset_bounds[{a!r}]": b[0] for a, b in self.asset_bounds.items()}
            negative = {k: v for k, v in lows.items() if v is not None and v < 0}
            if negative:
                raise SpecificationError(
                    f"long_only=True but negative lower bounds {negative}.",
                    hint="Set long_only=False to allow short positions, or raise the lower bounds to >= 0.",
                )
        empty = [g for g, members in self.groups.items() if not members]
        if empty:
            raise SpecificationError(f"groups {empty} have no members.", hint="List each group's assets.")
        undefined = [g for g in self.group_bounds if g not in self.groups]
        if undefined:
            raise SpecificationError(
                f"group_bounds name groups {undefined} that groups does not define.",
                hint=f"Define them in groups, or use one of {sorted(self.groups)}.",
            )
        if self.ucits is not False and self.ucits is not True:
            small, big, total = self.ucits
            if not (0 < small < big <= 1 and big <= total):
                raise SpecificationError(
                    f"ucits must be (small, big, total) with 0 < small < big <= 1 and big <= total; "
                    f"got {self.ucits!r}.",
                    hint="Use ucits=True for (0.05, 0.10, 0.40).",
                )
        costs = self.transaction_cost_bps
        rates = costs.values() if isinstance(costs, dict) else [] if costs is None else [costs]
        bad = [c for c in rates if not (math.isfinite(c) and c >= 0)]
        if bad:
            raise SpecificationError(
                f"transaction_cost_bps must be finite and >= 0; got {costs!r}.", hint="Give costs in basis points."
            )
        budgets = self.risk_budgets or {}
        if any(not (math.isfinite(b) and b > 0) for b in budgets.values()):
            raise SpecificationError(
                f"risk_budgets must be finite and > 0; got {budgets!r}.",
                hint="Give every asset a positive budget (they are normalised to sum to one).",
            )
        return self

    @property
    def ucits_limits(self) -> tuple[float, float, float] | None:
        """The ``(small, big, total)`` triple in force, or None."""
        if self.ucits is False:
            return None
        return UCITS_DEFAULT if self.ucits is True else self.ucits

    def replace(self, **changes: Any) -> Constraints:
        """A validated copy with ``changes`` applied (``model_copy`` would skip validation)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def resolve(
        self,
        assets: Sequence[str],
        *,
        current_weights: Mapping[str, float] | pd.Series | None = None,
        benchmark_weights: Mapping[str, float] | pd.Series | None = None,
        factor_loadings: pd.DataFrame | None = None,
    ) -> ResolvedConstraints:
        """Check the constraints against a universe and turn them into arrays in its order.

        Parameters
        ----------
        assets : sequence of str
            The universe, in the order of the weight vector.
        current_weights : Series or mapping, optional
            Holdings for turnover and transaction costs; missing assets hold 0 (all cash when None).
        benchmark_weights : Series or mapping, optional
            Required with ``max_tracking_error``; missing assets weigh 0.
        factor_loadings : DataFrame of shape (n_assets, n_factors), optional
            Required with ``factor_exposure_bounds``: rows are assets, columns factors.

        Returns
        -------
        ResolvedConstraints

        Raises
        ------
        SpecificationError
            Unknown assets (in asset bounds, holdings, benchmark, risk budgets), a missing benchmark or
            loadings matrix, a factor the loadings lack, or a budget outside the range the bounds allow.
        """
        names = tuple(str(a) for a in assets)
        if len(set(names)) != len(names) or not names:
            raise SpecificationError(f"The universe is empty or repeats assets: {list(names)}.", hint="List each once.")
        index = {a: i for i, a in enumerate(names)}
        n = len(names)
        check_known("asset_bounds", self.asset_bounds, index)
        lower, upper = self._bounds(names)
        if self.budget is not None and not (lower.sum() <= self.budget + 1e-12 and self.budget <= upper.sum() + 1e-12):
            raise SpecificationError(
                f"budget {self.budget!r} lies outside what the weight bounds allow "
                f"[{lower.sum():.6g}, {upper.sum():.6g}].",
                hint="Widen weight_bounds/asset_bounds or change the budget.",
            )
        linear: list[LinearFamily] = []
        if self.groups and self.group_bounds:
            linear.append(self._group_family(index))
        if self.net_leverage is not None:
            lo, hi = self.net_leverage
            linear.append(LinearFamily("net_leverage", np.ones((1, n)), *bounds_arrays([(lo, hi)]), ("net",)))
        gross = self.gross_leverage
        long = bool((lower >= 0).all())
        if gross is not None and long:
            # With no short position sum|w| = sum(w): a plain linear row, kept on the direct QP path.
            row = LinearFamily("gross_leverage", np.ones((1, n)), np.array([-np.inf]), np.array([gross]), ("gross",))
            linear.append(row)
            gross = None
        if self.factor_exposure_bounds:
            linear.append(self._factor_family(names, factor_loadings))
        current = weight_vector("current_weights", current_weights, index)
        benchmark = None
        if self.max_tracking_error is not None:
            if benchmark_weights is None:
                raise SpecificationError(
                    f"max_tracking_error={self.max_tracking_error} needs benchmark_weights.",
                    hint="Pass benchmark_weights=... to the optimizer (a Series of weights by asset).",
                )
            benchmark = weight_vector("benchmark_weights", benchmark_weights, index)
        costs = None
        if self.transaction_cost_bps is not None:
            if isinstance(self.transaction_cost_bps, dict):
                check_known("transaction_cost_bps", self.transaction_cost_bps, index)
                bps = np.array([self.transaction_cost_bps.get(a, 0.0) for a in names])
            else:
                bps = np.full(n, float(self.transaction_cost_bps))
            costs = bps / 1e4 if bps.any() else None
        budgets = None
        if self.risk_budgets is not None:
            check_known("risk_budgets", self.risk_budgets, index)
            missing = [a for a in names if a not in self.risk_budgets]
            if missing:
                raise SpecificationError(f"risk_budgets lacks {missing}.", hint="Give every asset a positive budget.")
            raw = np.array([self.risk_budgets[a] for a in names])
            budgets = raw / raw.sum()
        return ResolvedConstraints(
            assets=names,
            lower=lower,
            upper=upper,
            budget=self.budget,
            linear=tuple(linear),
            max_short=None if long else self.max_short,
            gross_leverage=gross,
            ucits=self.ucits_limits,
            max_turnover=self.max_turnover,
            costs=costs,
            current=current if current is not None else np.zeros(n),
            max_tracking_error=self.max_tracking_error,
            benchmark=benchmark,
            risk_budgets=budgets,
        )

    def _bounds(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.weight_bounds or ((0.0, None) if self.long_only else (None, None))
        if self.long_only:
            lo = 0.0 if lo is None else max(lo, 0.0)
        pairs = [self.asset_bounds.get(a, (lo, hi)) for a in names]
        if self.long_only:
            pairs = [(0.0 if p[0] is None else p[0], p[1]) for p in pairs]
        return bounds_arrays(pairs)

    def _group_family(self, index: dict[str, int]) -> LinearFamily:
        labels = tuple(self.group_bounds)
        matrix = np.zeros((len(labels), len(index)))
        for row, group in enumerate(labels):
            members = [index[a] for a in self.groups[group] if a in index]
            if not members:
                raise SpecificationError(
                    f"group {group!r} has no member in the universe (members {self.groups[group]}).",
                    hint="Check the group's asset names, or drop its bounds for this universe.",
                )
            matrix[row, members] = 1.0
        return LinearFamily("group_bounds", matrix, *bounds_arrays([self.group_bounds[g] for g in labels]), labels)

    def _factor_family(self, names: tuple[str, ...], loadings: pd.DataFrame | None) -> LinearFamily:
        if loadings is None:
            raise SpecificationError(
                f"factor_exposure_bounds {sorted(self.factor_exposure_bounds)} need factor_loadings.",
                hint="Pass factor_loadings=DataFrame (assets x factors) to the optimizer.",
            )
        missing_assets = [a for a in names if a not in loadings.index]
        missing_factors = [f for f in self.factor_exposure_bounds if f not in loadings.columns]
        if missing_assets or missing_factors:
            raise SpecificationError(
                f"factor_loadings lack assets {missing_assets} or factors {missing_factors}.",
                hint=f"Loadings need a row per asset and the columns {sorted(self.factor_exposure_bounds)}.",
            )
        labels = tuple(self.factor_exposure_bounds)
        matrix = loadings.loc[list(names), list(labels)].to_numpy(dtype=float).T
        if not np.isfinite(matrix).all():
            bad = sorted({f"{names[j]}/{labels[i]}" for i, j in zip(*np.nonzero(~np.isfinite(matrix)), strict=True)})
            raise SpecificationError(
                f"factor_loadings hold NaN or infinite values at (asset/factor) {bad}.", hint="Fill or drop them."
            )
        bounds = bounds_arrays([self.factor_exposure_bounds[f] for f in labels])
        return LinearFamily("factor_exposure_bounds", matrix, *bounds, labels)
