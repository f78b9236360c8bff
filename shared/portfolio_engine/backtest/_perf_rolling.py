"""Rolling volatility, Sharpe ratio and beta over a trailing window (same conventions as ``metrics``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from portfolio_engine.backtest._perf_inputs import (
    PERIODS_PER_YEAR,
    ZERO_SCALE,
    aligned,
    check_ddof,
    check_periods_per_year,
    check_series,
    check_window,
    periodic_risk_free,
)


def rolling_volatility(
    returns: pd.Series, window: int, *, periods_per_year: float = PERIODS_PER_YEAR, ddof: int = 1
) -> pd.Series:
    """Annualised volatility over each trailing window of ``window`` periods, ``std(ddof) * sqrt(periods_per_year)``.

    Parameters
    ----------
    returns : Series of shape (n_observations,)
    window : int
        Periods per window (2 <= window <= n_observations).
    periods_per_year : float, default 252
    ddof : {1, 0}, default 1

    Returns
    -------
    Series of shape (n_observations,)
        NaN for the first ``window - 1`` dates (no full window yet); the value on date ``t`` uses ``t`` and the
        ``window - 1`` dates before it.

    Raises
    ------
    DataError
        Bad returns (see ``metrics``), or a window longer than the series.
    SpecificationError
        A window below 2, a bad ``periods_per_year`` or ``ddof``.
    """
    check_series(returns)
    window = check_window(window, len(returns))
    ppy, ddof = check_periods_per_year(periods_per_year), check_ddof(ddof)
    std = returns.astype("float64").rolling(window).std(ddof=ddof)
    return (std * math.sqrt(ppy)).rename("rolling_volatility")


def rolling_sharpe(
    returns: pd.Series,
    window: int,
    *,
    risk_free: float | pd.Series | None = None,
    periods_per_year: float = PERIODS_PER_YEAR,
    ddof: int = 1,
) -> pd.Series:
    """Annualised Sharpe ratio over each trailing window: ``mean(r - rf) / std(r - rf) * sqrt(periods_per_year)``.

    Parameters
    ----------
    returns : Series of shape (n_observations,)
    window : int
    risk_free : float, Series or None
        Annual rate or annual yields (see ``metrics.sharpe_ratio``).
    periods_per_year : float, default 252
    ddof : {1, 0}, default 1

    Returns
    -------
    Series of shape (n_observations,)
        NaN for the first ``window - 1`` dates and for windows with zero volatility.

    Raises
    ------
    DataError, SpecificationError
        As :func:`rolling_volatility`, plus a risk-free series that does not cover the dates.
    """
    check_series(returns)
    window = check_window(window, len(returns))
    ppy, ddof = check_periods_per_year(periods_per_year), check_ddof(ddof)
    excess = returns.astype("float64") - periodic_risk_free(risk_free, returns.index, periods_per_year=ppy)
    rolling = excess.rolling(window)
    std = rolling.std(ddof=ddof)
    ratio = rolling.mean() / std.where(std > ZERO_SCALE) * math.sqrt(ppy)
    return ratio.rename("rolling_sharpe")


def rolling_beta(
    returns: pd.Series,
    benchmark: pd.Series,
    window: int,
    *,
    risk_free: float | pd.Series | None = None,
    periods_per_year: float = PERIODS_PER_YEAR,
) -> pd.Series:
    """CAPM beta over each trailing window: ``cov(r - rf, b - rf) / var(b - rf)`` (the OLS slope).

    Parameters
    ----------
    returns : Series of shape (n_observations,)
    benchmark : Series
        Benchmark returns with a value on every date of ``returns``.
    window : int
    risk_free : float, Series or None
        Subtracted from both series (it matters only when it varies).
    periods_per_year : float, default 252
        Used only to turn annual risk-free rates into per-period ones.

    Returns
    -------
    Series of shape (n_observations,)
        NaN for the first ``window - 1`` dates and for windows where the benchmark is constant.

    Raises
    ------
    DataError, SpecificationError
        As :func:`rolling_volatility`, plus a benchmark missing some date.
    """
    check_series(returns)
    window = check_window(window, len(returns))
    ppy = check_periods_per_year(periods_per_year)
    rf = periodic_risk_free(risk_free, returns.index, periods_per_year=ppy)
    bench = pd.Series(aligned(benchmark, returns.index, name="benchmark") - rf, index=returns.index)
    excess = returns.astype("float64") - rf
    covariance = excess.rolling(window).cov(bench)
    variance = bench.rolling(window).var()
    beta = covariance / variance.where(variance > ZERO_SCALE**2)
    return beta.astype(np.float64).rename("rolling_beta")
