"""Performance metrics of a backtest's return series, against benchmarks, and a comparison table.

Conventions
-----------
* ``returns``: simple returns per period (daily by default) in a Series indexed by date, each > -1, no NaN.
* Annualisation: ``periods_per_year`` (default 252). Means are ARITHMETIC and annualised by multiplying by
  ``periods_per_year`` (Sharpe, Sortino, information ratio, CAPM alpha); growth is GEOMETRIC in CAGR
  (``prod(1 + r) ** (periods_per_year / n) - 1``) and therefore in Calmar. Standard deviations are annualised by
  ``sqrt(periods_per_year)`` and use ``ddof=1`` (sample) unless ``ddof=0`` is passed.
* Risk-free rate: ``None`` (zero), a constant ANNUAL rate (0.02), or a Series of ANNUAL yields in decimal such as
  ``load_treasury_curve()["3month"]``, forward-filled onto the return dates. Annual rates become per-period
  returns by ``(1 + y) ** (1 / periods_per_year) - 1`` (see :func:`periodic_risk_free`).
* Ratios whose denominator is zero (a constant series, no drawdown, no downside) are NaN, not an error, so that a
  comparison table of many strategies never fails on one of them.
* Drawdown and historical VaR/CVaR come from :mod:`portfolio_engine.risk.measures` (wealth starts at 1 before the
  first return; losses positive; VaR the ``ceil(n level)``-th smallest loss, CVaR the Acerbi-Tasche tail mean).

Errors: bad data raise :class:`~portfolio_engine.exceptions.DataError` (``EmptyDataError`` when empty), bad
arguments :class:`~portfolio_engine.exceptions.SpecificationError`.
"""

from collections.abc import Mapping

import pandas as pd

from portfolio_engine.backtest._perf_absolute import (
    RiskFree,
    annualized_return,
    annualized_volatility,
    cagr,
    calmar_ratio,
    downside_deviation,
    drawdown_stats,
    max_drawdown,
    sharpe_ratio,
    sortino_ratio,
)
from portfolio_engine.backtest._perf_inputs import PERIODS_PER_YEAR, check_periods_per_year, periodic_risk_free
from portfolio_engine.backtest._perf_relative import (
    CapmResult,
    capm,
    hit_rate,
    information_ratio,
    realized_tail_risk,
    tracking_error,
)
from portfolio_engine.backtest._perf_rolling import rolling_beta, rolling_sharpe, rolling_volatility
from portfolio_engine.backtest._perf_trading import costs_paid, trades_from_weights, transaction_costs, turnover
from portfolio_engine.exceptions import DataError, EmptyDataError

__all__ = [
    "PERIODS_PER_YEAR",
    "CapmResult",
    "RiskFree",
    "annualized_return",
    "annualized_volatility",
    "cagr",
    "calmar_ratio",
    "capm",
    "costs_paid",
    "downside_deviation",
    "drawdown_stats",
    "hit_rate",
    "information_ratio",
    "max_drawdown",
    "metrics_table",
    "performance_metrics",
    "periodic_risk_free",
    "realized_tail_risk",
    "rolling_beta",
    "rolling_sharpe",
    "rolling_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "tracking_error",
    "trades_from_weights",
    "transaction_costs",
    "turnover",
]


def _benchmark_map(benchmark: pd.Series | Mapping[str, pd.Series] | None) -> dict[str, pd.Series]:
    if benchmark is None:
        return {}
    if isinstance(benchmark, pd.Series):
        return {str(benchmark.name) if benchmark.name is not None else "benchmark": benchmark}
    if isinstance(benchmark, Mapping):
        return {str(k): v for k, v in benchmark.items()}
    raise DataError(
        f"benchmark must be a Series or a mapping name -> Series; got {type(benchmark).__name__}.",
        hint="Pass e.g. {'S&P 500': spx_returns, 'equal weight': ew_returns}.",
    )


def performance_metrics(
    returns: pd.Series,
    *,
    benchmark: pd.Series | Mapping[str, pd.Series] | None = None,
    risk_free: RiskFree = None,
    trades: pd.DataFrame | None = None,
    costs: pd.Series | None = None,
    level: float = 0.95,
    periods_per_year: float = PERIODS_PER_YEAR,
    ddof: int = 1,
) -> pd.Series:
    """Every metric of one return series, labelled (the column of :func:`metrics_table`).

    Parameters
    ----------
    returns : Series of shape (n_observations,)
    benchmark : Series or mapping of str to Series, optional
        Relative metrics (beta, alpha, tracking error, information ratio, hit rate) against each one.
    risk_free : float, Series or None
    trades : DataFrame of shape (n_rebalances, n_assets), optional
        Signed traded weights: adds the annual turnover (two-sided, per year of ``returns``).
    costs : Series of shape (n_rebalances,), optional
        Cost of each rebalance as a fraction of value: adds the annual costs paid.
    level : float, default 0.95
        VaR/CVaR confidence level.
    periods_per_year : float, default 252
    ddof : {1, 0}, default 1

    Returns
    -------
    Series
        Metric name -> value; durations in periods, everything else in fractions (not percent).

    Raises
    ------
    DataError, SpecificationError, RiskInputError
        As the individual metrics.
    """
    ppy = check_periods_per_year(periods_per_year)
    stats = drawdown_stats(returns)
    tail = realized_tail_risk(returns, level=level)
    pct = f"{level:.0%}"
    out: dict[str, float] = {
        "CAGR": cagr(returns, periods_per_year=ppy),
        "annualized return": annualized_return(returns, periods_per_year=ppy),
        "volatility": annualized_volatility(returns, periods_per_year=ppy, ddof=ddof),
        "Sharpe": sharpe_ratio(returns, risk_free=risk_free, periods_per_year=ppy, ddof=ddof),
        "Sortino": sortino_ratio(returns, risk_free=risk_free, periods_per_year=ppy),
        "max drawdown": stats.maximum,
        "max drawdown duration": float(stats.duration),
        "Calmar": calmar_ratio(returns, periods_per_year=ppy),
        "hit rate": hit_rate(returns),
        f"VaR {pct}": tail.var,
        f"CVaR {pct}": tail.cvar,
    }
    for name, series in _benchmark_map(benchmark).items():
        fit = capm(returns, series, risk_free=risk_free, periods_per_year=ppy)
        out[f"beta vs {name}"] = fit.beta
        out[f"alpha vs {name}"] = fit.alpha
        out[f"tracking error vs {name}"] = tracking_error(returns, series, periods_per_year=ppy, ddof=ddof)
        out[f"information ratio vs {name}"] = information_ratio(returns, series, periods_per_year=ppy, ddof=ddof)
        out[f"hit rate vs {name}"] = hit_rate(returns, series)
    years = len(returns) / ppy
    if trades is not None:
        out["turnover (annual)"] = float(turnover(trades).sum()) / years
    if costs is not None:
        out["costs paid (annual)"] = costs_paid(costs, years=years)
    return pd.Series(out, dtype="float64", name=returns.name)


def metrics_table(
    returns_by_name: Mapping[str, pd.Series],
    *,
    benchmark: pd.Series | Mapping[str, pd.Series] | None = None,
    risk_free: RiskFree = None,
    trades_by_name: Mapping[str, pd.DataFrame] | None = None,
    costs_by_name: Mapping[str, pd.Series] | None = None,
    include_benchmarks: bool = True,
    level: float = 0.95,
    periods_per_year: float = PERIODS_PER_YEAR,
    ddof: int = 1,
) -> pd.DataFrame:
    """Comparison table: one column per strategy (then per benchmark), one row per metric.

    Each column is computed on its own series' dates (benchmarks must cover them); see :func:`performance_metrics`.

    Parameters
    ----------
    returns_by_name : mapping of str to Series
    benchmark : Series or mapping of str to Series, optional
    risk_free : float, Series or None
    trades_by_name, costs_by_name : mapping, optional
        Per strategy, as ``trades`` and ``costs`` of :func:`performance_metrics`.
    include_benchmarks : bool, default True
        Add a column for each benchmark (its relative rows against itself: beta 1, alpha 0, tracking error 0).
    level, periods_per_year, ddof
        As :func:`performance_metrics`.

    Returns
    -------
    DataFrame of shape (n_metrics, n_strategies + n_benchmarks)
        Rows that do not apply to a column (turnover of a benchmark) are NaN.

    Raises
    ------
    EmptyDataError
        No strategy.
    DataError, SpecificationError, RiskInputError
        As the individual metrics.
    """
    if not isinstance(returns_by_name, Mapping) or not returns_by_name:
        raise EmptyDataError(
            f"metrics_table needs a non-empty mapping name -> return Series; got {returns_by_name!r:.80}.",
            hint="Pass e.g. {'strategy': net_returns}.",
        )
    benchmarks = _benchmark_map(benchmark)
    columns = dict(returns_by_name)
    if include_benchmarks:
        columns.update({name: series for name, series in benchmarks.items() if name not in columns})
    trades_by_name, costs_by_name = trades_by_name or {}, costs_by_name or {}
    table = {
        str(name): performance_metrics(
            series,
            benchmark=benchmarks,
            risk_free=risk_free,
            trades=trades_by_name.get(name),
            costs=costs_by_name.get(name),
            level=level,
            periods_per_year=periods_per_year,
            ddof=ddof,
        )
        for name, series in columns.items()
    }
    rows = list(dict.fromkeys(label for column in table.values() for label in column.index))  # first-seen order
    return pd.DataFrame(table).reindex(rows)
