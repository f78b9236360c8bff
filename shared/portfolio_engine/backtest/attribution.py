"""Performance attribution: factor regressions (Fama-French monthly, factor ETFs daily) and Brinson-Fachler by sector.

Factor attribution regresses the portfolio's excess return on factor returns by OLS with an intercept
(:class:`portfolio_engine.optimization.LinearFactorModel`), ``y_t = alpha + sum_k beta_k f_kt + e_t``, and splits it:

* per period, EXACTLY: ``y_t = sum_k beta_k f_kt + alpha + e_t`` (the columns of ``by_period``);
* on average, annualised ARITHMETICALLY (times ``periods_per_year``: 12 for Fama-French, 252 for daily ETFs):
  ``contribution_k = beta_k * mean(f_k) * periods_per_year``, alpha ``alpha * periods_per_year`` and the residual's
  mean (zero up to round-off, since OLS with an intercept has mean-zero residuals); together they equal the mean
  excess return times ``periods_per_year``. The part of the variance left unexplained is ``1 - R^2``.

Sector attribution: :func:`brinson_fachler` (Brinson and Fachler, 1985), linked over periods by Carino (1999).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio_engine.backtest._brinson import BrinsonAttribution, brinson_fachler, sector_weights_and_returns
from portfolio_engine.backtest._perf_inputs import (
    PERIODS_PER_YEAR,
    check_periods_per_year,
    check_series,
    periodic_risk_free,
)
from portfolio_engine.exceptions import DataError, SchemaError
from portfolio_engine.optimization import LinearFactorModel, align_factor_data, to_monthly_returns

__all__ = [
    "BrinsonAttribution",
    "FactorAttribution",
    "brinson_fachler",
    "factor_attribution",
    "fama_french_attribution",
    "sector_weights_and_returns",
]


@dataclass(frozen=True, eq=False)
class FactorAttribution:
    """A portfolio's excess return split into factor contributions, alpha and residual.

    Attributes
    ----------
    betas : Series of shape (n_factors,)
    alpha : float
        Intercept per period.
    factor_means : Series of shape (n_factors,)
        Mean factor return per period over the regression sample.
    contributions : Series of shape (n_factors,)
        ``beta_k * factor_means_k * periods_per_year`` (annual, arithmetic).
    by_period : DataFrame of shape (n_observations, n_factors + 2)
        ``beta_k f_kt`` for each factor, then ``alpha`` and ``residual``; each row sums to the excess return.
    excess_returns : Series of shape (n_observations,)
        The regressed (excess) portfolio returns.
    r_squared : float
    residual_volatility : float
        Annualised standard deviation of the residual (ddof = 1).
    periods_per_year : float
    """

    betas: pd.Series
    alpha: float
    factor_means: pd.Series
    contributions: pd.Series
    by_period: pd.DataFrame
    excess_returns: pd.Series
    r_squared: float
    residual_volatility: float
    periods_per_year: float

    @property
    def n_observations(self) -> int:
        """Periods in the regression."""
        return len(self.excess_returns)

    def summary(self) -> pd.DataFrame:
        """DataFrame with rows factors, ``alpha``, ``residual``, ``total`` and columns beta, factor mean, contribution.

        Means and contributions annualised arithmetically; ``total`` contribution = annualised mean excess return.
        """
        ppy = self.periods_per_year
        residual_mean = float(self.by_period["residual"].mean()) * ppy
        table = pd.DataFrame(
            {
                "beta": self.betas,
                "factor mean (annual)": self.factor_means * ppy,
                "contribution (annual)": self.contributions,
            }
        )
        table.loc["alpha"] = [np.nan, np.nan, self.alpha * ppy]
        table.loc["residual"] = [np.nan, np.nan, residual_mean]
        table.loc["total"] = [np.nan, np.nan, float(self.excess_returns.mean()) * ppy]
        return table


def _attribute(excess: pd.Series, factors: pd.DataFrame, ppy: float, min_observations: int) -> FactorAttribution:
    needed = max(min_observations, factors.shape[1] + 2)
    y, x = align_factor_data(excess.to_frame("portfolio"), factors, min_observations=needed)
    model = LinearFactorModel(periods_per_year=round(ppy), min_observations=needed).fit(y, x)
    betas = pd.Series(model.loadings_.to_numpy()[0], index=model.loadings_.columns, name="beta")
    alpha = float(model.alpha_["portfolio"])
    pieces = x * betas.to_numpy()
    residual = y["portfolio"] - alpha - pieces.sum(axis=1)
    by_period = pieces.assign(alpha=alpha, residual=residual)
    means = x.mean().rename("factor_mean")
    return FactorAttribution(
        betas=betas,
        alpha=alpha,
        factor_means=means,
        contributions=(betas * means * ppy).rename("contribution"),
        by_period=by_period,
        excess_returns=y["portfolio"].rename("excess_return"),
        r_squared=float(model.r_squared_["portfolio"]),
        residual_volatility=float(residual.std(ddof=1) * math.sqrt(ppy)),
        periods_per_year=ppy,
    )


def factor_attribution(
    returns: pd.Series,
    factors: pd.DataFrame,
    *,
    risk_free: float | pd.Series | None = None,
    excess_factors: bool = True,
    periods_per_year: float = PERIODS_PER_YEAR,
    min_observations: int = 60,
) -> FactorAttribution:
    """Attribute returns to factor returns of the same frequency (e.g. daily factor-ETF returns).

    Parameters
    ----------
    returns : Series of shape (n_observations,)
        Portfolio simple returns.
    factors : DataFrame of shape (n_dates, n_factors)
        Factor returns (e.g. MTUM QUAL SIZE USMV VLUE daily returns); only dates both have, without gaps, are used.
    risk_free : float, Series or None
        Annual rate or annual yields by date (see ``metrics``), subtracted from the portfolio's returns.
    excess_factors : bool, default True
        Also subtract the risk-free rate from each factor (right for long-only ETFs, whose returns include it).
    periods_per_year : float, default 252
    min_observations : int, default 60

    Returns
    -------
    FactorAttribution

    Raises
    ------
    DataError
        Bad returns, fewer than ``min_observations`` common dates, a constant series, or collinear factors.
    SpecificationError
        Bad ``periods_per_year``, or ``factors`` not a DataFrame.
    """
    check_series(returns)
    ppy = check_periods_per_year(periods_per_year)
    rf = pd.Series(periodic_risk_free(risk_free, returns.index, periods_per_year=ppy), index=returns.index)
    excess = returns.astype("float64") - rf
    if excess_factors and risk_free is not None and isinstance(factors, pd.DataFrame):
        factors = factors.sub(rf.reindex(factors.index), axis=0)
    return _attribute(excess, factors, ppy, min_observations)


def fama_french_attribution(
    returns: pd.Series,
    ff_factors: pd.DataFrame,
    *,
    factors: Sequence[str] = ("Mkt-RF", "SMB", "HML"),
    rf_column: str = "RF",
    min_observations: int = 24,
) -> FactorAttribution:
    """Attribute daily (or monthly) returns to the monthly Fama-French factors.

    Daily returns are compounded to calendar months (``prod(1 + r) - 1``, by ``to_monthly_returns``; trim partial
    first and last months beforehand), the month's ``RF`` is subtracted, and the excess is regressed on ``factors``.
    Contributions are annualised with 12 months per year.

    Parameters
    ----------
    returns : Series of shape (n_observations,)
        Portfolio simple returns on a DatetimeIndex.
    ff_factors : DataFrame of shape (n_months, >= 2)
        Monthly factors in decimals on month-end dates, as ``load_ff3_monthly()`` returns them.
    factors : sequence of str, default ("Mkt-RF", "SMB", "HML")
    rf_column : str, default "RF"
    min_observations : int, default 24
        Months of overlap required.

    Returns
    -------
    FactorAttribution

    Raises
    ------
    SchemaError
        A factor or the risk-free column is missing.
    DataError
        Bad returns, fewer than ``min_observations`` months in common, constant or collinear series.
    SpecificationError
        ``returns`` not on a DatetimeIndex.

    References
    ----------
    Fama, E. F. and French, K. R. (1993), "Common risk factors in the returns on stocks and bonds", Journal of
    Financial Economics 33(1), 3-56.
    """
    check_series(returns)
    wanted = [*factors, rf_column]
    missing = [c for c in wanted if c not in getattr(ff_factors, "columns", [])]
    if missing:
        raise SchemaError(
            f"ff_factors lacks column(s) {missing}.",
            hint="Pass load_ff3_monthly() (columns Mkt-RF, SMB, HML, RF, in decimals) or name the columns.",
        )
    monthly = to_monthly_returns(returns.astype("float64").to_frame("portfolio"))["portfolio"]
    table = ff_factors[wanted].dropna()
    rf = table[rf_column].reindex(monthly.index)
    if rf.isna().all():
        raise DataError(
            f"No month of the returns ({monthly.index.min()} to {monthly.index.max()}) has a Fama-French row "
            f"({table.index.min()} to {table.index.max()}).",
            hint="Use returns within the factors' span, indexed by date.",
        )
    return _attribute((monthly - rf).dropna(), table[list(factors)], 12.0, min_observations)
