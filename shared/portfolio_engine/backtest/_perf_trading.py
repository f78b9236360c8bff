"""Turnover and transaction costs from a history of weights or trades."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, EmptyDataError, SpecificationError


def _check_frame(frame: pd.DataFrame, *, name: str) -> np.ndarray:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{name} must be a DataFrame (rows = rebalance dates, columns = assets); got {type(frame).__name__}.",
            hint="Pass e.g. the backtest's weights history.",
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise EmptyDataError(f"{name} is empty (shape {frame.shape}).", hint="Pass at least one rebalance.")
    try:
        values = frame.to_numpy(dtype="float64", copy=True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} holds non-numeric values ({exc}).", hint="Pass weights as floats.") from exc
    if not np.isfinite(values).all():
        raise DataError(f"{name} has NaN or infinite values.", hint="Use 0.0 for assets not held (frame.fillna(0.0)).")
    return values


def trades_from_weights(
    weights: pd.DataFrame, *, pre_trade: pd.DataFrame | None = None, include_initial: bool = True
) -> pd.DataFrame:
    """Trades implied by a history of target weights.

    Parameters
    ----------
    weights : DataFrame of shape (n_rebalances, n_assets)
        Weights right after each rebalance (fractions of portfolio value; 0.0 for assets not held).
    pre_trade : DataFrame of shape (n_rebalances, n_assets), optional
        Weights just before each rebalance (the previous targets drifted with the returns). When given, the trades are
        exactly ``weights - pre_trade``. Without it they are ``weights.diff()``, which ignores drift between
        rebalances (it understates or overstates the true trades by the drift).
    include_initial : bool, default True
        Without ``pre_trade``, count the first row as bought from cash (trades = the first weights); otherwise the
        first row has no trades.

    Returns
    -------
    DataFrame of shape (n_rebalances, n_assets)
        Signed traded weight per asset (buy > 0).

    Raises
    ------
    DataError
        Empty, NaN or non-numeric tables, or ``pre_trade`` with other dates or assets than ``weights``.
    """
    _check_frame(weights, name="weights")
    if pre_trade is not None:
        _check_frame(pre_trade, name="pre_trade")
        if not (pre_trade.index.equals(weights.index) and pre_trade.columns.equals(weights.columns)):
            raise DataError(
                "pre_trade must have the same dates and assets as weights.",
                hint="Reindex it: pre_trade.reindex(index=weights.index, columns=weights.columns, fill_value=0.0).",
            )
        return weights - pre_trade
    trades = weights.diff()
    trades.iloc[0] = weights.iloc[0] if include_initial else 0.0
    return trades


def turnover(trades: pd.DataFrame, *, one_sided: bool = False) -> pd.Series:
    """Turnover of each rebalance: ``sum_i |trade_i|`` (buys plus sells), halved when ``one_sided``.

    Parameters
    ----------
    trades : DataFrame of shape (n_rebalances, n_assets)
        Signed traded weights (see :func:`trades_from_weights`).
    one_sided : bool, default False
        ``0.5 * sum |trade|`` (the smaller of buys and sells for a fully invested portfolio).

    Returns
    -------
    Series of shape (n_rebalances,)

    Raises
    ------
    DataError
        Empty, NaN or non-numeric trades.
    """
    values = _check_frame(trades, name="trades")
    factor = 0.5 if one_sided else 1.0
    return pd.Series(factor * np.abs(values).sum(axis=1), index=trades.index, name="turnover")


def transaction_costs(trades: pd.DataFrame, *, cost_bps: float) -> pd.Series:
    """Proportional costs of each rebalance as a fraction of portfolio value: ``cost_bps / 1e4 * sum_i |trade_i|``.

    Parameters
    ----------
    trades : DataFrame of shape (n_rebalances, n_assets)
    cost_bps : float
        Cost per unit traded, in basis points (>= 0).

    Returns
    -------
    Series of shape (n_rebalances,)

    Raises
    ------
    SpecificationError
        ``cost_bps`` negative or not finite.
    DataError
        Empty, NaN or non-numeric trades.
    """
    try:
        bps = float(cost_bps)
    except (TypeError, ValueError):
        bps = float("nan")
    if not (math.isfinite(bps) and bps >= 0):
        raise SpecificationError(f"cost_bps must be a number >= 0; got {cost_bps!r}.", hint="E.g. cost_bps=5.")
    return (turnover(trades) * bps / 1e4).rename("cost")


def costs_paid(costs: pd.Series, *, years: float | None = None) -> float:
    """Total costs paid (the sum of the per-rebalance cost fractions), or per year when ``years`` is given.

    The sum of fractions of value is the usual "cost drag"; it ignores the small compounding between rebalances.

    Parameters
    ----------
    costs : Series of shape (n_rebalances,)
        Cost of each rebalance as a fraction of portfolio value (>= 0).
    years : float, optional
        Length of the backtest in years.

    Returns
    -------
    float

    Raises
    ------
    DataError
        Not a Series, NaN or negative costs.
    SpecificationError
        ``years`` <= 0.
    """
    if not isinstance(costs, pd.Series):
        raise DataError(f"costs must be a Series; got {type(costs).__name__}.", hint="One cost per rebalance date.")
    values = costs.to_numpy(dtype="float64")
    if not np.isfinite(values).all() or (values < 0).any():
        raise DataError("costs must be finite and >= 0.", hint="Pass costs as positive fractions of value.")
    total = float(values.sum())
    if years is None:
        return total
    if not (isinstance(years, int | float) and math.isfinite(years) and years > 0):
        raise SpecificationError(f"years must be > 0; got {years!r}.", hint="Pass n_periods / periods_per_year.")
    return total / float(years)
