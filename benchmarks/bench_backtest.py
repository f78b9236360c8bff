"""Backtest: the 1990-2022 monthly walk-forward of the regime-aware policy, single process and fanned out.

Data: the bundled 20 stocks and ``^GSPC``, daily simple returns on the dates all of them trade. Policy:
:class:`~portfolio_engine.backtest.regime_policy.RegimeAwarePolicy` with the bundled default spec (maximum Sharpe,
minimum variance when turbulent), a 2-state HMM on the index refitted every January on the data before it, a
rolling window of the spec's ``lookback_days``, 10 bp proportional costs, month-end decisions once a window is
full.

Three runs, each with a fresh policy (no cached model): the single process; the same decisions split into 8
windows run one after the other (``run_window``) and merged (``merge_results``); the 8 windows on a 2-process
pool. A rerun with the warm cache of the single run is timed too. The last line is machine-readable:
``RESULT seconds=<single run> decisions=<n> fanout_equal=<true|false> sharpe=<net Sharpe>``.

Run: ``.venv/bin/python benchmarks/bench_backtest.py``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date

import numpy as np
import pandas as pd

from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, INDEX_SYMBOL, BundledSource
from portfolio_engine.backtest import (
    BacktestResult,
    EstimationWindow,
    TransactionCosts,
    WalkForwardWindow,
    calendar_schedule,
    merge_results,
    metrics_table,
    run_backtest,
    run_window,
    split_windows,
)
from portfolio_engine.backtest.regime_policy import RegimeAwarePolicy
from portfolio_engine.pipeline.optimize import bundled_spec

N_WINDOWS = 8
WORKERS = 2
COSTS = TransactionCosts(cost_bps=10.0)


def load() -> tuple[pd.DataFrame, pd.Series]:
    """Daily simple returns of the 20 stocks and of the index on the dates all of them trade."""
    symbols = [*DEFAULT_UNIVERSE, INDEX_SYMBOL]
    bars = BundledSource().fetch(symbols, start=date(1990, 1, 1), end=date(2022, 12, 31))
    prices = bars.pivot(index="date", columns="symbol", values="adj_close").sort_index()[symbols]
    returns = prices.pct_change(fill_method=None).iloc[1:].dropna(how="any")
    returns.index = pd.DatetimeIndex(returns.index, name="date")
    return returns[list(DEFAULT_UNIVERSE)], returns[INDEX_SYMBOL]


def make_policy(index: pd.Series) -> RegimeAwarePolicy:
    """A fresh regime-aware policy with the bundled default spec."""
    spec = bundled_spec("default")
    assert spec is not None
    return RegimeAwarePolicy(spec, index_returns=index)


def _window(args: tuple[pd.DataFrame, pd.Series, dict, int]) -> BacktestResult:
    returns, index, task, length = args
    return run_window(
        returns,
        make_policy(index),
        WalkForwardWindow.from_dict(task),
        window=EstimationWindow("rolling", length),
        costs=COSTS,
    )


def equal(a: BacktestResult, b: BacktestResult) -> bool:
    """Bit-for-bit equality of the daily series and the decisions."""
    return (
        a.net_returns.equals(b.net_returns)
        and a.costs.equals(b.costs)
        and a.weights.equals(b.weights)
        and a.decision_dates.equals(b.decision_dates)
    )


def main() -> None:
    """Run the three configurations and print timings, metrics and the RESULT line."""
    logging.disable(logging.WARNING)  # sparse-regime shrinkage warnings are expected on short windows
    returns, index = load()
    spec = bundled_spec("default")
    assert spec is not None and spec.lookback_days is not None
    length = spec.lookback_days
    schedule = calendar_schedule(returns.index, "monthly", min_history=length)
    kwargs = {"window": EstimationWindow("rolling", length), "costs": COSTS}
    print(f"data: {returns.shape[1]} stocks, {len(returns)} days {returns.index[0].date()}..{returns.index[-1].date()}")

    policy = make_policy(index)
    start = time.perf_counter()
    single = run_backtest(returns, policy, schedule, **kwargs)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    states = pd.Series(policy.regimes).value_counts(dropna=False).to_dict()
    print(f"single process: {seconds:.1f} s, {len(single.decision_dates)} decisions, {len(policy.refit_dates)} refits")
    print(f"  regimes at decisions: {states}")

    start = time.perf_counter()
    run_backtest(returns, policy, schedule, **kwargs)  # type: ignore[arg-type]
    print(f"rerun, cached models: {time.perf_counter() - start:.1f} s")

    tasks = split_windows(schedule, N_WINDOWS)
    start = time.perf_counter()
    sequential = merge_results([_window((returns, index, t.to_dict(), length)) for t in tasks])
    seq_seconds = time.perf_counter() - start
    print(f"fan-out, {N_WINDOWS} windows sequential: {seq_seconds:.1f} s, equal to single: {equal(sequential, single)}")

    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=WORKERS) as pool:
        parts = list(pool.map(_window, [(returns, index, t.to_dict(), length) for t in tasks]))
    pooled = merge_results(parts)
    pool_seconds = time.perf_counter() - start
    print(
        f"fan-out, {N_WINDOWS} windows on {WORKERS} processes: {pool_seconds:.1f} s "
        f"(speed-up {seq_seconds / pool_seconds:.2f}x), equal to single: {equal(pooled, single)}"
    )
    fanout_equal = equal(sequential, single) and equal(pooled, single)
    gap = float((pooled.weights - single.weights).abs().to_numpy().max())
    print(f"  largest weight difference, pool vs single: {gap:.3g}")

    net = single.net_returns
    equal_weight = returns.loc[net.index].mean(axis=1).rename("equal_weight")
    table = metrics_table(
        {"regime_aware": net, "equal_weight": equal_weight},
        benchmark={"^GSPC": index.loc[net.index]},
        costs_by_name={"regime_aware": single.costs},
    )
    rows = [r for r in ("CAGR", "volatility", "Sharpe", "Sortino", "max drawdown", "Calmar") if r in table.index]
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 120):
        print(table.loc[rows] if rows else table)
    sharpe = float(table.loc["Sharpe", "regime_aware"]) if "Sharpe" in table.index else float("nan")
    print(
        f"RESULT seconds={seconds:.2f} decisions={len(single.decision_dates)} "
        f"fanout_equal={str(fanout_equal).lower()} sharpe={sharpe:.4f}"
    )
    assert np.isfinite(sharpe)


if __name__ == "__main__":
    main()
