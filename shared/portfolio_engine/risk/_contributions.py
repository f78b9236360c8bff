"""Marginal and component risk contributions (Euler allocation) of volatility, Normal VaR/CVaR and scenario CVaR.

A risk measure ``rho(w)`` that is homogeneous of degree one in the weights splits exactly into components
``w_i d rho / d w_i`` that sum to ``rho(w)`` (Euler's theorem). The marginal contribution is the gradient:

* volatility ``sigma(w) = sqrt(w' Sigma w)``: marginal ``Sigma w / sigma``;
* Normal VaR over ``h`` days, ``-h mu' w + z sqrt(h) sigma(w)``: marginal ``-h mu + z sqrt(h) Sigma w / sigma``, and
  CVaR the same with ``phi(z) / (1 - alpha)`` in place of ``z``;
* scenario (historical or Monte Carlo) CVaR, ``sum_s p_s (-w' r_s)`` with ``p_s`` the tail weights of the scenarios
  (the worst ``1 - alpha``; see ``_var``): component ``sum_s p_s (-w_i r_si)``, each asset's average loss in the tail
  scenarios. No marginal is reported (the tail is piecewise constant in ``w``).

References
----------
Tasche, D. (1999), "Risk contributions and performance measurement", working paper, TU Munich.
Scaillet, O. (2004), "Nonparametric estimation and sensitivity analysis of expected shortfall", Mathematical
Finance 14(1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from portfolio_engine.exceptions import RiskError, RiskInputError
from portfolio_engine.risk._inputs import PERIODS_PER_YEAR, check_horizon, check_known_assets, check_level
from portfolio_engine.risk._var import tail_weights


def _series_dict(series: pd.Series | None) -> dict[str, float | None] | None:
    if series is None:
        return None
    return {str(k): (float(v) if math.isfinite(float(v)) else None) for k, v in series.items()}


@dataclass(frozen=True, eq=False)
class RiskContributions:
    """How a risk measure splits across assets.

    Attributes
    ----------
    measure : str
        ``"volatility"`` (annualised), ``"var_normal"``, ``"cvar_normal"``, ``"cvar_historical"`` or
        ``"cvar_monte_carlo"``.
    total : float
        The measure of the whole portfolio; ``component.sum()`` equals it to round-off.
    component : Series of shape (n_assets,)
        Each asset's share of ``total`` (negative for a hedge).
    marginal : Series of shape (n_assets,) or None
        ``d total / d w_i`` (None for scenario CVaR).
    level : float or None
        Confidence level (None for volatility).
    horizon : int
        Days (VaR/CVaR) or 1 (volatility, annualised).
    """

    measure: str
    total: float
    component: pd.Series
    marginal: pd.Series | None = None
    level: float | None = None
    horizon: int = 1

    @property
    def percent(self) -> pd.Series:
        """``component / total``: fractions summing to one (NaN when the total is zero)."""
        if self.total == 0.0:
            return self.component * np.nan
        return self.component / self.total

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "measure": self.measure,
            "total": float(self.total),
            "level": self.level,
            "horizon": self.horizon,
            "component": _series_dict(self.component),
            "percent": _series_dict(self.percent),
            "marginal": _series_dict(self.marginal),
        }


def check_cov(weights: pd.Series, cov: pd.DataFrame, *, name: str = "cov") -> np.ndarray:
    """The covariance of the weights' assets, in their order, as a finite symmetric float array.

    Raises
    ------
    RiskInputError
        Not a labelled square DataFrame, unknown assets, non-finite values or asymmetry beyond 1e-10 (relative).
    """
    if not isinstance(cov, pd.DataFrame) or not cov.index.equals(cov.columns) or cov.index.has_duplicates:
        raise RiskInputError(
            f"{name} must be a square DataFrame with the same unique assets on its index and columns; got "
            f"{type(cov).__name__}{' of shape ' + str(cov.shape) if isinstance(cov, pd.DataFrame) else ''}.",
            hint="Pass returns.cov() or Moments.cov (labelled by asset).",
        )
    check_known_assets(weights.index, cov.index, what=name)
    matrix = cov.loc[weights.index, weights.index].to_numpy(dtype="float64")
    scale = float(np.abs(matrix).max()) if matrix.size else 0.0
    if not np.isfinite(matrix).all() or float(np.abs(matrix - matrix.T).max()) > 1e-10 * max(scale, 1e-300):
        raise RiskInputError(
            f"{name} holds NaN/infinite values or is not symmetric.",
            hint="Estimate it on returns without gaps; symmetrise with (cov + cov.T) / 2.",
        )
    return (matrix + matrix.T) / 2.0


def check_mean(weights: pd.Series, mean: pd.Series | Mapping[Any, float] | None) -> np.ndarray:
    """Daily mean returns of the weights' assets (zeros when ``mean`` is None).

    Raises
    ------
    RiskInputError
        A held asset without a finite mean.
    """
    if mean is None:
        return np.zeros(len(weights))
    series = pd.Series(mean, dtype="float64") if not isinstance(mean, pd.Series) else mean.astype("float64")
    check_known_assets(weights.index, series.index, what="mean")
    values = series.reindex(weights.index).to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        raise RiskInputError("mean holds NaN or infinite values for held assets.", hint="Pass finite daily means.")
    return values


def _portfolio_sigma(w: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, float]:
    product = matrix @ w
    variance = float(w @ product)
    if not variance > 0.0:
        raise RiskError(
            f"The portfolio variance is {variance:.3g}: contributions to a zero risk are undefined.",
            hint="Check the covariance (is it positive semi-definite?) and that the weights are not all zero.",
        )
    return product, math.sqrt(variance)


def volatility_contributions(
    weights: pd.Series, cov: pd.DataFrame, *, periods_per_year: int = PERIODS_PER_YEAR
) -> RiskContributions:
    """Euler contributions to the annualised volatility ``sqrt(periods_per_year w' Sigma w)``.

    Parameters
    ----------
    weights : Series of shape (n_assets,)
        Checked weights (``check_weights``).
    cov : DataFrame of shape (n_columns, n_columns)
        Covariance of per-period (daily) returns; pass ``periods_per_year=1`` for an annual one.
    periods_per_year : int, default 252

    Returns
    -------
    RiskContributions

    Raises
    ------
    RiskInputError
        Bad covariance or unknown assets.
    RiskError
        Zero portfolio variance.
    """
    w = weights.to_numpy(dtype="float64")
    product, sigma = _portfolio_sigma(w, check_cov(weights, cov) * float(periods_per_year))
    marginal = product / sigma
    return RiskContributions(
        measure="volatility",
        total=sigma,
        component=pd.Series(w * marginal, index=weights.index),
        marginal=pd.Series(marginal, index=weights.index),
    )


def normal_contributions(
    weights: pd.Series,
    cov: pd.DataFrame,
    *,
    mean: pd.Series | Mapping[Any, float] | None = None,
    level: float = 0.95,
    horizon: int = 1,
    measure: str = "var",
) -> RiskContributions:
    """Euler contributions to the Normal (parametric) VaR or CVaR over ``horizon`` days.

    ``VaR(w) = -h mu' w + z sqrt(h) sqrt(w' Sigma w)``, ``z = Phi^{-1}(alpha)``; CVaR uses
    ``phi(z) / (1 - alpha)`` for ``z``. Daily moments; square-root-of-time scaling (exact for i.i.d. Normal daily
    returns summed over the horizon).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    cov : DataFrame of shape (n_columns, n_columns)
        Daily covariance.
    mean : Series of shape (n_columns,), optional
        Daily mean returns (zero when omitted).
    level : float, default 0.95
    horizon : int, default 1
    measure : {"var", "cvar"}, default "var"

    Returns
    -------
    RiskContributions
        ``measure`` is ``"var_normal"`` or ``"cvar_normal"``.

    Raises
    ------
    RiskInputError
        Bad covariance, mean, level, horizon or measure.
    RiskError
        Zero portfolio variance.
    """
    level, horizon = check_level(level), check_horizon(horizon)
    if measure not in ("var", "cvar"):
        raise RiskInputError(f"measure must be 'var' or 'cvar'; got {measure!r}.", hint="Pass measure='var'.")
    w = weights.to_numpy(dtype="float64")
    mu = check_mean(weights, mean)
    product, sigma = _portfolio_sigma(w, check_cov(weights, cov))
    z = float(stats.norm.ppf(level))
    multiplier = z if measure == "var" else float(stats.norm.pdf(z)) / (1.0 - level)
    marginal = -horizon * mu + multiplier * math.sqrt(horizon) * product / sigma
    component = w * marginal
    return RiskContributions(
        measure=f"{measure}_normal",
        total=float(-horizon * (mu @ w) + multiplier * math.sqrt(horizon) * sigma),
        component=pd.Series(component, index=weights.index),
        marginal=pd.Series(marginal, index=weights.index),
        level=level,
        horizon=horizon,
    )


def scenario_cvar_contributions(
    weights: pd.Series,
    scenarios: pd.DataFrame | np.ndarray,
    *,
    level: float = 0.95,
    horizon: int = 1,
    measure: str = "cvar_historical",
) -> RiskContributions:
    """Each asset's average loss in the tail scenarios: components of the scenario CVaR (they sum to it).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    scenarios : DataFrame of shape (n_scenarios, n_columns) or ndarray of shape (n_scenarios, n_assets)
        Asset returns over the horizon, one row per scenario (an array is taken in the weights' order).
    level : float, default 0.95
    horizon : int, default 1
        Recorded only: the scenarios already span the horizon.
    measure : str, default "cvar_historical"
        Name to record (``"cvar_monte_carlo"`` for simulated scenarios).

    Returns
    -------
    RiskContributions

    Raises
    ------
    RiskInputError
        Unknown assets, a shape that does not match the weights, or non-finite scenario returns.
    RiskError
        No scenarios.
    """
    level = check_level(level)
    if isinstance(scenarios, pd.DataFrame):
        check_known_assets(weights.index, scenarios.columns, what="scenarios")
        matrix = scenarios.loc[:, weights.index].to_numpy(dtype="float64")
    else:
        matrix = np.asarray(scenarios, dtype="float64")
        if matrix.ndim != 2 or matrix.shape[1] != len(weights):
            raise RiskInputError(
                f"scenarios must have shape (n_scenarios, {len(weights)}); got {matrix.shape}.",
                hint="Pass one column per weight, in the weights' order, or a labelled DataFrame.",
            )
    if matrix.shape[0] == 0:
        raise RiskError("No scenarios given.", hint="Pass at least one scenario.")
    if not np.isfinite(matrix).all():
        raise RiskInputError("scenarios hold NaN or infinite returns.", hint="Drop or repair those scenarios.")
    w = weights.to_numpy(dtype="float64")
    asset_losses = -matrix * w
    tail = tail_weights(asset_losses.sum(axis=1), level)
    component = tail @ asset_losses
    return RiskContributions(
        measure=measure,
        total=float(component.sum()),
        component=pd.Series(component, index=weights.index),
        level=level,
        horizon=check_horizon(horizon),
    )
