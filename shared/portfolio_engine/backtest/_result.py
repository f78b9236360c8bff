"""The frozen result of a walk-forward backtest (or of one fan-out window) and the exact merge of windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from portfolio_engine.exceptions import SpecificationError

__all__ = ["BacktestResult", "merge_results"]


@dataclass(frozen=True)
class BacktestResult:
    """Daily marks and rebalance records of a backtest.

    Daily series cover every trading date from the first decision date to the end of the run; per-decision
    records are indexed by decision date.

    Attributes
    ----------
    gross_returns : Series of shape (n_days,)
        Return of the holdings over each day, before costs (cash earns the risk-free rate).
    costs : Series of shape (n_days,)
        Trading costs of each day, in return units (zero except on decision dates).
    net_returns : Series of shape (n_days,)
        ``gross_returns - costs``, exactly, day by day.
    cash : Series of shape (n_days,)
        Cash weight at each close, after any trade.
    weights : DataFrame of shape (n_decisions, n_assets)
        Target weights set at the close of each decision date.
    pre_trade_weights : DataFrame of shape (n_decisions, n_assets)
        Drifted weights at that close, just before the trade.
    turnover : Series of shape (n_decisions,)
        Two-way turnover ``sum |target - pre_trade|`` of each rebalance.
    decision_dates : DatetimeIndex of shape (n_decisions,)
    """

    gross_returns: pd.Series
    costs: pd.Series
    net_returns: pd.Series
    cash: pd.Series
    weights: pd.DataFrame
    pre_trade_weights: pd.DataFrame
    turnover: pd.Series
    decision_dates: pd.DatetimeIndex

    @property
    def equity(self) -> pd.Series:
        """Value of one unit invested at the open of the first decision date, after costs."""
        return (1.0 + self.net_returns).cumprod()

    @property
    def total_costs(self) -> float:
        """Sum of the daily costs (return units)."""
        return float(self.costs.sum())


def merge_results(results: Sequence[BacktestResult]) -> BacktestResult:
    """Concatenate the results of consecutive fan-out windows into the whole backtest's result.

    Parameters
    ----------
    results : sequence of BacktestResult
        In any order; their daily ranges must not overlap.

    Returns
    -------
    BacktestResult

    Raises
    ------
    SpecificationError
        No results, or windows whose dates overlap.
    """
    if not results:
        raise SpecificationError("merge_results got no results.", hint="Pass the result of every window.")
    ordered = sorted(results, key=lambda r: r.gross_returns.index[0])
    days = pd.DatetimeIndex(pd.concat([r.gross_returns for r in ordered]).index)
    if not days.is_unique or not days.is_monotonic_increasing:
        raise SpecificationError(
            "The windows' daily ranges overlap; each window must be run once.",
            hint="Merge the results of split_windows(...) tasks, one per window.",
        )

    def cat(name: str) -> pd.Series:
        return pd.concat([getattr(r, name) for r in ordered])

    return BacktestResult(
        gross_returns=cat("gross_returns"),
        costs=cat("costs"),
        net_returns=cat("net_returns"),
        cash=cat("cash"),
        weights=pd.concat([r.weights for r in ordered]),
        pre_trade_weights=pd.concat([r.pre_trade_weights for r in ordered]),
        turnover=cat("turnover"),
        decision_dates=pd.DatetimeIndex(pd.concat([r.decision_dates.to_series() for r in ordered]).index),
    )
