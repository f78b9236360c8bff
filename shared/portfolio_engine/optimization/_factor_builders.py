"""Builders that prepare the data of each factor family (Fama-French, factor ETFs, macro) and fit the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd

from portfolio_engine.exceptions import SchemaError, SpecificationError
from portfolio_engine.optimization._factor_models import LinearFactorModel, align_factor_data, to_monthly_returns


def fama_french_model(
    asset_returns: pd.DataFrame,
    ff_factors: pd.DataFrame,
    *,
    factors: Sequence[str] = ("Mkt-RF", "SMB", "HML"),
    rf_column: str = "RF",
    min_observations: int = 36,
) -> LinearFactorModel:
    """Fit a Fama-French model: monthly excess asset returns on the monthly factors.

    Parameters
    ----------
    asset_returns : DataFrame of shape (n_observations, n_assets)
        Simple returns on a DatetimeIndex, daily or monthly; compounded to calendar months.
    ff_factors : DataFrame of shape (n_months, >= 2)
        Monthly factors in decimals on month-end dates, with ``factors`` and ``rf_column`` among its columns.
    factors : sequence of str, default ("Mkt-RF", "SMB", "HML")
    rf_column : str, default "RF"
        The monthly risk-free return subtracted from each asset's monthly return.
    min_observations : int, default 36
        Months of overlap required.

    Returns
    -------
    LinearFactorModel
        Fitted with ``periods_per_year=12``; its ``covariance()`` is annual, ``expected_returns()`` excess.

    Raises
    ------
    SchemaError
        A factor or the risk-free column is missing.
    DataError
        Fewer than ``min_observations`` overlapping months, NaN or constant series.

    References
    ----------
    Fama, E. F. and French, K. R. (1993), "Common risk factors in the returns on stocks and bonds",
    Journal of Financial Economics 33(1), 3-56.
    """
    wanted = [*factors, rf_column]
    missing = [c for c in wanted if c not in ff_factors.columns]
    if missing:
        raise SchemaError(
            f"ff_factors lacks column(s) {missing}; it has {list(map(str, ff_factors.columns))}.",
            hint="Pass load_ff3_monthly() (columns Mkt-RF, SMB, HML, RF, in decimals) or name the columns.",
        )
    monthly = to_monthly_returns(asset_returns)
    assets, table = align_factor_data(monthly, ff_factors[wanted], min_observations=min_observations)
    excess = assets.sub(table[rf_column], axis=0)
    model = LinearFactorModel(periods_per_year=12, min_observations=min_observations)
    return model.fit(excess, table[list(factors)])


def etf_factor_model(
    asset_returns: pd.DataFrame,
    etf_prices: pd.DataFrame,
    *,
    long_short_against: str | None = None,
    periods_per_year: int = 252,
    min_observations: int = 60,
) -> LinearFactorModel:
    """Fit a model on factor ETFs: their simple returns (each on its own price history) are the factors.

    Parameters
    ----------
    asset_returns : DataFrame of shape (n_observations, n_assets)
    etf_prices : DataFrame of shape (n_dates, n_etfs)
        Adjusted closes, e.g. MTUM QUAL SIZE USMV VLUE.
    long_short_against : str, optional
        An ETF column subtracted from the other ETFs' returns (and kept as a factor itself): long-only
        factor ETFs move mostly with the market, and spreads against it are far less collinear.
    periods_per_year : int, default 252
    min_observations : int, default 60

    Returns
    -------
    LinearFactorModel

    Raises
    ------
    SchemaError
        ``long_short_against`` is not a column of ``etf_prices``.
    DataError
        Fewer than ``min_observations`` common dates, or collinear factors.
    """
    factors = etf_prices.pct_change(fill_method=None).iloc[1:]
    if long_short_against is not None:
        if long_short_against not in factors.columns:
            raise SchemaError(
                f"long_short_against={long_short_against!r} is not an ETF column {list(map(str, factors.columns))}.",
                hint="Name one of the ETF columns, e.g. 'USMV', or pass None.",
            )
        base = factors[long_short_against]
        factors = factors.sub(base, axis=0).assign(**{long_short_against: base})
    assets, aligned = align_factor_data(asset_returns, factors, min_observations=min_observations)
    return LinearFactorModel(periods_per_year, min_observations).fit(assets, aligned)


def macro_factor_model(
    asset_returns: pd.DataFrame,
    macro_levels: pd.DataFrame,
    *,
    change: Literal["diff", "pct"] = "diff",
    periods_per_year: int = 252,
    min_observations: int = 60,
) -> LinearFactorModel:
    """Fit a macroeconomic model: changes of user-supplied level series (e.g. Treasury yields) are the factors.

    Each series is differenced on its own dates (after dropping its gaps), then aligned to the asset
    returns, so a change always spans consecutive observations of the series.

    Parameters
    ----------
    asset_returns : DataFrame of shape (n_observations, n_assets)
    macro_levels : DataFrame of shape (n_dates, n_series)
        Levels, e.g. ``load_treasury_curve()[["3month", "10year"]]``.
    change : {"diff", "pct"}, default "diff"
        First difference (yields, spreads) or relative change (index levels, prices).
    periods_per_year : int, default 252
    min_observations : int, default 60

    Returns
    -------
    LinearFactorModel

    Raises
    ------
    SpecificationError
        Unknown ``change``.
    DataError
        Fewer than ``min_observations`` common dates, a constant or collinear series.
    """
    if change not in ("diff", "pct"):
        raise SpecificationError(f"Unknown change {change!r}.", hint="Choose 'diff' (yields) or 'pct' (levels).")
    columns = {}
    for name in macro_levels.columns:
        levels = macro_levels[name].dropna()
        columns[name] = (levels.diff() if change == "diff" else levels.pct_change()).iloc[1:]
    factors = pd.DataFrame(columns)
    assets, aligned = align_factor_data(asset_returns, factors, min_observations=min_observations)
    return LinearFactorModel(periods_per_year, min_observations).fit(assets, aligned)
