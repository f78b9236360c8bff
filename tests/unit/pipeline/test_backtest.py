"""PlanBacktest, RunBacktestWindow and AggregateBacktest on a small real lake, against hand computations."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import BundledSource
from portfolio_engine.backtest import DecisionContext, SpecPolicy, calendar_schedule, split_windows
from portfolio_engine.contracts.backtest import AggregateBacktestInput, BacktestRequest, PlanBacktestInput
from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization import PortfolioSpec
from portfolio_engine.pipeline.backtest import (
    FallbackPolicy,
    aggregate_backtest,
    build_policy,
    load_backtest,
    load_returns,
    plan_backtest,
    run_backtest_window,
)
from portfolio_engine.pipeline.optimize import price_returns

STOCKS = ["JNJ", "KO", "PG"]
MIN_VAR = {"name": "mv", "method": "min_variance", "estimators": {"mean": "historical", "covariance": "sample"}}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> ParquetLake:
    lake = ParquetLake(str(tmp_path_factory.mktemp("bt") / "lake"))
    bars = BundledSource().fetch([*STOCKS, "^GSPC"], start=date(2016, 1, 1), end=date(2022, 12, 28))
    lake.write_bars(bars, "bundled", zone="curated")
    return lake


def _request(**changes: object) -> BacktestRequest:
    return BacktestRequest(**{"spec": MIN_VAR, "start": date(2017, 1, 1), "cost_bps": 20.0, "n_windows": 4, **changes})


def test_plan_stores_the_returns_once_and_splits_every_decision_into_windows(lake: ParquetLake) -> None:
    # When a monthly backtest is planned on every curated stock (the index is a benchmark, not held)
    plan = plan_backtest(PlanBacktestInput(run_id="p1", request=_request()), lake=lake)
    # Then the universe is the stocks, the stored returns are the lake's returns from the start date
    assert plan.symbols == STOCKS
    expected = price_returns(lake, "bundled", STOCKS, "1d").loc["2017-01-01":]
    pd.testing.assert_frame_equal(
        load_returns(lake, plan.returns_key), expected, check_freq=False, check_column_type=False
    )
    # and the windows are split_windows of the calendar's month ends after 252 days of history
    decisions = calendar_schedule(expected.index, "monthly", min_history=252)
    assert [w.model_dump(include={"index", "decisions", "previous", "end"}) for w in plan.windows] == [
        w.to_dict() for w in split_windows(decisions, 4)
    ]
    # and the index's stored return over the backtest equals its price ratio
    bench = load_returns(lake, plan.benchmarks_key)["^GSPC"]
    spx = lake.read_bars("bundled", ["^GSPC"]).set_index("date")["adj_close"]
    spx.index = pd.DatetimeIndex(spx.index)
    growth = float((1 + bench.iloc[1:]).prod())
    assert growth == pytest.approx(spx.asof(expected.index[-1]) / spx.asof(expected.index[0]), rel=1e-12)


def _equal_weight_by_hand(returns: pd.DataFrame, decisions: pd.DatetimeIndex, bps: float) -> pd.Series:
    """Equal weights set at each decision's close; day t's return accrues to the weights held before.

    The cost is ``bps`` of the traded weights, a fraction of the value at that close.
    """
    n = returns.shape[1]
    weights, out = np.zeros(n), {}
    for day, row in returns.loc[decisions[0] :].iterrows():
        gross = float(weights @ row.to_numpy())
        weights = weights * (1 + row.to_numpy()) / (1 + gross)
        cost = 0.0
        if day in decisions:
            # a fraction of the close's value, in units of the previous close's (return units)
            cost = bps / 1e4 * float(np.abs(np.full(n, 1 / n) - weights).sum()) * (1 + gross)
            weights = np.full(n, 1 / n)
        out[day] = gross - cost
    return pd.Series(out)


def test_windows_then_aggregate_store_the_strategy_and_an_equal_weight_benchmark(lake: ParquetLake) -> None:
    plan = plan_backtest(PlanBacktestInput(run_id="p2", request=_request()), lake=lake)
    # When every window runs (in reverse order) and the aggregate merges them
    outputs = [run_backtest_window(w, lake=lake) for w in reversed(plan.windows)]
    out = aggregate_backtest(
        AggregateBacktestInput(
            run_id="p2",
            config_key=plan.config_key,
            returns_key=plan.returns_key,
            benchmarks_key=plan.benchmarks_key,
            windows=outputs,
        ),
        lake=lake,
    )
    # Then the windows tile the days once and the equal-weight equity matches a hand-written walk
    merged = load_backtest(lake, outputs)
    assert sum(o.n_days for o in outputs) == out.n_days == len(merged.net_returns)
    assert out.columns == ["mv", "^GSPC", "equal_weight"] and out.n_decisions == plan.n_decisions
    returns = load_returns(lake, plan.returns_key)
    by_hand = _equal_weight_by_hand(returns, merged.decision_dates, 20.0)
    stored = lake.get_json(out.result_key)
    last = by_hand.index[-1].date().isoformat()
    assert stored["equity"]["equal_weight"][last] == pytest.approx(float((1 + by_hand).prod()), rel=1e-10)
    # and the strategy pays 20 bp of its turnover on decision days only; its headline CAGR is that of its equity
    on = merged.decision_dates
    expected_costs = 20e-4 * merged.turnover * (1 + merged.gross_returns.loc[on])
    np.testing.assert_allclose(merged.costs.loc[on].to_numpy(), expected_costs.to_numpy(), rtol=1e-12)
    assert merged.costs.drop(on).eq(0).all()
    cagr = float((1 + merged.net_returns).prod() ** (252 / len(merged.net_returns)) - 1)
    assert out.headline["CAGR"] == pytest.approx(cagr, rel=1e-12)


def test_bad_inputs_fail_before_any_window(lake: ParquetLake) -> None:
    # An unknown method, and a period too short for one decision, are specification errors
    with pytest.raises(SpecificationError):
        plan_backtest(PlanBacktestInput(run_id="b1", request=_request(spec={"method": "astrology"})), lake=lake)
    with pytest.raises(SpecificationError, match="No decision date"):
        plan_backtest(PlanBacktestInput(run_id="b2", request=_request(end=date(2017, 6, 30))), lake=lake)
    # a benchmark held in the universe is refused by the contract
    with pytest.raises(ValidationError, match="also benchmarks"):
        BacktestRequest(symbols=["KO", "^GSPC"])
    with pytest.raises(SpecificationError, match="index"):
        build_policy(PortfolioSpec.from_dict(MIN_VAR), "regime_aware", None)


def test_an_infeasible_max_sharpe_decision_falls_back_to_minimum_variance(lake: ParquetLake) -> None:
    # Given a history and a max-Sharpe spec whose risk-free rate no asset beats
    history = load_returns(
        lake, plan_backtest(PlanBacktestInput(run_id="f1", request=_request()), lake=lake).returns_key
    )
    spec = PortfolioSpec.from_dict({**MIN_VAR, "method": "max_sharpe", "risk_free_rate": 5.0})
    policy = build_policy(spec, "spec")
    context = DecisionContext(date=history.index[-1])
    # When it decides, Then it holds the minimum-variance portfolio of the same constraints
    assert isinstance(policy, FallbackPolicy)
    expected = SpecPolicy(spec.model_copy(update={"method": "min_variance"}))(history.iloc[:-1], context)
    pd.testing.assert_series_equal(policy(history.iloc[:-1], context), expected)
