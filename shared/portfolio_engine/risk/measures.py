"""Risk measures of a portfolio held at today's weights, and one entry point, :func:`risk_report`.

VaR and CVaR by five methods, volatility, drawdown, tracking error, beta and risk contributions.

Conventions
-----------
* ``weights``: a Series indexed by asset summing to ``budget`` (1.0 by default); ``returns``: simple DAILY returns,
  a DataFrame dates x assets (it may hold more assets than the weights). The portfolio's daily return is
  ``R w`` (weights held constant, i.e. rebalanced daily, on the past days).
* Losses are positive: ``VaR_alpha`` is the alpha-quantile of the loss ``L = -R_h`` over ``h`` trading days and
  ``CVaR_alpha`` its mean over the worst ``1 - alpha`` (expected shortfall), as fractions of portfolio value, for
  ``alpha`` = 0.95, 0.99, ...
* Horizon, by method:

  - ``"historical"``: each asset's ``h``-day simple return is its daily log returns summed over the window and
    converted back (``exp(sum log(1 + r)) - 1``), and the portfolio's is ``w' R_h`` (weights fixed at the start of
    the window). Windows overlap by default (``n - h + 1`` scenarios); ``overlapping=False`` takes consecutive blocks
    counted back from the latest day. VaR is the empirical quantile (default ``"inverted_cdf"``, the
    ``ceil(n alpha)``-th smallest loss; see ``_var``), CVaR the Acerbi-Tasche tail mean.
  - ``"normal"``: mean ``h mu`` and standard deviation ``sqrt(h) sigma`` of the daily portfolio return
    (square-root-of-time; sample moments, ddof = 1).
  - ``"student_t"``: a Student-t with ``dof`` given, or fitted by maximum likelihood with the mean and variance
    matched to the sample; its scale is set so the variance equals the sample variance; the one-day quantile is
    scaled by ``sqrt(h)`` (an approximation: sums of t variables are not t).
  - ``"cornish_fisher"``: the Cornish-Fisher quantile with the cumulants of an ``h``-day sum of i.i.d. daily returns
    (mean ``h mu``, std ``sqrt(h) sigma``, skewness ``S / sqrt(h)``, excess kurtosis ``K / h``; ``S`` and ``K`` the
    bias-corrected sample estimates, as pandas' ``skew`` and ``kurt``).
  - ``"monte_carlo"``: the empirical VaR/CVaR of a sample of horizon returns passed in (the portfolio's, 1-D, or the
    assets', 2-D); the sample is taken as is (no horizon scaling).
* Volatility and tracking error are annualised with 252 periods per year.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import RiskError, RiskInputError
from portfolio_engine.risk._contributions import (
    RiskContributions,
    normal_contributions,
    scenario_cvar_contributions,
    volatility_contributions,
)
from portfolio_engine.risk._drawdown import DrawdownStats, drawdown
from portfolio_engine.risk._inputs import (
    PERIODS_PER_YEAR,
    aligned_series,
    check_horizon,
    check_level,
    check_weights,
    held_returns,
)
from portfolio_engine.risk._report import RiskReport, TailRisk
from portfolio_engine.risk._tail import MIN_OBSERVATIONS, monte_carlo_tail_risk, tail_risk, tail_risk_arrays
from portfolio_engine.risk._var import QUANTILE_METHODS, fit_student_t_dof, horizon_returns

__all__ = [
    "METHODS",
    "QUANTILE_METHODS",
    "DrawdownStats",
    "RiskContributions",
    "RiskReport",
    "TailRisk",
    "annualized_volatility",
    "beta",
    "conditional_value_at_risk",
    "drawdown",
    "monte_carlo_tail_risk",
    "normal_contributions",
    "portfolio_returns",
    "risk_report",
    "scenario_cvar_contributions",
    "tail_risk",
    "tracking_error",
    "value_at_risk",
    "volatility_contributions",
]

#: VaR/CVaR methods, in the order reports list them.
METHODS: tuple[str, ...] = ("historical", "normal", "student_t", "cornish_fisher", "monte_carlo")


def portfolio_returns(weights: pd.Series, returns: pd.DataFrame, *, budget: float | None = 1.0) -> pd.Series:
    """Daily portfolio returns ``R w`` at constant weights.

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    returns : DataFrame of shape (n_observations, n_columns)
        Simple daily returns with a column for every weighted asset.
    budget : float or None, default 1.0

    Returns
    -------
    Series of shape (n_observations,)

    Raises
    ------
    RiskInputError
        Bad weights (NaN, wrong sum), unknown assets, non-finite returns of a held asset.
    """
    w = check_weights(weights, budget=budget)
    values = held_returns(w, returns, min_observations=1)
    return pd.Series(values @ w.to_numpy(), index=returns.index, name="portfolio")


def value_at_risk(weights: pd.Series, returns: pd.DataFrame, **options: Any) -> float:
    """``VaR_level`` of the portfolio: :func:`tail_risk` (same options and errors), its ``var``."""
    return tail_risk(weights, returns, **options).var


def conditional_value_at_risk(weights: pd.Series, returns: pd.DataFrame, **options: Any) -> float:
    """``CVaR_level`` of the portfolio: :func:`tail_risk` (same options and errors), its ``cvar``."""
    return tail_risk(weights, returns, **options).cvar


def _series_values(series: pd.Series, *, name: str, minimum: int = 2) -> np.ndarray:
    if not isinstance(series, pd.Series):
        raise RiskInputError(
            f"{name} must be a pandas Series of returns; got {type(series).__name__}.",
            hint="Pass e.g. portfolio_returns(weights, returns).",
        )
    values = series.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        raise RiskInputError(f"{name} holds NaN or infinite values.", hint="Drop missing dates (series.dropna()).")
    if values.size < minimum:
        raise RiskError(f"{name} has {values.size} value(s); need >= {minimum}.", hint="Use a longer history.")
    return values


def annualized_volatility(returns: pd.Series, *, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """``std(returns, ddof=1) * sqrt(periods_per_year)``.

    Raises
    ------
    RiskInputError
        Not a Series, or NaN/infinite values.
    RiskError
        Fewer than two returns.
    """
    values = _series_values(returns, name="returns")
    return float(values.std(ddof=1) * math.sqrt(periods_per_year))


def _paired(portfolio: pd.Series, benchmark: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    values = _series_values(portfolio, name="portfolio returns")
    return values, aligned_series(benchmark, portfolio.index, name="benchmark")


def tracking_error(portfolio: pd.Series, benchmark: pd.Series, *, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annualised standard deviation (ddof = 1) of the active return ``portfolio - benchmark`` on the portfolio's dates.

    Raises
    ------
    RiskInputError
        Not Series, non-finite values, or a portfolio date the benchmark lacks.
    RiskError
        Fewer than two returns.
    """
    values, bench = _paired(portfolio, benchmark)
    return float((values - bench).std(ddof=1) * math.sqrt(periods_per_year))


def beta(portfolio: pd.Series, benchmark: pd.Series) -> float:
    """``cov(portfolio, benchmark) / var(benchmark)`` (ddof = 1) on the portfolio's dates.

    Raises
    ------
    RiskInputError
        Not Series, non-finite values, or a portfolio date the benchmark lacks.
    RiskError
        Fewer than two returns, or a constant benchmark.
    """
    values, bench = _paired(portfolio, benchmark)
    variance = float(bench.var(ddof=1))
    if not variance > 0:
        raise RiskError("The benchmark's returns are constant: beta is undefined.", hint="Check the benchmark.")
    return float(np.cov(values, bench, ddof=1)[0, 1] / variance)


def risk_report(
    weights: pd.Series,
    returns: pd.DataFrame,
    *,
    levels: Sequence[float] = (0.95, 0.99),
    horizon: int = 1,
    methods: Sequence[str] = ("historical", "normal", "student_t", "cornish_fisher"),
    benchmark: pd.Series | None = None,
    monte_carlo: pd.Series | pd.DataFrame | np.ndarray | None = None,
    dof: float | None = None,
    overlapping: bool = True,
    quantile_method: str = "inverted_cdf",
    budget: float | None = 1.0,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> RiskReport:
    """Every risk measure of the weights on a daily return history, in one frozen, JSON-ready report.

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    returns : DataFrame of shape (n_observations, n_columns)
        Simple daily returns (no NaN for held assets).
    levels : sequence of float, default (0.95, 0.99)
    horizon : int, default 1
    methods : sequence of str, default ("historical", "normal", "student_t", "cornish_fisher")
        ``"monte_carlo"`` is added when ``monte_carlo`` is given.
    benchmark : Series of shape (n_observations,), optional
        Daily benchmark returns on (at least) the dates of ``returns``: tracking error and beta.
    monte_carlo : Series, ndarray or DataFrame, optional
        Simulated horizon returns (see :func:`monte_carlo_tail_risk`); an asset-level DataFrame also gives Monte Carlo
        CVaR contributions.
    dof : float, optional
        Student-t degrees of freedom (fitted once on the portfolio's daily returns when omitted).
    overlapping, quantile_method
        Historical options (see :func:`tail_risk`).
    budget : float or None, default 1.0
    periods_per_year : int, default 252

    Returns
    -------
    RiskReport

    Raises
    ------
    RiskInputError
        Bad weights, levels, horizon, methods or inputs (see :func:`tail_risk`), or ``"monte_carlo"`` asked for
        without a sample.
    RiskError
        Too few observations, or a zero portfolio variance.
    """
    w = check_weights(weights, budget=budget)
    horizon = check_horizon(horizon)
    checked_levels = tuple(check_level(level, name="levels") for level in levels)
    if not checked_levels:
        raise RiskInputError("levels is empty.", hint="Pass e.g. levels=(0.95, 0.99).")
    wanted = list(dict.fromkeys(methods))
    if monte_carlo is not None and "monte_carlo" not in wanted:
        wanted.append("monte_carlo")
    unknown = [m for m in wanted if m not in METHODS]
    if unknown or ("monte_carlo" in wanted and monte_carlo is None):
        raise RiskInputError(
            f"Cannot compute methods {unknown or ['monte_carlo']}: unknown, or 'monte_carlo' without a sample.",
            hint=f"Use methods from {list(METHODS)}; pass monte_carlo=<simulated horizon returns> for 'monte_carlo'.",
        )
    minimum = max([horizon, 2, *(MIN_OBSERVATIONS.get(m, 1) for m in wanted)])
    daily = held_returns(w, returns, min_observations=minimum)
    w_values = w.to_numpy()
    if dof is None and "student_t" in wanted:
        dof = fit_student_t_dof(daily @ w_values)
        fitted = True
    else:
        fitted = False
    tail: list[TailRisk] = []
    for method in wanted:
        for level in checked_levels:
            if method == "monte_carlo":
                assert monte_carlo is not None
                tail.append(monte_carlo_tail_risk(monte_carlo, weights=w, level=level, horizon=horizon, budget=budget))
                continue
            tail.append(
                tail_risk_arrays(w_values, daily, level, horizon, method, overlapping, quantile_method, dof, fitted)
            )
    portfolio = pd.Series(daily @ w_values, index=returns.index, name="portfolio")
    frame = pd.DataFrame(daily, index=returns.index, columns=w.index)
    cov, mean = frame.cov(ddof=1), frame.mean()
    contributions = [volatility_contributions(w, cov, periods_per_year=periods_per_year)]
    scenarios = horizon_returns(daily, horizon, overlapping=overlapping)
    for level in checked_levels:
        for measure in ("var", "cvar"):
            contributions.append(normal_contributions(w, cov, mean=mean, level=level, horizon=horizon, measure=measure))
        contributions.append(scenario_cvar_contributions(w, scenarios, level=level, horizon=horizon))
        if isinstance(monte_carlo, pd.DataFrame):
            contributions.append(
                scenario_cvar_contributions(w, monte_carlo, level=level, horizon=horizon, measure="cvar_monte_carlo")
            )
    return RiskReport(
        weights=w,
        start=returns.index[0],
        as_of=returns.index[-1],
        n_observations=len(portfolio),
        horizon=horizon,
        levels=checked_levels,
        tail=tuple(tail),
        volatility=float(portfolio.std(ddof=1) * math.sqrt(periods_per_year)),
        drawdown=drawdown(portfolio),
        tracking_error=None
        if benchmark is None
        else tracking_error(portfolio, benchmark, periods_per_year=periods_per_year),
        beta=None if benchmark is None else beta(portfolio, benchmark),
        contributions=tuple(contributions),
    )
