"""Real-time risk monitoring: an incremental tracker fed one bar at a time, O(n_assets) per bar.

For every bar (daily or intraday; a price or a simple return per asset) :class:`RiskMonitor` updates

* the portfolio value ``V_t`` (starting at ``initial_value``): with ``rebalance="drift"`` each asset's sleeve
  grows with its own return, ``v_i <- v_i (1 + r_i)`` (buy and hold; weights drift), with ``"fixed"`` the
  weights are restored every bar, ``V_t = V_{t-1} (1 + w'r_t)``; the uninvested ``1 - sum(w)`` is cash at 0%;
* the running peak ``P_t = max(V_0, ..., V_t)``, the drawdown ``1 - V_t / P_t`` and its running maximum;
* the RiskMetrics EWMA variance of the portfolio's bar return (zero mean),
  ``s2_t = lambda s2_{t-1} + (1 - lambda) r_t^2``, seeded with ``initial_variance`` or, if none, with the first
  squared return (``s2_1 = r_1^2``, as ``pandas.Series.ewm(alpha=1 - lambda, adjust=False)``); annualised
  volatility ``sqrt(s2 * bars_per_day * days_per_year)``;
* the limits it can measure (:mod:`portfolio_engine.risk.limits`): VaR/CVaR from the EWMA volatility
  (Normal, zero mean, square-root-of-time), volatility, maximum and current drawdown, largest weight, sector
  weight (with a sector map), gross leverage. Tracking error and beta need a benchmark feed: they are listed
  in :attr:`RiskMonitor.unmonitored` and not evaluated.

A missing or NaN price (or return) means no trade: the asset's price is carried forward. With price bars the
first bar only fixes the base prices and :meth:`RiskMonitor.update` returns None for it.
:func:`monitor_batch` computes the same series vectorised, for a whole history at once.

References
----------
J.P. Morgan/Reuters (1996), "RiskMetrics - Technical Document", 4th edition (lambda = 0.94 for daily data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk.limits import SEVERITY_RANK, Breach, LimitSpec, grade, parse_limits

__all__ = ["MonitorSnapshot", "RiskMonitor", "monitor_batch"]

BarKind = Literal["return", "price"]
Rebalance = Literal["drift", "fixed"]
_MONITORED = frozenset(
    {"var", "cvar", "volatility", "max_drawdown", "current_drawdown", "weight", "sector_weight", "gross_leverage"}
)


@dataclass(frozen=True)
class MonitorSnapshot:
    """The portfolio's risk after one bar.

    Attributes
    ----------
    timestamp : object
        The bar's time as given (None if not given).
    portfolio_return : float
        Simple return of the portfolio over the bar.
    value, peak, drawdown, max_drawdown : float
        Value (starts at ``initial_value``), running peak, current drawdown ``1 - value / peak`` and its
        running maximum (fractions).
    ewma_variance : float
        EWMA variance of the bar return (per bar).
    volatility : float
        Annualised EWMA volatility.
    max_weight, gross_leverage : float
        Largest absolute asset weight and sum of absolute asset weights now (after drift).
    measured : dict of str to float
        The value of each monitored limit, keyed by the limit's name.
    breaches : tuple of Breach
        Monitored limits at or above their warning band, most severe first.
    """

    timestamp: Any
    portfolio_return: float
    value: float
    peak: float
    drawdown: float
    max_drawdown: float
    ewma_variance: float
    volatility: float
    max_weight: float
    gross_leverage: float
    measured: dict[str, float]
    breaches: tuple[Breach, ...]


def _check_lambda(ewma_lambda: float) -> float:
    if not 0.0 < ewma_lambda < 1.0:
        raise RiskInputError(f"ewma_lambda must be in (0, 1); got {ewma_lambda!r}.", hint="RiskMetrics uses 0.94.")
    return float(ewma_lambda)


def _check_weights(weights: pd.Series, budget: float) -> np.ndarray:
    w = pd.to_numeric(weights, errors="coerce").to_numpy(dtype=float)
    if w.size == 0 or not np.isfinite(w).all():
        raise RiskInputError(f"weights must be finite and non-empty; got {weights.to_dict()}.")
    if abs(w.sum() - budget) > 1e-6:
        raise RiskInputError(f"weights sum to {w.sum()!r}, not the budget {budget!r}.")
    if weights.index.has_duplicates:
        raise RiskInputError(f"weights repeat assets: {sorted(weights.index[weights.index.duplicated()])}.")
    return w


class RiskMonitor:
    """Incremental risk tracker (see the module docstring).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
        Weights at the start, summing to ``budget``; the bars must carry these assets.
    limits : mapping of str to float, optional
        The portfolio's limits; those the monitor can measure are evaluated on every bar.
    bar_kind : {"return", "price"}, default "return"
        What each bar holds per asset: a simple return over the bar, or a price.
    rebalance : {"drift", "fixed"}, default "drift"
        Buy and hold between bars, or weights restored every bar.
    ewma_lambda : float, default 0.94
        RiskMetrics decay (per bar).
    initial_variance : float, optional
        EWMA seed (per bar); None seeds with the first squared return.
    bars_per_day : float, default 1.0
        Bars in a trading day (78 for 5-minute bars of a 6.5-hour session).
    days_per_year : int, default 252
    initial_value : float, default 1.0
    sector_map : mapping of str to str, optional
        Asset -> sector, to monitor ``max_sector_weight``.
    budget : float, default 1.0
    warning_fraction, critical_multiple : float
        Severity bands (:func:`portfolio_engine.risk.limits.evaluate_limits`).

    Raises
    ------
    RiskInputError
        For NaN weights, weights off the budget, a lambda outside (0, 1), a sector limit without a full sector map.
    SpecificationError
        For an unknown or invalid limit.
    """

    def __init__(
        self,
        weights: pd.Series,
        limits: Mapping[str, float] | None = None,
        *,
        bar_kind: BarKind = "return",
        rebalance: Rebalance = "drift",
        ewma_lambda: float = 0.94,
        initial_variance: float | None = None,
        bars_per_day: float = 1.0,
        days_per_year: int = 252,
        initial_value: float = 1.0,
        sector_map: Mapping[str, str] | None = None,
        budget: float = 1.0,
        warning_fraction: float = 0.10,
        critical_multiple: float = 1.5,
    ) -> None:
        if bar_kind not in ("return", "price") or rebalance not in ("drift", "fixed"):
            raise RiskInputError(
                f"bar_kind/rebalance must be return|price and drift|fixed; got {bar_kind!r}, {rebalance!r}."
            )
        if not (initial_value > 0 and bars_per_day > 0 and days_per_year > 0):
            raise RiskInputError(
                f"initial_value, bars_per_day and days_per_year must be > 0; got {initial_value!r}, "
                f"{bars_per_day!r}, {days_per_year!r}."
            )
        if initial_variance is not None and not (math.isfinite(initial_variance) and initial_variance >= 0):
            raise RiskInputError(f"initial_variance must be >= 0; got {initial_variance!r}.", hint="Per-bar units.")
        self.assets = [str(a) for a in weights.index]
        self.weights = _check_weights(weights, budget)
        self.bar_kind, self.rebalance = bar_kind, rebalance
        self.ewma_lambda = _check_lambda(ewma_lambda)
        self.initial_variance = initial_variance
        self.annualisation = bars_per_day * days_per_year
        self.bars_per_day = bars_per_day
        self.warning_fraction, self.critical_multiple = warning_fraction, critical_multiple
        specs = parse_limits(limits or {})
        self.limits: dict[str, LimitSpec] = {n: s for n, s in specs.items() if s.kind in _MONITORED}
        self.unmonitored = sorted(set(specs) - set(self.limits))
        self._sector_codes: np.ndarray | None = None
        if any(s.kind == "sector_weight" for s in self.limits.values()):
            missing = sorted(set(self.assets) - set(sector_map or {}))
            if missing:
                raise RiskInputError(f"max_sector_weight needs a sector for {missing}.", hint="Pass sector_map.")
            _, codes = np.unique([(sector_map or {})[a] for a in self.assets], return_inverse=True)
            self._sector_codes = codes
        # Normal tail multipliers per VaR/CVaR limit, computed once: z sqrt(h) and phi(z) sqrt(h) / (1 - level).
        self._tail_factor: dict[str, float] = {}
        for name, spec in self.limits.items():
            if spec.kind in ("var", "cvar"):
                level, horizon = spec.tail
                z = float(stats.norm.ppf(level))
                factor = z if spec.kind == "var" else float(stats.norm.pdf(z)) / (1.0 - level)
                self._tail_factor[name] = factor * math.sqrt(horizon)
        self.value = float(initial_value)
        self.peak = self.value
        self.max_drawdown = 0.0
        self.ewma_variance: float | None = initial_variance
        self.cash = self.value * (1.0 - float(self.weights.sum()))
        self.sleeves = self.value * self.weights  # value held in each asset
        self.last_prices: np.ndarray | None = None
        self.units: np.ndarray | None = None  # units held, with price bars and buy and hold
        self.n_bars = 0

    @property
    def current_weights(self) -> pd.Series:
        """Weights now (drifted), as fractions of the portfolio's value."""
        return pd.Series(self.sleeves / self.value, index=self.assets)

    def _returns(self, bar: pd.Series | np.ndarray) -> np.ndarray | None:
        values = (
            bar.reindex(self.assets).to_numpy(dtype=float)
            if isinstance(bar, pd.Series)
            else np.asarray(bar, dtype=float)
        )
        if values.shape != (len(self.assets),):
            raise RiskInputError(
                f"A bar must hold one value per asset ({len(self.assets)}); got shape {values.shape}.",
                hint="Pass a Series indexed by asset or an array in the weights' order.",
            )
        if self.bar_kind == "return":
            return np.where(np.isnan(values), 0.0, values)
        if self.last_prices is None:
            if not (np.isfinite(values).all() and (values > 0).all()):
                raise RiskInputError(f"The first price bar must hold a positive price per asset; got {values}.")
            self.last_prices = values
            self.units = self.sleeves / values
            return None
        prices = np.where(np.isnan(values), self.last_prices, values)
        returns = prices / self.last_prices - 1.0
        self.last_prices = prices
        return returns

    def update(self, bar: pd.Series | np.ndarray, timestamp: Any = None) -> MonitorSnapshot | None:
        """Feed one bar; returns the snapshot after it (None for the first bar of prices, which sets the base).

        Parameters
        ----------
        bar : Series of shape (n_assets,) or ndarray of shape (n_assets,)
            A price or a simple return per asset (a Series is matched by label; extra labels are ignored).
        timestamp : object, optional
            Stored in the snapshot as given.

        Raises
        ------
        RiskInputError
            For a bar of the wrong shape, or a first price bar with a missing or non-positive price.
        """
        returns = self._returns(bar)
        if returns is None:
            return None
        previous = self.value
        if self.rebalance == "drift":
            if self.units is not None:  # price bars: hold units, value them at today's prices
                self.sleeves = self.units * self.last_prices
            else:
                self.sleeves = self.sleeves * (1.0 + returns)
            self.value = self.cash + float(self.sleeves.sum())
        else:
            self.value = previous * (1.0 + float(self.weights @ returns))
            self.sleeves = self.value * self.weights
            self.cash = self.value * (1.0 - float(self.weights.sum()))
        r = self.value / previous - 1.0
        self.ewma_variance = (
            r * r
            if self.ewma_variance is None
            else self.ewma_lambda * self.ewma_variance + (1 - self.ewma_lambda) * r * r
        )
        self.peak = max(self.peak, self.value)
        drawdown = 1.0 - self.value / self.peak
        self.max_drawdown = max(self.max_drawdown, drawdown)
        self.n_bars += 1
        exposure = np.abs(self.sleeves) / abs(self.value)
        max_weight, gross = float(exposure.max()), float(exposure.sum())
        volatility = math.sqrt(self.ewma_variance * self.annualisation)
        measured = self._measure(drawdown, max_weight, gross, volatility, self.ewma_variance)
        breaches = [
            Breach(name, measured[name], spec.threshold, severity)
            for name, spec in self.limits.items()
            if (
                severity := grade(
                    measured[name],
                    spec.threshold,
                    warning_fraction=self.warning_fraction,
                    critical_multiple=self.critical_multiple,
                )
            )
            is not None
        ]
        breaches.sort(key=lambda b: (-SEVERITY_RANK[b.severity], -b.ratio, b.limit))
        return MonitorSnapshot(
            timestamp=timestamp,
            portfolio_return=r,
            value=self.value,
            peak=self.peak,
            drawdown=drawdown,
            max_drawdown=self.max_drawdown,
            ewma_variance=self.ewma_variance,
            volatility=volatility,
            max_weight=max_weight,
            gross_leverage=gross,
            measured=measured,
            breaches=tuple(breaches),
        )

    def _measure(
        self, drawdown: float, max_weight: float, gross: float, volatility: float, variance: float
    ) -> dict[str, float]:
        daily_std = math.sqrt(variance * self.bars_per_day)
        measured: dict[str, float] = {}
        for name, spec in self.limits.items():
            kind = spec.kind
            if kind in ("var", "cvar"):
                measured[name] = daily_std * self._tail_factor[name]
            elif kind == "volatility":
                measured[name] = volatility
            elif kind == "max_drawdown":
                measured[name] = self.max_drawdown
            elif kind == "current_drawdown":
                measured[name] = drawdown
            elif kind == "weight":
                measured[name] = max_weight
            elif kind == "gross_leverage":
                measured[name] = gross
            else:  # sector_weight
                sectors = np.bincount(self._sector_codes, weights=self.sleeves) / self.value  # type: ignore[arg-type]
                measured[name] = float(np.abs(sectors).max())
        return measured

    def run(self, bars: pd.DataFrame) -> list[MonitorSnapshot]:
        """Feed every row of ``bars`` (index: time) in order; the snapshots produced."""
        snapshots = []
        for timestamp, row in zip(bars.index, bars.reindex(columns=self.assets).to_numpy(dtype=float), strict=True):
            snapshot = self.update(row, timestamp)
            if snapshot is not None:
                snapshots.append(snapshot)
        return snapshots


def monitor_batch(
    bars: pd.DataFrame,
    weights: pd.Series,
    *,
    bar_kind: BarKind = "return",
    rebalance: Rebalance = "drift",
    ewma_lambda: float = 0.94,
    initial_variance: float | None = None,
    bars_per_day: float = 1.0,
    days_per_year: int = 252,
    initial_value: float = 1.0,
    budget: float = 1.0,
) -> pd.DataFrame:
    """The series :class:`RiskMonitor` produces, computed for a whole history at once (vectorised).

    Parameters
    ----------
    bars : DataFrame of shape (n_bars, n_assets)
        Prices or simple returns per bar, indexed by time, one column per asset of ``weights``.
    weights, bar_kind, rebalance, ewma_lambda, initial_variance, bars_per_day, days_per_year, initial_value, budget
        As in :class:`RiskMonitor`.

    Returns
    -------
    DataFrame of shape (n_bars, 9)
        Columns ``portfolio_return, value, peak, drawdown, max_drawdown, ewma_variance, volatility, max_weight,
        gross_leverage``; with price bars the first row (the base) is left out.

    Raises
    ------
    RiskInputError
        As :class:`RiskMonitor`, and for bars missing an asset.
    """
    w = _check_weights(weights, budget)
    lam = _check_lambda(ewma_lambda)
    missing = sorted(set(map(str, weights.index)) - set(map(str, bars.columns)))
    if missing:
        raise RiskInputError(f"bars have no column for {missing}.", hint="Give one column per asset of the weights.")
    frame = bars[list(weights.index)].astype(float)
    cash = initial_value * (1.0 - w.sum())
    if bar_kind == "price":
        prices = frame.ffill().to_numpy()
        returns = prices[1:] / prices[:-1] - 1.0
        index = frame.index[1:]
        sleeves = (initial_value * w / prices[0]) * prices[1:]  # units held x prices
    else:
        returns = frame.fillna(0.0).to_numpy()
        index = frame.index
        # Compounded from the initial sleeves row by row: the order of the products of a running update.
        sleeves = np.cumprod(np.vstack([initial_value * w, 1.0 + returns]), axis=0)[1:]
    if rebalance == "drift":
        value = cash + sleeves.sum(axis=1)
    else:
        value = initial_value * np.cumprod(1.0 + returns @ w)
        sleeves = value[:, None] * w
    portfolio_return = value / np.concatenate(([initial_value], value[:-1])) - 1.0
    peak = np.maximum.accumulate(np.maximum(value, initial_value))
    drawdown = 1.0 - value / peak
    squared = pd.Series(portfolio_return**2)
    if initial_variance is not None:
        squared = pd.concat([pd.Series([initial_variance]), squared], ignore_index=True)
    variance = squared.ewm(alpha=1.0 - lam, adjust=False).mean().to_numpy()[-len(value) :]
    exposure = np.abs(sleeves) / np.abs(value)[:, None]
    return pd.DataFrame(
        {
            "portfolio_return": portfolio_return,
            "value": value,
            "peak": peak,
            "drawdown": drawdown,
            "max_drawdown": np.maximum.accumulate(drawdown),
            "ewma_variance": variance,
            "volatility": np.sqrt(variance * bars_per_day * days_per_year),
            "max_weight": exposure.max(axis=1),
            "gross_leverage": exposure.sum(axis=1),
        },
        index=index,
    )
