"""PlanBacktest, RunBacktestWindow and AggregateBacktest on a small real lake, against hand computations."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import BundledSource, load_sectors
from portfolio_engine.backtest import (
    DecisionContext,
    EstimationWindow,
    SpecPolicy,
    TransactionCosts,
    calendar_schedule,
    run_backtest,
    split_windows,
)
from portfolio_engine.cli.backtest import report_inputs
from portfolio_engine.contracts.backtest import AggregateBacktestInput, BacktestRequest, PlanBacktestInput
from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization import PortfolioSpec
from portfolio_engine.pipeline.backtest import (
    EqualWeightPolicy,
    FallbackPolicy,
    aggregate_backtest,
    build_policy,
    load_backtest,
    load_returns,
    plan_backtest,
    run_backtest_window,
)
from portfolio_engine.pipeline.backtest_analysis import regime_frame
from portfolio_engine.pipeline.optimize import price_returns
from portfolio_engine.reports.backtest import backtest_figures_png, backtest_report_html

STOCKS = ["JNJ", "KO", "PG"]
MIN_VAR = {"name": "mv", "method": "min_variance", "estimators": {"mean": "historical", "covariance": "sample"}}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> ParquetLake:
    lake = ParquetLake(str(tmp_path_factory.mktemp("bt") / "lake"))
    bars = BundledSource().fetch([*STOCKS, "^GSPC"], start=date(2016, 1, 1), end=date(2022, 12, 28))
    lake.write_bars(bars, "bundled", zone="curated")
    # Sectors for Brinson; no ff3_monthly table, so the Fama-French attribution is skipped
    lake.write_reference("sectors", pd.DataFrame(sorted(load_sectors().items()), columns=["symbol", "sector"]))
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
    assert out.columns == ["mv", "^GSPC", "equal_weight", "min_variance"] and out.n_decisions == plan.n_decisions
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


@pytest.fixture(scope="module")
def aggregated(lake: ParquetLake) -> dict:
    """A 4-window min-variance backtest run and aggregated once for the tests below."""
    plan = plan_backtest(PlanBacktestInput(run_id="agg", request=_request()), lake=lake)
    outputs = [run_backtest_window(w, lake=lake) for w in plan.windows]
    task = AggregateBacktestInput(
        run_id="agg",
        config_key=plan.config_key,
        returns_key=plan.returns_key,
        benchmarks_key=plan.benchmarks_key,
        windows=outputs,
    )
    out = aggregate_backtest(task, lake=lake)
    returns = load_returns(lake, plan.returns_key)
    merged = load_backtest(lake, outputs)
    return {"out": out, "stored": lake.get_json(out.result_key), "returns": returns, "merged": merged}


def test_the_minimum_variance_benchmark_is_a_single_process_run_of_the_same_policy(aggregated: dict) -> None:
    # Given the aggregate's stored min_variance benchmark
    stored, returns, merged = aggregated["stored"], aggregated["returns"], aggregated["merged"]
    # When a long-only sample-covariance minimum-variance spec runs alone on the same window, costs and decisions
    spec = PortfolioSpec.from_dict({**MIN_VAR, "name": "alone"})
    alone = run_backtest(
        returns,
        SpecPolicy(spec),
        merged.decision_dates,
        window=EstimationWindow("rolling", 252),
        costs=TransactionCosts(cost_bps=20.0),
    )
    # Then its equity is the stored benchmark's, and the same as the (min-variance) strategy's own
    last = alone.equity.index[-1].date().isoformat()
    assert stored["equity"]["min_variance"][last] == pytest.approx(float(alone.equity.iloc[-1]), rel=1e-10)
    assert stored["metrics"]["min_variance"]["Sharpe"] == pytest.approx(stored["metrics"]["mv"]["Sharpe"], rel=1e-9)
    assert stored["regimes"] == {} and aggregated["out"].columns[-1] == "min_variance"


def test_brinson_effects_add_up_to_the_compounded_active_return_against_equal_weight(aggregated: dict) -> None:
    stored, returns, merged = aggregated["stored"], aggregated["returns"], aggregated["merged"]
    brinson = stored["attribution"]["brinson"]
    # Given the equal-weight benchmark's own engine run on the same decisions (gross of costs)
    equal = run_backtest(returns, EqualWeightPolicy(), merged.decision_dates, window=EstimationWindow("rolling", 252))
    after = merged.gross_returns.index > merged.decision_dates[0]
    active = float((1 + merged.gross_returns[after]).prod() - (1 + equal.gross_returns[after]).prod())
    # Then the Carino-linked effects sum to the compounded gross active return, with a period per rebalance
    effects = sum(brinson["total"][k] for k in ("allocation", "selection", "interaction"))
    assert effects == pytest.approx(active, rel=1e-9, abs=1e-12)
    assert brinson["total"]["total"] == pytest.approx(active, rel=1e-9, abs=1e-12)
    assert len(brinson["by_period"]) == len(merged.decision_dates)
    # and each period's active return is the compounded daily gross difference over its holding days
    first, second = merged.decision_dates[0], merged.decision_dates[1]
    held = (merged.gross_returns.index > first) & (merged.gross_returns.index <= second)
    period = float((1 + merged.gross_returns[held]).prod() - (1 + equal.gross_returns[held]).prod())
    assert brinson["by_period"][first.date().isoformat()]["active"] == pytest.approx(period, rel=1e-9)
    # JNJ (health care), KO and PG (staples): two sectors; no ff3 table, so Fama-French is skipped and said so
    assert set(brinson["linked"]) == {"Consumer Staples", "Health Care"}
    assert "fama_french" not in stored["attribution"]
    assert any("ff3_monthly" in reason for reason in stored["skipped"])
    # every holding period (the last one to the end of the data) has two days or more
    assert stored["out_of_sample"]["volatility"]["decisions"] == len(merged.decision_dates)


def test_regime_frame_is_a_one_hot_step_series_of_the_states_chosen() -> None:
    # Given states chosen at three decisions, the first before any model
    days = pd.bdate_range("2020-01-01", "2020-01-10")
    chosen = {"2020-01-02": None, "2020-01-06": "calm", "2020-01-08": "turbulent"}
    # When it becomes a frame over the days
    frame = regime_frame(chosen, days)
    # Then each state holds from its decision to the next; days without a state are NaN
    assert list(frame.columns) == ["calm", "turbulent"]
    assert frame.loc[:"2020-01-03"].isna().all().all()
    assert frame.loc["2020-01-06":"2020-01-07", "calm"].eq(1.0).all()
    assert frame.loc["2020-01-08":, "turbulent"].eq(1.0).all() and frame.loc["2020-01-08":, "calm"].eq(0.0).all()


def test_the_report_shows_the_attribution_and_shades_the_regimes(aggregated: dict) -> None:
    # Given the stored result, with states at its decisions as a regime-aware run stores them
    stored, merged = dict(aggregated["stored"]), aggregated["merged"]
    states = ["calm" if k % 3 else "turbulent" for k in range(len(merged.decision_dates))]
    stored["regimes"] = {d.date().isoformat(): s for d, s in zip(merged.decision_dates, states, strict=True)}
    inputs = report_inputs(stored, merged.net_returns.index)
    equity = pd.DataFrame({k: pd.Series(v) for k, v in stored["equity"].items()})
    equity.index = pd.DatetimeIndex(equity.index)
    # When the report is drawn
    page = backtest_report_html(
        title="t", equity=equity, net_returns=merged.net_returns, weights=merged.weights,
        metrics=pd.DataFrame(stored["metrics"]).astype(float), **inputs,
    )  # fmt: skip
    # Then it has the regime, attribution and out-of-sample sections and the attribution chart
    assert "<h2>Regimes</h2>" in page and "<h2>Attribution</h2>" in page and "alt='attribution'" in page
    assert "Brinson-Fachler" in page and "<h2>Out-of-sample analysis</h2>" in page
    assert inputs["regimes"].sum(axis=1).dropna().eq(1.0).all()
    # and the shading changes the equity chart
    figures = {
        k: backtest_figures_png(equity=equity, net_returns=merged.net_returns, weights=merged.weights, regimes=r)
        for k, r in (("shaded", inputs["regimes"]), ("plain", None))
    }
    assert figures["shaded"]["equity"] != figures["plain"]["equity"]
