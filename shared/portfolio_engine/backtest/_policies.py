"""Policies: what a decision sees (history and a context) and the adapter for the optimizers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization import PortfolioSpec, estimate_moments, optimize

__all__ = ["DecisionContext", "Policy", "SpecPolicy"]


@dataclass(frozen=True)
class DecisionContext:
    """What a policy knows at a decision besides the returns history, all of it known before the date.

    Attributes
    ----------
    date : Timestamp
        The decision date ``t``; the trade happens at its close.
    current_weights : Series of shape (n_assets,) or None
        Weights at the close of ``t - 1``. None in the look-back decision a fan-out task recomputes (a policy
        that reads it cannot be fanned out exactly).
    previous_target : Series of shape (n_assets,) or None
        Target of the previous decision, None at the first.
    regime_probabilities : Series of shape (n_states,) or None
        The last row of the regime probabilities dated strictly before ``t`` (the hook of a regime-aware policy).
    """

    date: pd.Timestamp
    current_weights: pd.Series | None = None
    previous_target: pd.Series | None = None
    regime_probabilities: pd.Series | None = None

    @property
    def regime(self) -> str | None:
        """Name of the most probable regime state, None without probabilities."""
        if self.regime_probabilities is None or self.regime_probabilities.empty:
            return None
        return str(self.regime_probabilities.idxmax())


class Policy(Protocol):
    """``policy(history, context) -> target weights``.

    ``history`` (DataFrame of shape (n_window, n_assets)) holds the returns strictly before ``context.date``; the
    returned Series is indexed by a subset of the assets (missing ones get weight 0; weights summing below 1
    leave the rest in cash).
    """

    def __call__(self, history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        """Target weights for the decision at ``context.date``."""
        ...


@dataclass(frozen=True)
class SpecPolicy:
    """A policy that estimates moments on the history and optimizes a :class:`PortfolioSpec`.

    Moments come from :func:`~portfolio_engine.optimization.estimate_moments` with the spec's estimators on its
    universe and its last ``lookback_days`` rows; :func:`~portfolio_engine.optimization.optimize` then applies the
    spec, switched to the context's regime policy when regime probabilities are given. The holdings are not
    passed on, so the policy can be fanned out exactly.

    Parameters
    ----------
    spec : PortfolioSpec
    """

    spec: PortfolioSpec

    def __call__(self, history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        """Optimized weights on the history before ``context.date``.

        Raises
        ------
        SpecificationError, DataError, InfeasibleError, SolverFailedError
            From the estimators and the optimizer.
        """
        spec = self.spec
        missing = [a for a in spec.universe or [] if a not in history.columns]
        if missing:
            raise SpecificationError(
                f"The spec's universe names {missing}, which the returns do not have.",
                hint=f"Restrict the universe to the returns' columns: {history.columns.tolist()}.",
            )
        data = history if spec.universe is None else history.loc[:, spec.universe]
        if spec.lookback_days is not None:
            data = data.iloc[-spec.lookback_days :]
        moments = estimate_moments(
            data,
            mean=spec.estimators.mean,
            covariance=spec.estimators.covariance,
            periods_per_year=spec.periods_per_year,
            **spec.estimators.options,
        )
        return optimize(spec, moments, returns=data, regime=context.regime).weights
