"""Performance metrics of one return series on its own: growth, volatility, Sharpe, Sortino, drawdown, Calmar.

Conventions are those of :mod:`portfolio_engine.backtest.metrics`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from portfolio_engine.backtest._perf_inputs import (
    PERIODS_PER_YEAR,
    check_ddof,
    check_periods_per_year,
    check_series,
    per_period_rate,
    periodic_risk_free,
    safe_ratio,
)
from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.risk.measures import DrawdownStats, drawdown

#: A risk-free rate: none, a constant annual rate, or annual yields by date.
RiskFree = float | pd.Series | None


def cagr(returns: pd.Series, *, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Compound annual growth rate ``prod(1 + r) ** (periods_per_year / n) - 1`` (geometric).

    Raises
    ------
    DataError
        Empty, NaN, a return <= -1, or an unsorted index.
    SpecificationError
        ``periods_per_year`` <= 0.
    """
    values = check_series(returns, min_observations=1)
    ppy = check_periods_per_year(periods_per_year)
    return float(math.expm1(np.log1p(values).sum() * ppy / values.size))


def annualized_return(returns: pd.Series, *, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Arithmetic mean return times ``periods_per_year``.

    Raises
    ------
    DataError, SpecificationError
        As :func:`cagr`.
    """
    values = check_series(returns, min_observations=1)
    return float(values.mean() * check_periods_per_year(periods_per_year))


def annualized_volatility(returns: pd.Series, *, periods_per_year: float = PERIODS_PER_YEAR, ddof: int = 1) -> float:
    """``std(r, ddof) * sqrt(periods_per_year)``.

    Raises
    ------
    DataError
        Bad returns or fewer than two.
    SpecificationError
        Bad ``periods_per_year`` or ``ddof``.
    """
    values = check_series(returns)
    return float(values.std(ddof=check_ddof(ddof)) * math.sqrt(check_periods_per_year(periods_per_year)))


def sharpe_ratio(
    returns: pd.Series, *, risk_free: RiskFree = None, periods_per_year: float = PERIODS_PER_YEAR, ddof: int = 1
) -> float:
    """Annualised Sharpe ratio ``mean(r - rf) / std(r - rf, ddof) * sqrt(periods_per_year)``.

    Parameters
    ----------
    returns : Series of shape (n_observations,)
    risk_free : float, Series or None
        Annual rate, or annual yields by date (see the module docstring).
    periods_per_year : float, default 252
    ddof : {1, 0}, default 1

    Returns
    -------
    float
        NaN when the excess return is constant.

    Raises
    ------
    DataError
        Bad returns, fewer than two, or a risk-free series that does not cover the dates.
    SpecificationError
        Bad ``periods_per_year`` or ``ddof``.

    References
    ----------
    Sharpe, W. F. (1994), "The Sharpe ratio", Journal of Portfolio Management 21(1), 49-58.
    """
    values = check_series(returns)
    ppy, ddof = check_periods_per_year(periods_per_year), check_ddof(ddof)
    excess = values - periodic_risk_free(risk_free, returns.index, periods_per_year=ppy)
    return safe_ratio(excess.mean(), excess.std(ddof=ddof)) * math.sqrt(ppy)


def _target_per_period(returns: pd.Series, target: float | None, risk_free: RiskFree, ppy: float) -> np.ndarray:
    if target is None:
        return periodic_risk_free(risk_free, returns.index, periods_per_year=ppy)
    if not (isinstance(target, int | float) and math.isfinite(target) and target > -1):
        raise SpecificationError(f"target must be an annual rate > -1; got {target!r}.", hint="E.g. target=0.0.")
    return np.full(len(returns), float(per_period_rate(float(target), ppy)))


def downside_deviation(
    returns: pd.Series,
    *,
    target: float | None = None,
    risk_free: RiskFree = None,
    periods_per_year: float = PERIODS_PER_YEAR,
) -> float:
    """Annualised downside deviation ``sqrt(mean(min(r - T, 0) ** 2)) * sqrt(periods_per_year)``.

    The mean runs over ALL periods (periods above the target count as zeros), the convention of Sortino and Price
    (1994); it is not the standard deviation of the negative returns alone.

    Parameters
    ----------
    returns : Series of shape (n_observations,)
    target : float, optional
        Minimum acceptable return, an ANNUAL rate turned per-period geometrically. Default: the risk-free rate.
    risk_free : float, Series or None
        Used as the target when ``target`` is None.
    periods_per_year : float, default 252

    Raises
    ------
    DataError, SpecificationError
        Bad returns, risk-free rate, target or ``periods_per_year``.
    """
    values = check_series(returns)
    ppy = check_periods_per_year(periods_per_year)
    shortfall = np.minimum(values - _target_per_period(returns, target, risk_free, ppy), 0.0)
    return float(math.sqrt(float(np.mean(shortfall**2))) * math.sqrt(ppy))


def sortino_ratio(
    returns: pd.Series,
    *,
    target: float | None = None,
    risk_free: RiskFree = None,
    periods_per_year: float = PERIODS_PER_YEAR,
) -> float:
    """Annualised Sortino ratio ``mean(r - T) * periods_per_year / downside_deviation``.

    ``T`` is the per-period target (the risk-free rate unless ``target`` is given); see :func:`downside_deviation`.
    NaN when no period falls below the target.

    Raises
    ------
    DataError, SpecificationError
        As :func:`downside_deviation`.

    References
    ----------
    Sortino, F. A. and Price, L. N. (1994), "Performance measurement in a downside risk framework",
    Journal of Investing 3(3), 59-64.
    """
    values = check_series(returns)
    ppy = check_periods_per_year(periods_per_year)
    gap = values - _target_per_period(returns, target, risk_free, ppy)
    downside = math.sqrt(float(np.mean(np.minimum(gap, 0.0) ** 2)))
    return safe_ratio(gap.mean(), downside) * math.sqrt(ppy)


def drawdown_stats(returns: pd.Series) -> DrawdownStats:
    """Drawdown path, maximum drawdown, its peak/trough/recovery dates and duration (``risk.measures.drawdown``).

    Raises
    ------
    DataError
        Bad returns.
    """
    check_series(returns, min_observations=1)
    return drawdown(returns)


def max_drawdown(returns: pd.Series) -> float:
    """Largest fall of wealth from its running peak, as a positive fraction (0.0 if wealth never falls).

    Raises
    ------
    DataError
        Bad returns.
    """
    return drawdown_stats(returns).maximum


def calmar_ratio(returns: pd.Series, *, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """``CAGR / max drawdown`` over the whole series (not the trailing 36 months of the original definition).

    NaN when there is no drawdown.

    Raises
    ------
    DataError, SpecificationError
        As :func:`cagr`.

    References
    ----------
    Young, T. W. (1991), "Calmar ratio: a smoother tool", Futures 20(1), 40.
    """
    return safe_ratio(cagr(returns, periods_per_year=periods_per_year), max_drawdown(returns))
