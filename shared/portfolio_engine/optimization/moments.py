"""Moments of asset returns for the optimizers: the ``Moments`` pair, ``estimate_moments`` and ``repair_psd``.

Units: ``returns`` are simple per-period returns (daily by default); every estimate is ANNUAL
(``periods_per_year`` = 252 by default). The estimators themselves live in ``_mean_estimators`` and
``_covariance_estimators`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, SpecificationError
from portfolio_engine.optimization._checks import check_returns, check_series, check_symmetric
from portfolio_engine.optimization._covariance_estimators import (
    ewma_covariance,
    ledoit_wolf_covariance,
    oas_covariance,
    sample_covariance,
)
from portfolio_engine.optimization._linalg import NonPSDCovarianceWarning, repair_psd
from portfolio_engine.optimization._mean_estimators import (
    ShrinkageMethod,
    capm_mean,
    equilibrium_mean,
    ewma_mean,
    historical_mean,
    market_implied_risk_aversion,
    shrunk_mean,
)
from portfolio_engine.optimization.factors import LinearFactorModel, PCAFactorModel

__all__ = [
    "COVARIANCE_ESTIMATORS",
    "MEAN_ESTIMATORS",
    "Moments",
    "NonPSDCovarianceWarning",
    "capm_mean",
    "equilibrium_mean",
    "estimate_moments",
    "ewma_covariance",
    "ewma_mean",
    "historical_mean",
    "ledoit_wolf_covariance",
    "market_implied_risk_aversion",
    "oas_covariance",
    "repair_psd",
    "sample_covariance",
    "shrunk_mean",
]

#: Option names that each estimator accepts through ``estimate_moments(**options)``.
MEAN_ESTIMATORS: dict[str, frozenset[str]] = {
    "historical": frozenset({"geometric"}),
    "ewma": frozenset({"span", "halflife"}),
    "capm": frozenset({"market_returns", "risk_free_rate", "geometric"}),
    "equilibrium": frozenset({"market_weights", "risk_aversion", "market_returns", "risk_free_rate"}),
    "james_stein": frozenset({"shrinkage_target"}),
    "bayes_stein": frozenset({"shrinkage_target"}),
}
COVARIANCE_ESTIMATORS: dict[str, frozenset[str]] = {
    "sample": frozenset(),
    "ledoit_wolf": frozenset(),
    "oas": frozenset(),
    "ewma": frozenset({"span", "halflife", "center"}),
    "factor": frozenset({"factor_returns"}),
    "pca": frozenset({"n_factors"}),
}


@dataclass(frozen=True, eq=False)
class Moments:
    """Annual expected returns and covariance of one universe, validated and aligned.

    Parameters
    ----------
    mu : Series of shape (n_assets,)
        Annual expected (simple) returns, indexed by asset.
    cov : DataFrame of shape (n_assets, n_assets)
        Annual covariance, rows and columns indexed by the same assets (any order: it is reordered
        to ``mu``'s). Stored exactly symmetric, ``(cov + cov') / 2``.

    Raises
    ------
    SpecificationError
        Not a Series/DataFrame, duplicate assets, different assets in ``mu`` and ``cov``, a
        non-finite value, or an asymmetric ``cov`` (beyond round-off).
    """

    mu: pd.Series
    cov: pd.DataFrame

    def __post_init__(self) -> None:
        mu, cov = self.mu, self.cov
        if not isinstance(mu, pd.Series) or not isinstance(cov, pd.DataFrame):
            raise SpecificationError(
                f"Moments needs mu as a Series and cov as a DataFrame; got {type(mu).__name__} and "
                f"{type(cov).__name__}.",
                hint="Index both by asset: Moments(pd.Series(mu, index=assets), pd.DataFrame(cov, assets, assets)).",
            )
        assets = mu.index
        for label, axis in (("mu", assets), ("cov's rows", cov.index), ("cov's columns", cov.columns)):
            if axis.has_duplicates:
                repeated = sorted({str(a) for a in axis[axis.duplicated()]})
                raise SpecificationError(
                    f"Moments: {label} repeat the assets {repeated}.", hint="Give each asset one entry."
                )
        aligned = cov.index.equals(assets) and cov.columns.equals(assets)  # the usual case, and a fast one
        for label, axis in () if aligned else (("rows", cov.index), ("columns", cov.columns)):
            if len(axis) != len(assets) or not axis.isin(assets).all():
                missing = [str(a) for a in assets if a not in axis]
                extra = [str(a) for a in axis if a not in assets]
                raise SpecificationError(
                    f"cov {label} do not match mu's assets: missing {missing}, extra {extra}.",
                    hint="Estimate mu and cov on the same universe (estimate_moments does).",
                )
        try:
            mu_values = mu.to_numpy(dtype="float64")
        except (TypeError, ValueError) as exc:
            raise SpecificationError(f"Moments: mu holds non-numeric values ({exc}).", hint="Use floats.") from exc
        if not np.isfinite(mu_values).all():
            bad = [str(a) for a, v in zip(assets, mu_values, strict=True) if not np.isfinite(v)]
            raise SpecificationError(
                f"Moments: mu holds NaN or infinite values for {bad}.",
                hint="Estimate on returns without gaps (returns.dropna()).",
            )
        symmetric = check_symmetric(cov if aligned else cov.loc[assets, assets], name="Moments.cov", labels=assets)
        object.__setattr__(self, "mu", pd.Series(mu_values, index=assets.copy(), name="mu"))
        object.__setattr__(self, "cov", pd.DataFrame(symmetric, index=assets.copy(), columns=assets.copy()))

    @property
    def assets(self) -> pd.Index:
        """Asset names, in order."""
        return self.mu.index

    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return len(self.mu)

    @property
    def volatility(self) -> pd.Series:
        """Annual volatility of each asset, ``sqrt(diag(cov))``."""
        return pd.Series(np.sqrt(np.diag(self.cov.to_numpy())), index=self.assets, name="volatility")


def estimate_moments(
    returns: pd.DataFrame,
    *,
    mean: str = "historical",
    covariance: str = "ledoit_wolf",
    periods_per_year: int = 252,
    **options: Any,
) -> Moments:
    """Estimate annual expected returns and covariance from per-period returns.

    Parameters
    ----------
    returns : DataFrame of shape (n_observations, n_assets)
        Simple returns, one row per period (no NaN), one column per asset.
    mean : str, default "historical"
        ``historical`` (arithmetic; option ``geometric``), ``ewma`` (``span`` or ``halflife``), ``capm``
        (``market_returns``, ``risk_free_rate``, ``geometric``), ``equilibrium`` (``market_weights``
        and either ``risk_aversion`` or ``market_returns`` to imply it; ``risk_free_rate``; uses the
        covariance chosen below), ``james_stein`` or ``bayes_stein`` (``shrinkage_target``:
        ``grand_mean`` or ``min_variance``).
    covariance : str, default "ledoit_wolf"
        ``sample``, ``ledoit_wolf``, ``oas``, ``ewma`` (``span`` or ``halflife``, ``center``), ``factor``
        (``factor_returns``: a DataFrame of factor returns on every date of ``returns``; OLS factor
        model ``B F B' + D``) or ``pca`` (``n_factors`` statistical factors).
    periods_per_year : int, default 252
    **options
        Only the options of the chosen estimators (listed above); ``span``/``halflife`` serve both
        EWMA estimators. ``risk_free_rate`` is annual.

    Returns
    -------
    Moments

    Raises
    ------
    SpecificationError
        Unknown estimator name or option (the message lists the valid ones), or a bad option value.
    DataError
        NaN or infinite returns, too few observations, a constant asset, misaligned series.
    """
    if mean not in MEAN_ESTIMATORS:
        raise SpecificationError(f"Unknown mean estimator {mean!r}.", hint=f"Choose one of {sorted(MEAN_ESTIMATORS)}.")
    if covariance not in COVARIANCE_ESTIMATORS:
        raise SpecificationError(
            f"Unknown covariance estimator {covariance!r}.", hint=f"Choose one of {sorted(COVARIANCE_ESTIMATORS)}."
        )
    allowed = MEAN_ESTIMATORS[mean] | COVARIANCE_ESTIMATORS[covariance]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise SpecificationError(
            f"Option(s) {unknown} do not apply to mean={mean!r}, covariance={covariance!r}.",
            hint=f"Valid options for these estimators: {sorted(allowed) or 'none'}.",
        )
    if not isinstance(periods_per_year, int | float) or periods_per_year <= 0:
        raise SpecificationError(
            f"periods_per_year must be positive; got {periods_per_year!r}.", hint="Use 252 for daily, 12 for monthly."
        )
    check_returns(returns)
    cov = _COVARIANCE[covariance](returns, periods_per_year, options)
    mu = _mean(mean, returns, cov, periods_per_year, options)
    return Moments(mu=mu, cov=cov)


def _mean(name: str, returns: pd.DataFrame, cov: pd.DataFrame, ppy: int, options: dict[str, Any]) -> pd.Series:
    rf = float(options.get("risk_free_rate", 0.0))
    geometric = bool(options.get("geometric", False))
    if name == "historical":
        return historical_mean(returns, geometric=geometric, periods_per_year=ppy)
    if name == "ewma":
        return ewma_mean(returns, span=options.get("span"), halflife=options.get("halflife"), periods_per_year=ppy)
    if name == "capm":
        market = _required(options, "market_returns", name)
        return capm_mean(returns, market, risk_free_rate=rf, geometric=geometric, periods_per_year=ppy)
    if name == "equilibrium":
        weights = _required(options, "market_weights", name)
        delta = options.get("risk_aversion")
        if delta is None:
            market = _required(options, "market_returns", name, alternative="risk_aversion")
            # The same dates as the returns, as for CAPM: the market's premium is measured over the sample.
            market = pd.Series(check_series(market, returns.index, name="market_returns"), index=returns.index)
            delta = market_implied_risk_aversion(market, risk_free_rate=rf, periods_per_year=ppy)
            if delta <= 0:
                raise DataError(
                    f"The market's excess return over the sample is not positive (implied risk aversion {delta:.4g}).",
                    hint="Pass risk_aversion explicitly (about 2-4 for equities) or use a longer market history.",
                )
        return equilibrium_mean(cov, weights, risk_aversion=float(delta), risk_free_rate=rf)
    method: ShrinkageMethod = "james_stein" if name == "james_stein" else "bayes_stein"
    return shrunk_mean(returns, method=method, target=options.get("shrinkage_target"), periods_per_year=ppy)


def _required(options: dict[str, Any], key: str, estimator: str, *, alternative: str | None = None) -> Any:
    if options.get(key) is None:
        either = f"{key} or {alternative}" if alternative else key
        raise SpecificationError(
            f"mean={estimator!r} needs the option {either}.", hint=f"Pass {either}=... to estimate_moments."
        )
    return options[key]


def _factor_cov(returns: pd.DataFrame, ppy: int, options: dict[str, Any]) -> pd.DataFrame:
    factors = options.get("factor_returns")
    if not isinstance(factors, pd.DataFrame):
        raise SpecificationError(
            f"covariance='factor' needs factor_returns as a DataFrame; got {type(factors).__name__}.",
            hint="Pass factor_returns=DataFrame of factor returns indexed by the returns' dates.",
        )
    model = LinearFactorModel(periods_per_year=ppy).fit(returns, factors.reindex(returns.index))
    return model.covariance()


def _pca_cov(returns: pd.DataFrame, ppy: int, options: dict[str, Any]) -> pd.DataFrame:
    if options.get("n_factors") is None:
        raise SpecificationError("covariance='pca' needs the option n_factors.", hint="Pass e.g. n_factors=3.")
    return PCAFactorModel(n_factors=options["n_factors"], periods_per_year=ppy).fit(returns).covariance()


_COVARIANCE: dict[str, Callable[[pd.DataFrame, int, dict[str, Any]], pd.DataFrame]] = {
    "sample": lambda r, ppy, _: sample_covariance(r, periods_per_year=ppy),
    "ledoit_wolf": lambda r, ppy, _: ledoit_wolf_covariance(r, periods_per_year=ppy),
    "oas": lambda r, ppy, _: oas_covariance(r, periods_per_year=ppy),
    "ewma": lambda r, ppy, o: ewma_covariance(
        r, span=o.get("span"), halflife=o.get("halflife"), center=o.get("center", "weighted"), periods_per_year=ppy
    ),
    "factor": _factor_cov,
    "pca": _pca_cov,
}
