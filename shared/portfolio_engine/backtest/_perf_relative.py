"""Performance metrics against a benchmark (tracking error, information ratio, CAPM, hit rate) and realised VaR/CVaR.

Conventions are those of :mod:`portfolio_engine.backtest.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio_engine.backtest._perf_absolute import RiskFree
from portfolio_engine.backtest._perf_inputs import (
    PERIODS_PER_YEAR,
    ZERO_SCALE,
    aligned,
    check_ddof,
    check_periods_per_year,
    check_series,
    periodic_risk_free,
    safe_ratio,
)
from portfolio_engine.exceptions import DataError
from portfolio_engine.risk.measures import TailRisk, tail_risk


def _active(returns: pd.Series, benchmark: pd.Series) -> np.ndarray:
    values = check_series(returns)
    return values - aligned(benchmark, returns.index, name="benchmark")


def tracking_error(
    returns: pd.Series, benchmark: pd.Series, *, periods_per_year: float = PERIODS_PER_YEAR, ddof: int = 1
) -> float:
    """Annualised standard deviation of the active return ``r - b``, on the dates of ``returns``.

    Raises
    ------
    DataError
        Bad returns, or a benchmark without a value on some return date.
    SpecificationError
        Bad ``periods_per_year`` or ``ddof``.
    """
    active = _active(returns, benchmark)
    return float(active.std(ddof=check_ddof(ddof)) * math.sqrt(check_periods_per_year(periods_per_year)))


def information_ratio(
    returns: pd.Series, benchmark: pd.Series, *, periods_per_year: float = PERIODS_PER_YEAR, ddof: int = 1
) -> float:
    """``mean(r - b) * periods_per_year / tracking_error`` (arithmetic active return); NaN when ``r - b`` is constant.

    Raises
    ------
    DataError, SpecificationError
        As :func:`tracking_error`.

    References
    ----------
    Grinold, R. C. and Kahn, R. N. (2000), Active Portfolio Management, 2nd ed., McGraw-Hill, ch. 5.
    """
    active = _active(returns, benchmark)
    ppy, ddof = check_periods_per_year(periods_per_year), check_ddof(ddof)
    return safe_ratio(active.mean(), active.std(ddof=ddof)) * math.sqrt(ppy)


@dataclass(frozen=True)
class CapmResult:
    """OLS of the excess return on the benchmark's excess return, ``r - rf = alpha + beta (b - rf) + e``.

    Attributes
    ----------
    alpha : float
        Intercept annualised arithmetically (``alpha_per_period * periods_per_year``).
    beta : float
    alpha_per_period : float
    r_squared : float
    n_observations : int
    """

    alpha: float
    beta: float
    alpha_per_period: float
    r_squared: float
    n_observations: int


def capm(
    returns: pd.Series,
    benchmark: pd.Series,
    *,
    risk_free: RiskFree = None,
    periods_per_year: float = PERIODS_PER_YEAR,
) -> CapmResult:
    """CAPM (Jensen's) alpha and beta of ``returns`` against ``benchmark``, on the dates of ``returns``.

    Raises
    ------
    DataError
        Bad returns, a benchmark or risk-free series missing some date, or a constant benchmark excess return.
    SpecificationError
        Bad ``periods_per_year``.

    References
    ----------
    Jensen, M. C. (1968), "The performance of mutual funds in the period 1945-1964", Journal of Finance 23(2),
    389-416.
    """
    values = check_series(returns)
    ppy = check_periods_per_year(periods_per_year)
    rf = periodic_risk_free(risk_free, returns.index, periods_per_year=ppy)
    y, x = values - rf, aligned(benchmark, returns.index, name="benchmark") - rf
    dx, dy = x - x.mean(), y - y.mean()
    sxx = float(dx @ dx)
    if not sxx > ZERO_SCALE**2 * len(x):
        raise DataError(
            "The benchmark's excess return is constant on the return dates: beta is undefined.",
            hint="Check the benchmark series (a price series passed instead of returns?).",
        )
    slope = float(dx @ dy) / sxx
    intercept = float(y.mean() - slope * x.mean())
    syy = float(dy @ dy)
    r_squared = float((dx @ dy) ** 2 / (sxx * syy)) if syy > ZERO_SCALE**2 * len(y) else float("nan")
    return CapmResult(intercept * ppy, slope, intercept, r_squared, len(y))


def hit_rate(returns: pd.Series, benchmark: pd.Series | None = None) -> float:
    """Share of periods with a return > 0, or above the benchmark's when one is given (ties count as misses).

    Raises
    ------
    DataError
        Bad returns, or a benchmark missing some date.
    """
    values = check_series(returns, min_observations=1)
    hurdle = 0.0 if benchmark is None else aligned(benchmark, returns.index, name="benchmark")
    return float(np.mean(values > hurdle))


def realized_tail_risk(returns: pd.Series, *, level: float = 0.95, horizon: int = 1) -> TailRisk:
    """Historical VaR and CVaR of the realised returns (``risk.measures.tail_risk`` on a one-asset portfolio).

    Parameters
    ----------
    returns : Series of shape (n_observations,)
    level : float, default 0.95
    horizon : int, default 1
        Periods per scenario (overlapping windows, compounded).

    Returns
    -------
    TailRisk
        ``var`` and ``cvar`` as positive losses, fractions of value.

    Raises
    ------
    DataError
        Bad returns.
    RiskInputError
        A level outside (0, 1) or a horizon < 1.
    RiskError
        Fewer returns than the horizon.
    """
    check_series(returns, min_observations=1)
    frame = returns.astype("float64").to_frame("portfolio")
    return tail_risk(pd.Series({"portfolio": 1.0}), frame, level=level, horizon=horizon, method="historical")
