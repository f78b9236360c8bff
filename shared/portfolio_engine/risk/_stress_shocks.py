"""Hypothetical shocks: instantaneous asset-return shocks (equity, sector, factor, custom) and covariance stresses.

A return shock ``s`` (one return per asset) changes the portfolio's value by ``w' s``; ``ShockResult.loss`` is
``-w' s`` and ``contributions`` the terms ``w_i s_i``. A covariance stress recomputes the parametric Normal VaR/CVaR
(and the annualised volatility) with a stressed covariance: volatilities times ``factor`` (``Sigma`` times
``factor^2``; "volatility x2" is ``Sigma x 4``), or every correlation set to ``correlation`` (1.0 by default) with the
volatilities unchanged, ``Sigma' = D C D`` with ``C_ij = correlation`` off the diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk._contributions import check_cov, check_mean
from portfolio_engine.risk._inputs import PERIODS_PER_YEAR, check_horizon, check_level, check_weights
from portfolio_engine.risk._report import json_number
from portfolio_engine.risk._var import normal_var_cvar


@dataclass(frozen=True, eq=False)
class ShockResult:
    """The effect of an instantaneous return shock on the portfolio.

    Attributes
    ----------
    name : str
    asset_shocks : Series of shape (n_assets,)
        The return applied to each held asset (0 where the shock does not reach).
    portfolio_return : float
        ``w' asset_shocks``.
    contributions : Series of shape (n_assets,)
        ``w_i asset_shocks_i``; they sum to ``portfolio_return``.
    """

    name: str
    asset_shocks: pd.Series
    portfolio_return: float
    contributions: pd.Series

    @property
    def loss(self) -> float:
        """``-portfolio_return``: positive for a loss."""
        return -self.portfolio_return

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "name": self.name,
            "portfolio_return": json_number(self.portfolio_return),
            "loss": json_number(self.loss),
            "asset_shocks": {str(k): json_number(v) for k, v in self.asset_shocks.items()},
            "contributions": {str(k): json_number(v) for k, v in self.contributions.items()},
        }


def _result(name: str, w: pd.Series, shocks: np.ndarray) -> ShockResult:
    if not np.isfinite(shocks).all():
        raise RiskInputError(f"Shock {name!r} holds NaN or infinite returns.", hint="Pass finite shocks.")
    terms = w.to_numpy() * shocks
    return ShockResult(
        name=name,
        asset_shocks=pd.Series(shocks, index=w.index),
        portfolio_return=float(terms.sum()),
        contributions=pd.Series(terms, index=w.index),
    )


def _float_series(values: pd.Series | Mapping[Any, float], name: str) -> pd.Series:
    try:
        series = values.astype("float64") if isinstance(values, pd.Series) else pd.Series(dict(values), dtype="float64")
    except (TypeError, ValueError, AttributeError) as exc:
        raise RiskInputError(f"{name} must map names to numbers ({exc}).", hint=f"Pass {name} as a Series.") from exc
    return series


def _check_shock(shock: float, name: str = "shock") -> float:
    try:
        number = float(shock)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number):
        raise RiskInputError(f"{name} must be a finite return; got {shock!r}.", hint="Pass e.g. -0.20 for -20 %.")
    return number


def scenario_shock(
    weights: pd.Series,
    asset_returns: pd.Series | Mapping[Any, float],
    *,
    name: str = "custom",
    budget: float | None = 1.0,
) -> ShockResult:
    """Apply one return per asset; held assets absent from ``asset_returns`` get 0, other names are ignored.

    Raises
    ------
    RiskInputError
        Bad weights, or non-numeric or non-finite shocks.
    """
    w = check_weights(weights, budget=budget)
    series = _float_series(asset_returns, "asset_returns")
    return _result(name, w, series.reindex(w.index).fillna(0.0).to_numpy())


def equity_shock(
    weights: pd.Series,
    shock: float = -0.20,
    *,
    equities: Sequence[Any] | None = None,
    betas: pd.Series | Mapping[Any, float] | None = None,
    budget: float | None = 1.0,
) -> ShockResult:
    """An equity market move: ``shock`` on every equity (uniform), or ``beta_i * shock`` (beta-scaled).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    shock : float, default -0.20
        The market's (index's) return.
    equities : sequence, optional
        Which assets are equities (names not held are ignored); every held asset when omitted.
    betas : Series or mapping, optional
        Each equity's beta to the index; the shock is then ``beta_i * shock``.
    budget : float or None, default 1.0

    Returns
    -------
    ShockResult
        Named ``"equity_<shock>"`` (``"equity_-20%"``), with ``"_beta"`` appended when beta-scaled.

    Raises
    ------
    RiskInputError
        Bad weights or shock, or a held equity without a finite beta.
    """
    w = check_weights(weights, budget=budget)
    size = _check_shock(shock)
    is_equity = np.ones(len(w), dtype=bool) if equities is None else w.index.isin(list(equities))
    scale = np.ones(len(w))
    if betas is not None:
        beta_values = _float_series(betas, "betas").reindex(w.index).to_numpy()
        lacking = [str(a) for a, e, b in zip(w.index, is_equity, beta_values, strict=True) if e and not np.isfinite(b)]
        if lacking:
            raise RiskInputError(
                f"betas lack equities {lacking}.", hint="Give every held equity a beta (e.g. from measures.beta)."
            )
        scale = np.where(is_equity, beta_values, 1.0)
    shocks = np.where(is_equity, scale * size, 0.0)
    return _result(f"equity_{size:+.0%}" + ("_beta" if betas is not None else ""), w, shocks)


def sector_shock(
    weights: pd.Series,
    sectors: Mapping[Any, str],
    sector: str,
    shock: float,
    *,
    budget: float | None = 1.0,
) -> ShockResult:
    """``shock`` on every asset of one sector, nothing elsewhere.

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    sectors : mapping asset -> sector
        Must cover every held asset (e.g. ``load_sectors()`` of the bundled data).
    sector : str
    shock : float
    budget : float or None, default 1.0

    Raises
    ------
    RiskInputError
        Bad weights or shock, a held asset without a sector, or a sector no asset belongs to.
    """
    w = check_weights(weights, budget=budget)
    size = _check_shock(shock)
    lacking = [str(a) for a in w.index if a not in sectors]
    if lacking:
        raise RiskInputError(f"sectors lack held assets {lacking}.", hint="Map every held asset to its sector.")
    known = sorted({str(s) for s in sectors.values()})
    if sector not in known:
        raise RiskInputError(f"Unknown sector {sector!r}.", hint=f"Sectors in the map: {known}.")
    in_sector = np.array([sectors[a] == sector for a in w.index])
    return _result(f"sector_{sector}_{size:+.0%}", w, np.where(in_sector, size, 0.0))


def factor_shock(
    weights: pd.Series,
    loadings: pd.DataFrame,
    factor_shocks: pd.Series | Mapping[Any, float],
    *,
    name: str = "factor",
    budget: float | None = 1.0,
) -> ShockResult:
    """Factor shocks ``f`` through loadings ``B``: asset returns ``B f`` (factors not named are not shocked).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    loadings : DataFrame of shape (n_columns, n_factors)
        Asset (rows) exposures to factors (columns); must cover every held asset.
    factor_shocks : Series or mapping factor -> return
    name : str, default "factor"
    budget : float or None, default 1.0

    Raises
    ------
    RiskInputError
        Bad weights, loadings without a held asset or with NaN for one, or a shock to an unknown factor.
    """
    w = check_weights(weights, budget=budget)
    if not isinstance(loadings, pd.DataFrame):
        raise RiskInputError(
            f"loadings must be a DataFrame (assets x factors); got {type(loadings).__name__}.",
            hint="Pass e.g. LinearFactorModel.loadings.",
        )
    f = _float_series(factor_shocks, "factor_shocks")
    unknown = [str(k) for k in f.index if k not in loadings.columns]
    if unknown:
        raise RiskInputError(
            f"factor_shocks name factors {unknown} the loadings do not have.",
            hint=f"Loadings factors: {[str(c) for c in loadings.columns]}.",
        )
    lacking = [str(a) for a in w.index if a not in loadings.index]
    if lacking:
        raise RiskInputError(f"loadings lack held assets {lacking}.", hint="Give every held asset a row of loadings.")
    b = loadings.loc[w.index, :].to_numpy(dtype="float64")
    if not np.isfinite(b).all():
        raise RiskInputError("loadings hold NaN or infinite values for held assets.", hint="Fill or drop them.")
    return _result(name, w, b @ f.reindex(loadings.columns).fillna(0.0).to_numpy())


@dataclass(frozen=True, eq=False)
class CovarianceStress:
    """Parametric (Normal) risk before and after a covariance stress.

    Attributes
    ----------
    name : str
        ``"volatility_x2"``, ``"correlation_1"``...
    level : float
    horizon : int
    base_var, base_cvar, stressed_var, stressed_cvar : float
        Normal VaR/CVaR over ``horizon`` days (``-h mu' w + sqrt(h) sigma_p`` times ``z`` or ``phi(z)/(1-alpha)``).
    base_volatility, stressed_volatility : float
        Annualised.
    stressed_cov : DataFrame of shape (n_assets, n_assets)
        The stressed daily covariance of the held assets.
    """

    name: str
    level: float
    horizon: int
    base_var: float
    base_cvar: float
    stressed_var: float
    stressed_cvar: float
    base_volatility: float
    stressed_volatility: float
    stressed_cov: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the stressed covariance)."""
        keys = ("base_var", "base_cvar", "stressed_var", "stressed_cvar", "base_volatility", "stressed_volatility")
        return {
            "name": self.name,
            "level": self.level,
            "horizon": self.horizon,
            **{k: json_number(getattr(self, k)) for k in keys},
        }


def _covariance_stress(
    name: str,
    w: pd.Series,
    base: np.ndarray,
    stressed: np.ndarray,
    mean: pd.Series | Mapping[Any, float] | None,
    level: float,
    horizon: int,
    periods_per_year: int,
) -> CovarianceStress:
    level, horizon = check_level(level), check_horizon(horizon)
    values = w.to_numpy()
    drift = horizon * float(check_mean(w, mean) @ values)
    sigma = math.sqrt(max(float(values @ base @ values), 0.0))
    sigma_s = math.sqrt(max(float(values @ stressed @ values), 0.0))
    base_var, base_cvar = normal_var_cvar(drift, math.sqrt(horizon) * sigma, level)
    var, cvar = normal_var_cvar(drift, math.sqrt(horizon) * sigma_s, level)
    root = math.sqrt(periods_per_year)
    return CovarianceStress(
        name, level, horizon, base_var, base_cvar, var, cvar, sigma * root, sigma_s * root,
        pd.DataFrame(stressed, index=w.index, columns=w.index),
    )  # fmt: skip


def volatility_shock(
    weights: pd.Series,
    cov: pd.DataFrame,
    *,
    factor: float = 2.0,
    mean: pd.Series | Mapping[Any, float] | None = None,
    level: float = 0.95,
    horizon: int = 1,
    budget: float | None = 1.0,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> CovarianceStress:
    """Every volatility times ``factor`` (the covariance times ``factor^2``), correlations unchanged.

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    cov : DataFrame of shape (n_columns, n_columns)
        Daily covariance.
    factor : float, default 2.0
    mean : Series, optional
        Daily mean returns (zero when omitted).
    level : float, default 0.95
    horizon : int, default 1
    budget : float or None, default 1.0
    periods_per_year : int, default 252

    Raises
    ------
    RiskInputError
        Bad weights, covariance, mean, level, horizon, or a factor that is not a finite number > 0.
    """
    w = check_weights(weights, budget=budget)
    size = _check_shock(factor, "factor")
    if not size > 0:
        raise RiskInputError(f"factor must be > 0; got {factor!r}.", hint="Pass e.g. factor=2.0 (volatility x2).")
    base = check_cov(w, cov)
    name = f"volatility_x{size:g}"
    return _covariance_stress(name, w, base, base * size * size, mean, level, horizon, periods_per_year)


def correlation_shock(
    weights: pd.Series,
    cov: pd.DataFrame,
    *,
    correlation: float = 1.0,
    mean: pd.Series | Mapping[Any, float] | None = None,
    level: float = 0.95,
    horizon: int = 1,
    budget: float | None = 1.0,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> CovarianceStress:
    """Every pairwise correlation set to ``correlation`` (default 1: diversification gone), volatilities unchanged.

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    cov : DataFrame of shape (n_columns, n_columns)
        Daily covariance.
    correlation : float, default 1.0
        In ``[-1 / (n - 1), 1]`` so the stressed matrix stays positive semi-definite.
    mean, level, horizon, budget, periods_per_year
        As in :func:`volatility_shock`.

    Raises
    ------
    RiskInputError
        Bad inputs, a negative variance, or a correlation outside ``[-1 / (n - 1), 1]``.
    """
    w = check_weights(weights, budget=budget)
    base = check_cov(w, cov)
    n = len(w)
    rho = _check_shock(correlation, "correlation")
    lowest = -1.0 / (n - 1) if n > 1 else -1.0
    if not lowest <= rho <= 1.0:
        raise RiskInputError(
            f"correlation must lie in [{lowest:.4g}, 1] for {n} assets; got {correlation!r}.",
            hint="A common correlation below -1/(n-1) is not a valid correlation matrix.",
        )
    variances = np.diag(base)
    if (variances < 0).any():
        raise RiskInputError("cov has negative variances.", hint="Repair the covariance (it must be PSD).")
    vols = np.sqrt(variances)
    target = np.full((n, n), rho)
    np.fill_diagonal(target, 1.0)
    stressed = target * np.outer(vols, vols)
    return _covariance_stress(f"correlation_{rho:g}", w, base, stressed, mean, level, horizon, periods_per_year)
