"""Factor models: OLS on given factors and principal components, with the data alignment they need."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from portfolio_engine.exceptions import DataError, SpecificationError
from portfolio_engine.optimization._checks import check_returns


class _FactorModel(BaseEstimator):
    """Shared read-out of a fitted factor model (``alpha_``, ``loadings_``, ``factor_cov_``, ``residual_var_``)."""

    periods_per_year: int
    alpha_: pd.Series
    loadings_: pd.DataFrame
    factor_mean_: pd.Series
    factor_cov_: pd.DataFrame
    residual_var_: pd.Series

    def _check_fitted(self) -> None:
        if not hasattr(self, "loadings_"):
            raise SpecificationError(
                f"This {type(self).__name__} is not fitted yet.", hint="Call fit(...) before reading the model."
            )

    def covariance(self) -> pd.DataFrame:
        """Annual asset covariance implied by the model, ``periods_per_year * (B F B' + diag(D))``.

        Returns
        -------
        DataFrame of shape (n_assets, n_assets)

        Raises
        ------
        SpecificationError
            The model is not fitted.
        """
        self._check_fitted()
        loadings = self.loadings_.to_numpy()
        implied = loadings @ self.factor_cov_.to_numpy() @ loadings.T + np.diag(self.residual_var_.to_numpy())
        implied = (implied + implied.T) / 2.0 * self.periods_per_year
        assets = self.loadings_.index
        return pd.DataFrame(implied, index=assets.copy(), columns=assets.copy())

    def expected_returns(self, factor_premia: pd.Series | None = None, *, include_alpha: bool = False) -> pd.Series:
        """Annual expected returns ``B @ premia`` (plus the annualised intercept if ``include_alpha``).

        Parameters
        ----------
        factor_premia : Series of shape (n_factors,), optional
            Annual premium of each factor, indexed by factor name. Default: the factors' sample mean, annualised.
        include_alpha : bool, default False
            Add the regression intercept (with the sample premia this gives back the assets' sample means).

        Returns
        -------
        Series of shape (n_assets,)
            In the units of the returns the model was fitted on (excess returns for Fama-French).

        Raises
        ------
        SpecificationError
            The model is not fitted, or ``factor_premia`` lacks a factor or is not finite.
        """
        self._check_fitted()
        factors = self.loadings_.columns
        if factor_premia is None:
            premia = self.factor_mean_.to_numpy() * self.periods_per_year
        else:
            premia = pd.Series(factor_premia).reindex(factors).to_numpy(dtype="float64")
            if not np.isfinite(premia).all():
                raise SpecificationError(
                    f"factor_premia must give a finite premium for every factor {list(map(str, factors))}; "
                    f"got {dict(pd.Series(factor_premia))}.",
                    hint="Index the premia by the model's factor names (loadings_.columns).",
                )
        mu = self.loadings_.to_numpy() @ premia
        if include_alpha:
            mu = mu + self.alpha_.to_numpy() * self.periods_per_year
        return pd.Series(mu, index=self.loadings_.index.copy(), name="mu")

    def _store(
        self,
        returns: np.ndarray,
        factors: np.ndarray,
        alpha: np.ndarray,
        loadings: np.ndarray,
        assets: pd.Index,
        names: pd.Index,
    ) -> None:
        residuals = returns - alpha - factors @ loadings.T
        total_var = returns.var(axis=0, ddof=1)
        self.alpha_ = pd.Series(alpha, index=assets, name="alpha")
        self.loadings_ = pd.DataFrame(loadings, index=assets, columns=names)
        self.factor_mean_ = pd.Series(factors.mean(axis=0), index=names, name="factor_mean")
        k = factors.shape[1]
        self.factor_cov_ = pd.DataFrame(np.cov(factors, rowvar=False, ddof=1).reshape(k, k), index=names, columns=names)
        # ddof=1 like the factor covariance: with an intercept, b'Fb + D then equals each asset's sample variance.
        self.residual_var_ = pd.Series(residuals.var(axis=0, ddof=1), index=assets, name="residual_var")
        self.r_squared_ = pd.Series(1.0 - self.residual_var_.to_numpy() / total_var, index=assets, name="r_squared")
        self.n_observations_ = returns.shape[0]
        self.n_features_in_ = returns.shape[1]
        self.feature_names_in_ = np.asarray(assets, dtype=object)


class LinearFactorModel(_FactorModel):
    """Time-series factor model: each asset regressed on the factors by OLS with an intercept.

    ``r_it = alpha_i + b_i' f_t + e_it``; the implied covariance is ``B F B' + D`` with ``F`` the
    sample covariance of the factors and ``D`` the residual variances (uncorrelated residuals assumed).

    Parameters
    ----------
    periods_per_year : int, default 252
        Periods per year of the data (12 for monthly); used to annualise.
    min_observations : int, optional
        Fewest observations accepted; never fewer than n_factors + 2 (one residual degree of freedom).

    Attributes
    ----------
    alpha_ : Series of shape (n_assets,)
        Intercepts, per period.
    loadings_ : DataFrame of shape (n_assets, n_factors)
        Factor exposures ``B``.
    factor_mean_ : Series of shape (n_factors,)
        Factors' sample means, per period.
    factor_cov_ : DataFrame of shape (n_factors, n_factors)
        Factors' sample covariance (ddof=1), per period.
    residual_var_ : Series of shape (n_assets,)
        Residual variances (ddof=1), per period.
    r_squared_ : Series of shape (n_assets,)
    n_observations_ : int

    References
    ----------
    Sharpe, W. F. (1963), "A simplified model for portfolio analysis", Management Science 9(2), 277-293.
    """

    def __init__(self, periods_per_year: int = 252, min_observations: int | None = None) -> None:
        self.periods_per_year = periods_per_year
        self.min_observations = min_observations

    def fit(self, asset_returns: pd.DataFrame, factor_returns: pd.DataFrame) -> LinearFactorModel:
        """Regress every asset on the factors.

        Parameters
        ----------
        asset_returns : DataFrame of shape (n_observations, n_assets)
        factor_returns : DataFrame of shape (n_observations, n_factors)
            Same index as ``asset_returns`` (align first with :func:`align_factor_data`).

        Returns
        -------
        self

        Raises
        ------
        DataError
            NaN, a constant series, indexes that differ, too few observations, or collinear factors.
        """
        n_factors = factor_returns.shape[1] if isinstance(factor_returns, pd.DataFrame) else 0
        needed = max(n_factors + 2, self.min_observations or 0)
        factors = check_returns(factor_returns, min_observations=needed, name="factor_returns")
        returns = check_returns(asset_returns, min_observations=needed, name="asset_returns")
        if not asset_returns.index.equals(factor_returns.index):
            raise DataError(
                f"asset_returns ({len(asset_returns)} rows) and factor_returns ({len(factor_returns)} rows) "
                "have different dates.",
                hint="Align them first: align_factor_data(asset_returns, factor_returns).",
            )
        design = np.column_stack([np.ones(len(factors)), factors])
        coef, _, rank, _ = np.linalg.lstsq(design, returns, rcond=None)
        if rank < design.shape[1]:
            raise DataError(
                f"The factors are collinear (rank {rank - 1} of {n_factors}).",
                hint="Drop factors that are combinations of others (e.g. a market ETF and its long-short spreads).",
            )
        self._store(returns, factors, coef[0], coef[1:].T, asset_returns.columns.copy(), factor_returns.columns.copy())
        return self


class PCAFactorModel(_FactorModel):
    """Statistical factor model: the first ``n_factors`` principal components of the sample covariance.

    Loadings are the leading eigenvectors ``V_k`` of the sample covariance ``S`` (ddof=1), each signed
    so that its loadings sum to a non-negative number; factor returns are ``f_t = V_k' r_t``, so
    ``F = diag(eigenvalues)``. With ``n_factors = n_assets`` the implied covariance equals ``S``.

    Parameters
    ----------
    n_factors : int, default 3
    periods_per_year : int, default 252

    Attributes
    ----------
    alpha_, loadings_, factor_mean_, factor_cov_, residual_var_, r_squared_, n_observations_
        As in :class:`LinearFactorModel`; factors are named ``PC1``, ``PC2``, ...
    explained_variance_ratio_ : Series of shape (n_factors,)
        Each component's share of the total variance ``trace(S)``.

    References
    ----------
    Connor, G. and Korajczyk, R. A. (1986), "Performance measurement with the arbitrage pricing theory",
    Journal of Financial Economics 15(3), 373-394.
    """

    def __init__(self, n_factors: int = 3, periods_per_year: int = 252) -> None:
        self.n_factors = n_factors
        self.periods_per_year = periods_per_year

    def fit(self, asset_returns: pd.DataFrame, y: None = None) -> PCAFactorModel:
        """Extract the principal components of ``asset_returns``.

        Parameters
        ----------
        asset_returns : DataFrame of shape (n_observations, n_assets)
        y : None
            Ignored (scikit-learn convention).

        Returns
        -------
        self

        Raises
        ------
        SpecificationError
            ``n_factors`` is not between 1 and n_assets.
        DataError
            NaN, a constant asset, or fewer than 2 observations.
        """
        returns = check_returns(asset_returns, name="asset_returns")
        n_assets = returns.shape[1]
        if not (isinstance(self.n_factors, int | np.integer) and 1 <= self.n_factors <= n_assets):
            raise SpecificationError(
                f"n_factors must be an integer between 1 and {n_assets} (the number of assets); "
                f"got {self.n_factors!r}.",
                hint="Pick a few components (3-5 explain most of the co-movement of stocks).",
            )
        mean = returns.mean(axis=0)
        cov = np.cov(returns, rowvar=False, ddof=1).reshape(n_assets, n_assets)
        eigenvalues, vectors = np.linalg.eigh(cov)
        order = np.argsort(eigenvalues)[::-1][: self.n_factors]
        loadings = vectors[:, order]
        loadings = loadings * np.where(loadings.sum(axis=0) < 0, -1.0, 1.0)  # a deterministic sign per component
        factors = returns @ loadings
        names = pd.Index([f"PC{i + 1}" for i in range(self.n_factors)])
        alpha = mean - loadings @ (loadings.T @ mean)
        self._store(returns, factors, alpha, loadings, asset_returns.columns.copy(), names)
        self.explained_variance_ratio_ = pd.Series(
            eigenvalues[order] / np.trace(cov), index=names, name="explained_variance_ratio"
        )
        return self


def align_factor_data(
    asset_returns: pd.DataFrame, factor_returns: pd.DataFrame, *, min_observations: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the dates both tables have, minus any date where either has a NaN.

    Parameters
    ----------
    asset_returns : DataFrame of shape (n_asset_dates, n_assets)
    factor_returns : DataFrame of shape (n_factor_dates, n_factors)
    min_observations : int, default 2

    Returns
    -------
    (DataFrame, DataFrame)
        Both with the same, sorted index.

    Raises
    ------
    DataError
        Fewer than ``min_observations`` dates left (the message gives each table's span).
    """
    for name, table in (("asset_returns", asset_returns), ("factor_returns", factor_returns)):
        if not isinstance(table, pd.DataFrame):
            raise SpecificationError(
                f"{name} must be a DataFrame; got {type(table).__name__}.", hint="Index it by date."
            )
    common = asset_returns.index.intersection(factor_returns.index).sort_values()
    assets, factors = asset_returns.loc[common], factor_returns.loc[common]
    complete = assets.notna().all(axis=1) & factors.notna().all(axis=1)
    assets, factors = assets[complete], factors[complete]
    if len(assets) < min_observations:

        def span(frame: pd.DataFrame) -> str:
            return f"{frame.index.min()} to {frame.index.max()}" if len(frame) else "empty"

        raise DataError(
            f"Only {len(assets)} date(s) have both asset and factor data without gaps; {min_observations} needed "
            f"(assets {span(asset_returns)}, factors {span(factor_returns)}, {len(common)} common dates).",
            hint="Use overlapping periods, drop series with long gaps, or lower min_observations.",
        )
    return assets, factors


def to_monthly_returns(returns: pd.DataFrame) -> pd.DataFrame:
    """Compound per-period simple returns to calendar months: ``prod(1 + r) - 1`` within each month.

    A month counts whatever days the table has in it (edge months may be partial); monthly input
    comes back unchanged.

    Parameters
    ----------
    returns : DataFrame of shape (n_observations, n_assets)
        Indexed by a DatetimeIndex.

    Returns
    -------
    DataFrame of shape (n_months, n_assets)
        Indexed by month-end dates (midnight), like ``load_ff3_monthly()``.

    Raises
    ------
    SpecificationError
        The index is not a DatetimeIndex.
    DataError
        NaN or infinite returns.
    """
    if not isinstance(returns.index, pd.DatetimeIndex):
        raise SpecificationError(
            f"Compounding to months needs a DatetimeIndex; got {type(returns.index).__name__}.",
            hint="Index the returns by date: returns.index = pd.to_datetime(returns.index).",
        )
    check_returns(returns, min_observations=1, reject_constant=False)
    months = returns.index.to_period("M")
    growth = (1.0 + returns).groupby(months).prod() - 1.0
    growth.index = pd.PeriodIndex(growth.index).to_timestamp() + pd.offsets.MonthEnd(0)
    growth.index.name = "date"
    return growth
