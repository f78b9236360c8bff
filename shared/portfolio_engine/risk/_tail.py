"""VaR and CVaR of a portfolio by method, on a return history (``tail_risk``) or a simulated sample.

See ``measures`` for the conventions (losses positive, horizon handling by method).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk._inputs import check_horizon, check_level, check_weights, held_returns
from portfolio_engine.risk._report import TailRisk
from portfolio_engine.risk._var import (
    check_dof,
    cornish_fisher_var_cvar,
    empirical_var_cvar,
    fit_student_t_dof,
    horizon_returns,
    normal_var_cvar,
    student_t_var_cvar,
)

#: Fewest daily returns each history-based method needs.
MIN_OBSERVATIONS = {"historical": 1, "normal": 2, "student_t": 3, "cornish_fisher": 4}


def monte_carlo_tail_risk(
    sample: pd.Series | pd.DataFrame | np.ndarray,
    *,
    weights: pd.Series | None = None,
    level: float = 0.95,
    horizon: int = 1,
    quantile_method: str = "inverted_cdf",
    budget: float | None = 1.0,
) -> TailRisk:
    """VaR and CVaR of a simulated sample of horizon returns (the empirical estimators of the historical method).

    Parameters
    ----------
    sample : Series or ndarray of shape (n_paths,), or DataFrame of shape (n_paths, n_columns)
        Portfolio returns over the horizon, or asset returns over the horizon (then ``weights`` are applied).
    weights : Series of shape (n_assets,), optional
        Needed for an asset-level sample.
    level : float, default 0.95
    horizon : int, default 1
        Recorded only: the sample already spans the horizon.
    quantile_method : str, default "inverted_cdf"
    budget : float or None, default 1.0

    Returns
    -------
    TailRisk

    Raises
    ------
    RiskInputError
        An asset-level sample without weights, bad weights, unknown assets or non-finite values.
    RiskError
        An empty sample.
    """
    level, horizon = check_level(level), check_horizon(horizon)
    pnl = _sample_pnl(sample, weights, budget)
    var, cvar = empirical_var_cvar(pnl, level, quantile_method)
    return TailRisk("monte_carlo", level, horizon, var, cvar, len(pnl), {"quantile_method": quantile_method})


def _sample_pnl(sample: Any, weights: pd.Series | None, budget: float | None) -> np.ndarray:
    if isinstance(sample, pd.DataFrame) or (isinstance(sample, np.ndarray) and sample.ndim == 2):
        if weights is None:
            raise RiskInputError(
                "An asset-level Monte Carlo sample (2-D) needs weights.",
                hint="Pass weights=..., or the portfolio's simulated returns as a 1-D array.",
            )
        w = check_weights(weights, budget=budget)
        frame = sample if isinstance(sample, pd.DataFrame) else pd.DataFrame(sample, columns=w.index)
        values = held_returns(w, frame, name="Monte Carlo sample", min_observations=1, dated=False)
        return values @ w.to_numpy()
    pnl = np.asarray(sample, dtype="float64")
    if pnl.ndim != 1 or pnl.size == 0 or not np.isfinite(pnl).all():
        raise RiskInputError(
            f"A Monte Carlo sample must be a non-empty 1-D array of finite returns; got shape {pnl.shape}.",
            hint="Pass the simulated portfolio returns over the horizon.",
        )
    return pnl


def tail_risk(
    weights: pd.Series,
    returns: pd.DataFrame,
    *,
    level: float = 0.95,
    horizon: int = 1,
    method: str = "historical",
    overlapping: bool = True,
    quantile_method: str = "inverted_cdf",
    dof: float | None = None,
    budget: float | None = 1.0,
) -> TailRisk:
    """VaR and CVaR of the portfolio over ``horizon`` days by ``method`` (see the module docstring).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    returns : DataFrame of shape (n_observations, n_columns)
        Simple daily returns.
    level : float, default 0.95
    horizon : int, default 1
    method : {"historical", "normal", "student_t", "cornish_fisher"}, default "historical"
        For ``"monte_carlo"`` use :func:`monte_carlo_tail_risk`.
    overlapping : bool, default True
        Historical only: overlapping or non-overlapping ``h``-day windows.
    quantile_method : str, default "inverted_cdf"
        Historical only: how VaR is read off the sample (any ``numpy.quantile`` method).
    dof : float, optional
        Student-t only: degrees of freedom (> 2); fitted by maximum likelihood when omitted.
    budget : float or None, default 1.0

    Returns
    -------
    TailRisk

    Raises
    ------
    RiskInputError
        Bad weights, level, horizon, method, quantile method or dof; unknown assets; non-finite returns.
    RiskError
        Too few observations for the method and horizon.
    """
    level, horizon = check_level(level), check_horizon(horizon)
    if method not in MIN_OBSERVATIONS:
        raise RiskInputError(
            f"Unknown VaR method {method!r}.",
            hint=f"Use one of {', '.join(MIN_OBSERVATIONS)}; for a simulated sample use monte_carlo_tail_risk.",
        )
    w = check_weights(weights, budget=budget)
    daily = held_returns(w, returns, min_observations=max(MIN_OBSERVATIONS[method], horizon))
    return tail_risk_arrays(w.to_numpy(), daily, level, horizon, method, overlapping, quantile_method, dof)


def tail_risk_arrays(
    w: np.ndarray,
    daily: np.ndarray,
    level: float,
    horizon: int,
    method: str,
    overlapping: bool,
    quantile_method: str,
    dof: float | None,
    dof_fitted: bool = False,
) -> TailRisk:
    """:func:`tail_risk` on checked arrays (``daily`` in the weights' order); ``dof_fitted`` records a fit upstream."""
    if method == "historical":
        pnl = horizon_returns(daily, horizon, overlapping=overlapping) @ w
        var, cvar = empirical_var_cvar(pnl, level, quantile_method)
        details: dict[str, Any] = {"quantile_method": quantile_method, "overlapping": bool(overlapping)}
        return TailRisk(method, level, horizon, var, cvar, len(pnl), details)
    portfolio = daily @ w
    mean, std = float(portfolio.mean()), float(portfolio.std(ddof=1))
    mean_h, std_h = horizon * mean, math.sqrt(horizon) * std
    details = {"mean": mean_h, "std": std_h}
    if method == "normal":
        var, cvar = normal_var_cvar(mean_h, std_h, level)
    elif method == "student_t":
        nu = fit_student_t_dof(portfolio) if dof is None else check_dof(dof)
        var, cvar = student_t_var_cvar(mean_h, std_h, nu, level)
        details.update(dof=nu, dof_fitted=dof is None or dof_fitted)
    else:
        skew = float(stats.skew(portfolio, bias=False)) / math.sqrt(horizon)
        kurt = float(stats.kurtosis(portfolio, fisher=True, bias=False)) / horizon
        var, cvar = cornish_fisher_var_cvar(mean_h, std_h, skew, kurt, level)
        details.update(skew=skew, excess_kurtosis=kurt)
    return TailRisk(method, level, horizon, var, cvar, len(portfolio), details)
