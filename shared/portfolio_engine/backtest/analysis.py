"""Out-of-sample analysis: train/test splits, per-window results, in-sample promises against realised outcomes.

Everything works from the engine's outputs (:class:`~portfolio_engine.backtest.engine.BacktestResult`) and the
returns frame the backtest ran on; no policy is re-run.

Timing follows the engine: a decision at ``d`` sees rows strictly before ``d`` (its estimation window), trades
at ``d``'s close, so its holding period is the trading days after ``d`` up to and including the next decision
date (or the end of the run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from portfolio_engine.backtest._perf_absolute import annualized_volatility, cagr, max_drawdown, sharpe_ratio
from portfolio_engine.backtest._perf_inputs import PERIODS_PER_YEAR, check_periods_per_year
from portfolio_engine.backtest._result import BacktestResult
from portfolio_engine.backtest.windows import EstimationWindow
from portfolio_engine.exceptions import DataError, EmptyDataError, SpecificationError

__all__ = ["InOutOfSample", "in_vs_out_of_sample", "train_test_split_dates", "window_results"]

FIGURES = ("return", "volatility", "sharpe")


def train_test_split_dates(
    index: pd.Index, *, test_fraction: float | None = None, split_date: str | date | None = None
) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Split a date index in two consecutive parts: train (earlier) and test (later), without shuffling.

    Parameters
    ----------
    index : DatetimeIndex of shape (n_dates,)
        Increasing dates.
    test_fraction : float in (0, 1), optional
        Share of the dates in the test part (``round(n * test_fraction)`` dates, at least one on each side).
    split_date : date-like, optional
        The first test date is the first date ``>= split_date``. Exactly one of the two must be given.

    Returns
    -------
    train, test : DatetimeIndex
        ``train`` strictly before ``test``; together they are ``index``.

    Raises
    ------
    SpecificationError
        Neither or both arguments given, a fraction outside (0, 1), or a split leaving one side empty.
    DataError
        ``index`` not a strictly increasing date index.
    """
    if (test_fraction is None) == (split_date is None):
        raise SpecificationError(
            f"Pass exactly one of test_fraction and split_date; got {test_fraction!r} and {split_date!r}.",
            hint="e.g. train_test_split_dates(returns.index, test_fraction=0.3).",
        )
    try:
        dates = pd.DatetimeIndex(index)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Expected a date index; got {type(index).__name__}.", hint="Pass returns.index.") from exc
    if not dates.is_monotonic_increasing or not dates.is_unique:
        raise DataError("The date index must be strictly increasing.", hint="Sort it and drop duplicates.")
    n = len(dates)
    if split_date is not None:
        cut = int(dates.searchsorted(pd.Timestamp(split_date)))
    else:
        fraction = float(test_fraction or 0.0)
        if isinstance(test_fraction, bool) or not 0.0 < fraction < 1.0:
            raise SpecificationError(f"test_fraction must lie in (0, 1); got {test_fraction!r}.", hint="e.g. 0.3.")
        cut = n - round(n * fraction)
    if not 0 < cut < n:
        raise SpecificationError(
            f"The split leaves an empty side ({cut} train and {n - cut} test dates of {n}).",
            hint="Choose a split date inside the index or a fraction that leaves dates on both sides.",
        )
    return dates[:cut], dates[cut:]


def window_results(
    results: Sequence[BacktestResult],
    *,
    names: Sequence[str] | None = None,
    periods_per_year: float = PERIODS_PER_YEAR,
) -> pd.DataFrame:
    """One row of figures per walk-forward window (e.g. the results of ``run_window`` for ``split_windows``).

    Parameters
    ----------
    results : sequence of BacktestResult
    names : sequence of str, optional
        Row labels; default ``0, 1, ...``.
    periods_per_year : float, default 252

    Returns
    -------
    DataFrame of shape (n_windows, 10)
        Columns ``start``, ``end``, ``days``, ``total return`` (compounded net), ``cagr``, ``volatility``
        (annualised, ddof 1), ``sharpe`` (zero risk-free rate), ``max drawdown`` (positive), ``turnover`` (sum of
        the two-way turnover of the window's rebalances) and ``costs`` (sum). Figures that need two days are NaN
        for a one-day window.

    Raises
    ------
    EmptyDataError
        No results, or a result without days.
    SpecificationError
        ``names`` of the wrong length, or bad ``periods_per_year``.
    """
    if not results:
        raise EmptyDataError("window_results got no results.", hint="Pass one BacktestResult per window.")
    labels = list(range(len(results))) if names is None else list(names)
    if len(labels) != len(results):
        raise SpecificationError(
            f"{len(labels)} names for {len(results)} results.", hint="Pass one name per window or none."
        )
    ppy = check_periods_per_year(periods_per_year)
    rows = []
    for label, result in zip(labels, results, strict=True):
        net = result.net_returns.astype("float64")
        if net.empty:
            raise EmptyDataError(f"Window {label!r} has no days.", hint="Drop empty windows before the analysis.")
        two = len(net) >= 2
        rows.append(
            {
                "start": net.index[0],
                "end": net.index[-1],
                "days": len(net),
                "total return": float(np.prod(1.0 + net.to_numpy()) - 1.0),
                "cagr": cagr(net, periods_per_year=ppy),
                "volatility": annualized_volatility(net, periods_per_year=ppy) if two else math.nan,
                "sharpe": sharpe_ratio(net, periods_per_year=ppy) if two else math.nan,
                "max drawdown": max_drawdown(net),
                "turnover": float(result.turnover.sum()),
                "costs": float(result.costs.sum()),
            }
        )
    return pd.DataFrame(rows, index=pd.Index(labels, name="window"))


@dataclass(frozen=True, eq=False)
class InOutOfSample:
    """Each decision's in-sample figures beside what its holding period realised.

    Attributes
    ----------
    by_decision : DataFrame of shape (n_decisions, 10)
        Indexed by decision date: ``window start``, ``window end`` (last row the policy saw), ``holding end``,
        ``holding days``, then ``in-sample return``, ``in-sample volatility``, ``in-sample sharpe`` (the decision's
        weights applied to its estimation window: annualised arithmetic mean, ddof-1 volatility, their ratio) and
        ``out-of-sample return``, ``out-of-sample volatility``, ``out-of-sample sharpe`` (the same figures of the
        strategy's realised daily returns over the holding period). NaN where a side has fewer than two days.
    realized : str
        ``"gross"`` or ``"net"``: which of the result's daily returns were used out of sample.
    """

    by_decision: pd.DataFrame
    realized: str

    def summary(self) -> pd.DataFrame:
        """DataFrame with rows ``return``, ``volatility``, ``sharpe`` and columns below (NaN rows skipped).

        ``in-sample mean``, ``out-of-sample mean``, ``mean ratio`` (mean of out-of-sample / in-sample over decisions
        whose in-sample figure is non-zero), ``median ratio``, ``mean difference`` (out - in) and ``hit rate``: the
        share of decisions whose in-sample promise held, i.e. realised return >= expected, realised volatility <=
        ex-ante, realised Sharpe >= in-sample. ``decisions`` counts the decisions with both figures.
        """
        rows = {}
        for figure in FIGURES:
            ins = self.by_decision[f"in-sample {figure}"].to_numpy(dtype="float64")
            outs = self.by_decision[f"out-of-sample {figure}"].to_numpy(dtype="float64")
            both = np.isfinite(ins) & np.isfinite(outs)
            ins, outs = ins[both], outs[both]
            nonzero = ins != 0.0
            ratios = outs[nonzero] / ins[nonzero]
            kept = outs <= ins if figure == "volatility" else outs >= ins
            rows[figure] = {
                "in-sample mean": float(ins.mean()) if both.any() else math.nan,
                "out-of-sample mean": float(outs.mean()) if both.any() else math.nan,
                "mean ratio": float(ratios.mean()) if ratios.size else math.nan,
                "median ratio": float(np.median(ratios)) if ratios.size else math.nan,
                "mean difference": float((outs - ins).mean()) if both.any() else math.nan,
                "hit rate": float(kept.mean()) if both.any() else math.nan,
                "decisions": float(both.sum()),
            }
        return pd.DataFrame(rows).T


def _figures(values: np.ndarray, ppy: float) -> tuple[float, float, float]:
    """Annualised arithmetic mean, ddof-1 volatility and their ratio (NaN below two values or zero volatility)."""
    if values.size < 2:
        return math.nan, math.nan, math.nan
    mean, std = float(values.mean()) * ppy, float(values.std(ddof=1)) * math.sqrt(ppy)
    return mean, std, (mean / std if std > 1e-15 else math.nan)


def in_vs_out_of_sample(
    result: BacktestResult,
    returns: pd.DataFrame,
    *,
    window: EstimationWindow | None = None,
    realized: str = "gross",
    periods_per_year: float = PERIODS_PER_YEAR,
) -> InOutOfSample:
    """Compare what each decision's weights promised on their own estimation window with what they delivered.

    In sample, the target weights of decision ``d`` are applied as constant weights to the rows of ``returns``
    the policy saw (``window.bounds``): annualised mean, volatility and Sharpe of ``returns_window @ w`` (cash
    counts at zero return; these are the ex-ante figures of a mean-variance objective). Out of sample, the
    result's realised daily returns over ``d``'s holding period give the same figures. A policy that overfits its
    window shows out-of-sample Sharpe well below in-sample and volatility ratios above one.

    Parameters
    ----------
    result : BacktestResult
        From ``run_backtest`` (or merged windows) on ``returns``.
    returns : DataFrame of shape (n_days, n_assets)
        The daily returns the backtest ran on (same calendar and columns).
    window : EstimationWindow, optional
        The window the backtest used; default the engine's (expanding, 252 rows).
    realized : {"gross", "net"}, default "gross"
        Realised returns before costs (comparable with the cost-free in-sample figures) or after.
    periods_per_year : float, default 252

    Returns
    -------
    InOutOfSample

    Raises
    ------
    SpecificationError
        Bad ``realized`` or ``periods_per_year``, or a decision with less history than the window needs.
    DataError
        A decision date or asset of ``result`` missing from ``returns``.
    EmptyDataError
        A result without decisions.
    """
    if realized not in ("gross", "net"):
        raise SpecificationError(f"realized must be 'gross' or 'net'; got {realized!r}.", hint="Use 'gross'.")
    ppy = check_periods_per_year(periods_per_year)
    window = window or EstimationWindow()
    if len(result.decision_dates) == 0:
        raise EmptyDataError("The result has no decisions.", hint="Run a backtest with at least one decision date.")
    missing = result.weights.columns.difference(returns.columns)
    if len(missing):
        raise DataError(f"Assets {list(missing)} of the weights are not in returns.", hint="Pass the same frame.")
    calendar = pd.DatetimeIndex(returns.index)
    positions = calendar.get_indexer(result.decision_dates)
    if (positions < 0).any():
        bad = result.decision_dates[positions < 0][0]
        raise DataError(f"Decision date {bad} is not a row of returns.", hint="Pass the returns the backtest used.")
    daily = (result.gross_returns if realized == "gross" else result.net_returns).astype("float64")
    values = returns[result.weights.columns].to_numpy(dtype="float64")
    rows = []
    for k, (decided, position) in enumerate(zip(result.decision_dates, positions, strict=True)):
        start, stop = window.bounds(int(position), decided)
        weights = result.weights.loc[decided].to_numpy(dtype="float64")
        ins = _figures(values[start:stop] @ weights, ppy)
        # The holding period: after d's close up to and including the next decision (d's own day is the old book).
        end = result.decision_dates[k + 1] if k + 1 < len(result.decision_dates) else daily.index[-1]
        held = daily.loc[(daily.index > decided) & (daily.index <= end)].to_numpy()
        outs = _figures(held, ppy)
        rows.append(
            {
                "window start": calendar[start],
                "window end": calendar[stop - 1],
                "holding end": end,
                "holding days": held.size,
                **{f"in-sample {f}": v for f, v in zip(FIGURES, ins, strict=True)},
                **{f"out-of-sample {f}": v for f, v in zip(FIGURES, outs, strict=True)},
            }
        )
    frame = pd.DataFrame(rows, index=pd.DatetimeIndex(result.decision_dates, name="decision"))
    return InOutOfSample(by_decision=frame, realized=realized)
