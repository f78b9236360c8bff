"""A dynamic rebalancing rule: trade on a regime change or a large drift, but only when it pays.

The rule is pure: it sees the weights held now (after drift), the target, the regimes and the
moments, and returns a frozen decision. It triggers when the regime changed (if enabled) or the
drift from target exceeds a threshold; a triggered rebalance goes ahead only when the expected
benefit, the mean-variance utility gain of the target over the drifted weights, exceeds the cost
of the trades by at least ``min_net_benefit``.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, SpecificationError
from portfolio_engine.optimization.moments import Moments

__all__ = ["DriftMeasure", "RebalanceDecision", "RebalanceReason", "RebalanceRule", "drift_weights"]

DriftMeasure = Literal["max_abs", "half_l1", "l1", "l2"]


class RebalanceReason(StrEnum):
    """Why a decision came out the way it did."""

    REGIME_CHANGE = "regime_change"
    DRIFT = "drift"
    NO_TRIGGER = "no_trigger"
    COST_EXCEEDS_BENEFIT = "cost_exceeds_benefit"


@dataclass(frozen=True)
class RebalanceDecision:
    """Outcome of :meth:`RebalanceRule.decide`.

    Attributes
    ----------
    rebalance : bool
    reason : RebalanceReason
        ``regime_change`` or ``drift`` when trading (a regime change takes precedence when both
        triggered), ``no_trigger`` or ``cost_exceeds_benefit`` when not.
    drift : float
        Distance from target under the rule's ``drift_measure``.
    turnover : float
        ``sum |target - current|`` (two-way, fraction of portfolio value).
    cost : float
        ``turnover * cost_bps / 1e4``, fraction of portfolio value.
    benefit : float
        Utility gain ``U(target) - U(current)`` over ``horizon_years``, ``U(w) = w'mu - risk_aversion / 2 w'Sigma w``.
    """

    rebalance: bool
    reason: RebalanceReason
    drift: float
    turnover: float
    cost: float
    benefit: float

    @property
    def net_benefit(self) -> float:
        """``benefit - cost``."""
        return self.benefit - self.cost


@dataclass(frozen=True)
class RebalanceRule:
    """When to move the portfolio back to its target.

    Parameters
    ----------
    drift_threshold : float
        Trigger when the drift exceeds this (same units as ``drift_measure``), e.g. 0.05.
    on_regime_change : bool, default True
        Also trigger when the regime changed.
    cost_bps : float, default 10.0
        Cost of trading, in basis points of the value traded (commission, spread, impact).
    min_net_benefit : float, default 0.0
        Trade only if ``benefit - cost`` exceeds this.
    drift_measure : {"max_abs", "half_l1", "l1", "l2"}, default "max_abs"
        ``max |w - target|``, one-way turnover ``sum |w - target| / 2``, ``sum |w - target|``, or the
        Euclidean distance.
    horizon_years : float, default 1.0
        Period over which the annual utility gain accrues before the next decision (``1 / 12`` for a
        monthly review); the one-off cost is compared with ``horizon_years * annual gain``.

    Raises
    ------
    SpecificationError
        A negative or non-finite parameter, or an unknown ``drift_measure``.
    """

    drift_threshold: float
    on_regime_change: bool = True
    cost_bps: float = 10.0
    min_net_benefit: float = 0.0
    drift_measure: DriftMeasure = "max_abs"
    horizon_years: float = 1.0

    def __post_init__(self) -> None:
        for name in ("drift_threshold", "cost_bps", "horizon_years"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and np.isfinite(float(value)) and float(value) >= 0):
                raise SpecificationError(
                    f"RebalanceRule.{name} must be a finite number >= 0; got {value!r}.",
                    hint="e.g. RebalanceRule(drift_threshold=0.05, cost_bps=10, horizon_years=1/12).",
                )
        if not (isinstance(self.min_net_benefit, numbers.Real) and np.isfinite(float(self.min_net_benefit))):
            raise SpecificationError(
                f"RebalanceRule.min_net_benefit must be finite; got {self.min_net_benefit!r}.", hint="Use 0.0."
            )
        if self.drift_measure not in ("max_abs", "half_l1", "l1", "l2"):
            raise SpecificationError(
                f"Unknown drift_measure {self.drift_measure!r}.", hint="Choose 'max_abs', 'half_l1', 'l1' or 'l2'."
            )

    def drift(self, current_weights: pd.Series, target_weights: pd.Series) -> float:
        """Distance between two weight vectors under ``drift_measure`` (assets missing from one count as 0)."""
        current, target = _align(current_weights, target_weights)
        gap = np.abs(current.to_numpy() - target.to_numpy())
        if gap.size == 0:
            return 0.0
        if self.drift_measure == "max_abs":
            return float(gap.max())
        if self.drift_measure == "l2":
            return float(np.sqrt(gap @ gap))
        return float(gap.sum() / (2.0 if self.drift_measure == "half_l1" else 1.0))

    def decide(
        self,
        current_weights: pd.Series,
        target_weights: pd.Series,
        *,
        previous_regime: Hashable | None,
        current_regime: Hashable | None,
        moments: Moments,
        risk_aversion: float,
    ) -> RebalanceDecision:
        """Decide whether to trade from ``current_weights`` (after drift) to ``target_weights``.

        Parameters
        ----------
        current_weights : Series of shape (n_held,)
            Weights now, indexed by asset (see :func:`drift_weights`).
        target_weights : Series of shape (n_target,)
            Weights wanted; an asset in only one of the two has weight 0 in the other.
        previous_regime, current_regime : hashable or None
            Regime labels at the last decision and now; None means unknown (no regime trigger).
        moments : Moments
            Annual moments used to value both portfolios; must cover every asset of either.
        risk_aversion : float
            ``lambda`` >= 0 of the utility ``w'mu - lambda / 2 w'Sigma w``.

        Returns
        -------
        RebalanceDecision

        Raises
        ------
        SpecificationError
            Weights not finite, an asset missing from ``moments``, or a bad ``risk_aversion``.
        """
        if not (np.isfinite(risk_aversion) and risk_aversion >= 0):
            raise SpecificationError(
                f"risk_aversion must be a finite number >= 0; got {risk_aversion!r}.", hint="e.g. risk_aversion=3."
            )
        current, target = _align(current_weights, target_weights)
        missing = [str(a) for a in current.index if a not in moments.assets]
        if missing:
            raise SpecificationError(
                f"moments do not cover asset(s) {missing} held or targeted.",
                hint="Estimate the moments on the union of the held and the target assets.",
            )
        mu = moments.mu.reindex(current.index).to_numpy()
        cov = moments.cov.loc[current.index, current.index].to_numpy()

        def utility(w: np.ndarray) -> float:
            return float(w @ mu - 0.5 * risk_aversion * (w @ cov @ w))

        w_now, w_target = current.to_numpy(), target.to_numpy()
        turnover = float(np.abs(w_target - w_now).sum())
        cost = turnover * self.cost_bps / 1e4
        benefit = (utility(w_target) - utility(w_now)) * self.horizon_years
        drift = self.drift(current, target)
        regime_changed = (
            self.on_regime_change
            and previous_regime is not None
            and current_regime is not None
            and previous_regime != current_regime
        )
        if regime_changed:
            trigger = RebalanceReason.REGIME_CHANGE
        elif drift > self.drift_threshold:
            trigger = RebalanceReason.DRIFT
        else:
            return RebalanceDecision(False, RebalanceReason.NO_TRIGGER, drift, turnover, cost, benefit)
        if benefit - cost > self.min_net_benefit:
            return RebalanceDecision(True, trigger, drift, turnover, cost, benefit)
        return RebalanceDecision(False, RebalanceReason.COST_EXCEEDS_BENEFIT, drift, turnover, cost, benefit)


def _align(current_weights: pd.Series, target_weights: pd.Series) -> tuple[pd.Series, pd.Series]:
    for name, weights in (("current_weights", current_weights), ("target_weights", target_weights)):
        if not isinstance(weights, pd.Series):
            raise SpecificationError(
                f"{name} must be a Series indexed by asset; got {type(weights).__name__}.",
                hint="Pass e.g. result.weights (a pandas Series).",
            )
        values = weights.to_numpy(dtype="float64")
        if weights.index.has_duplicates or not np.isfinite(values).all():
            repeated = sorted({str(a) for a in weights.index[weights.index.duplicated()]})
            bad = {str(a): float(v) for a, v in zip(weights.index, values, strict=True) if not np.isfinite(v)}
            raise SpecificationError(
                f"{name} has duplicate assets {repeated} or non-finite weights {bad}.", hint="Check the weights."
            )
    assets = current_weights.index.union(target_weights.index, sort=False)
    current = current_weights.reindex(assets, fill_value=0.0).astype("float64")
    target = target_weights.reindex(assets, fill_value=0.0).astype("float64")
    return current, target


def drift_weights(weights: pd.Series, period_returns: pd.Series | pd.DataFrame) -> pd.Series:
    """Weights after the assets earn ``period_returns``, with no trading.

    ``w_i (1 + R_i) / (sum_j w_j (1 + R_j) + 1 - sum_j w_j)``, where ``R_i`` is the compounded return
    over the rows of ``period_returns`` and ``1 - sum w`` is cash earning nothing (zero for a fully
    invested portfolio; it also carries the cash of a long-short book).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    period_returns : Series of shape (n_assets,) or DataFrame of shape (n_periods, n_assets)
        Simple returns of one period, or of several periods in a row (compounded).

    Returns
    -------
    Series of shape (n_assets,)

    Raises
    ------
    SpecificationError
        ``weights`` not a finite Series.
    DataError
        A held asset has no finite return, or the portfolio's value falls to zero or below.
    """
    if not isinstance(weights, pd.Series) or not np.isfinite(weights.to_numpy(dtype="float64")).all():
        raise SpecificationError(
            f"weights must be a Series of finite numbers indexed by asset; got {type(weights).__name__} "
            f"{weights!r:.200}.",
            hint="Pass e.g. result.weights (a pandas Series).",
        )
    growth = (1.0 + period_returns).prod(axis=0) if isinstance(period_returns, pd.DataFrame) else 1.0 + period_returns
    growth = pd.Series(growth).reindex(weights.index).astype("float64")
    held = weights.to_numpy(dtype="float64")
    factor = growth.to_numpy()
    unknown = ~np.isfinite(factor) & (held != 0)
    if unknown.any():
        raise DataError(
            f"No finite return for held asset(s) {[str(a) for a in weights.index[unknown]]}.",
            hint="Give a return for every asset held (0.0 for one that did not trade).",
        )
    grown = np.where(held != 0, held * np.nan_to_num(factor), 0.0)
    value = float(grown.sum() + 1.0 - held.sum())
    if not value > 0:
        raise DataError(
            f"The portfolio's value fell to {value:.6g} of its start: weights are undefined.",
            hint="Check the returns (a -100% return on a leveraged book wipes it out).",
        )
    return pd.Series(grown / value, index=weights.index, name=weights.name)
