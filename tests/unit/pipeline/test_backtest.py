"""PlanBacktest, RunBacktestWindow and AggregateBacktest on a small real lake, against hand computations."""

from __future__ import annotations

from datetime import date
from pathlib import Path

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
from portfolio_engine.backtest.metrics import metrics_table
from portfolio_engine.cli.backtest import report_inputs
from portfolio_engine.contracts.backtest import AggregateBacktestInput, BacktestRequest, PlanBacktestInput
from portfolio_engine.exceptions import EmptyDataError, SpecificationError
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
from portfolio_engine.pipeline.backtest_analysis import daily_risk_free, regime_frame
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


def _run(lake: ParquetLake, run_id: str, request: BacktestRequest) -> tuple[dict, object]:
    plan = plan_backtest(PlanBacktestInput(run_id=run_id, request=request), lake=lake)
    outputs = [run_backtest_window(w, lake=lake) for w in plan.windows]
    out = aggregate_backtest(
        AggregateBacktestInput(
            run_id=run_id,
            config_key=plan.config_key,
            returns_key=plan.returns_key,
            benchmarks_key=plan.benchmarks_key,
            windows=outputs,
        ),
        lake=lake,
    )
    return lake.get_json(out.result_key), load_backtest(lake, outputs)


def test_a_constant_risk_free_rate_is_the_sharpe_ratios_rate(lake: ParquetLake, aggregated: dict) -> None:
    # Given a backtest with a 3% annual risk-free rate
    stored, merged = _run(lake, "rf1", _request(risk_free=0.03, n_windows=2))
    # Then the strategy's Sharpe is mean / std of the excess over (1.03)^(1/252) - 1 a day, times sqrt(252)
    excess = merged.net_returns.to_numpy() - (1.03 ** (1 / 252) - 1)
    closed_form = excess.mean() / excess.std(ddof=1) * np.sqrt(252)
    assert stored["metrics"]["mv"]["Sharpe"] == pytest.approx(closed_form, rel=1e-10)
    by_table = metrics_table({"mv": merged.net_returns}, risk_free=0.03)["mv"]["Sharpe"]
    assert stored["metrics"]["mv"]["Sharpe"] == pytest.approx(by_table, rel=1e-12)
    # and it is lower than the zero-rate run's (same returns: the portfolio holds no cash)
    assert stored["metrics"]["mv"]["Sharpe"] < aggregated["stored"]["metrics"]["mv"]["Sharpe"] - 0.05
    assert stored["request"]["risk_free"] == 0.03
    assert daily_risk_free(0.03) == pytest.approx(1.03 ** (1 / 252) - 1, rel=1e-15)


def _weekly_yields(start: str) -> pd.DataFrame:
    """A synthetic treasury_curve table: Friday quotes, the 3-month yield rising from 0.5% to 4.5%."""
    dates = pd.date_range(start, "2022-12-30", freq="W-FRI", name="date")
    three = np.linspace(0.005, 0.045, len(dates))
    return pd.DataFrame({"1month": three - 0.001, "3month": three, "10year": three + 0.01}, index=dates)


def test_treasury_3m_uses_the_lakes_3_month_yields_forward_filled(lake: ParquetLake) -> None:
    # Given a lake whose treasury_curve table quotes the 3-month yield every Friday
    quotes = _weekly_yields("2016-01-01")
    lake.write_reference("treasury_curve", quotes)
    # When the backtest's risk-free rate is treasury_3m
    stored, merged = _run(lake, "rf2", _request(risk_free="treasury_3m", n_windows=2))
    # Then its Sharpe is metrics_table's on the raw weekly quotes (its own forward fill)
    by_table = metrics_table({"mv": merged.net_returns}, risk_free=quotes["3month"])["mv"]["Sharpe"]
    assert stored["metrics"]["mv"]["Sharpe"] == pytest.approx(by_table, rel=1e-10)
    # which differs from the constant rate at the yields' mean
    constant = metrics_table({"mv": merged.net_returns}, risk_free=float(quotes["3month"].mean()))["mv"]["Sharpe"]
    assert abs(by_table - constant) > 1e-3
    # and the stored daily yields are the last Friday's quote on each day
    stored_yields = load_returns(lake, "backtests/rf2/risk_free.parquet")["annual"]
    day = pd.Timestamp("2019-07-03")  # a Wednesday: the quote of Friday 2019-06-28
    assert stored_yields.loc[day] == quotes.loc["2019-06-28", "3month"]


def test_treasury_3m_without_yields_for_the_first_days_fails_at_the_plan(tmp_path: Path) -> None:
    # Given a lake whose yields start after the backtest's first day, and one without the table
    lake = ParquetLake(str(tmp_path))
    bars = BundledSource().fetch([*STOCKS, "^GSPC"], start=date(2016, 1, 1), end=date(2019, 12, 31))
    lake.write_bars(bars, "bundled", zone="curated")
    request = _request(risk_free="treasury_3m")
    # Then the plan fails, naming the missing table, then the first day without a yield
    with pytest.raises(EmptyDataError, match="treasury_curve"):
        plan_backtest(PlanBacktestInput(run_id="rf3", request=request), lake=lake)
    lake.write_reference("treasury_curve", _weekly_yields("2018-01-01"))
    with pytest.raises(EmptyDataError, match="No 3-month Treasury yield on or before 2017-01-03"):
        plan_backtest(PlanBacktestInput(run_id="rf4", request=request), lake=lake)
    # and the contract refuses a percentage and an unknown series
    with pytest.raises(ValidationError, match="annual rate in decimal"):
        BacktestRequest(risk_free=3.0)
    with pytest.raises(ValidationError):
        BacktestRequest(risk_free="libor")


def test_the_result_stores_each_windows_figures(aggregated: dict) -> None:
    # Given the 4-window run's stored per-window figures
    stored, merged = aggregated["stored"], aggregated["merged"]
    windows = stored["windows"]
    # Then there is a row per window, tiling the days in order
    assert list(windows) == ["0", "1", "2", "3"]
    assert sum(w["days"] for w in windows.values()) == len(merged.net_returns)
    assert windows["0"]["start"] == merged.net_returns.index[0].date().isoformat()
    assert windows["3"]["end"] == merged.net_returns.index[-1].date().isoformat()
    # and each window's total return compounds the merged net returns over its days; costs and turnover add up
    for w in windows.values():
        days = merged.net_returns.loc[w["start"] : w["end"]]
        assert len(days) == w["days"]
        assert w["total return"] == pytest.approx(float((1 + days).prod() - 1), rel=1e-10)
    assert sum(w["costs"] for w in windows.values()) == pytest.approx(merged.total_costs, rel=1e-10)
    assert sum(w["turnover"] for w in windows.values()) == pytest.approx(float(merged.turnover.sum()), rel=1e-10)


def test_factor_etfs_in_the_lake_give_a_daily_factor_attribution_that_adds_up(tmp_path: Path) -> None:
    # Given stocks, the index and the five factor ETFs curated in the lake (the ETFs stay out of the universe)
    lake = ParquetLake(str(tmp_path))
    etfs = ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"]
    bars = BundledSource().fetch([*STOCKS, "^GSPC", *etfs], start=date(2016, 1, 1), end=date(2019, 12, 31))
    lake.write_bars(bars, "bundled", zone="curated")
    stored, result = _run(lake, "etf1", _request(symbols=None, spec={**MIN_VAR, "universe": None}))
    # Then the universe is the stocks only, and the ETF attribution's parts add up to the mean excess return
    assert sorted(result.weights.columns) == sorted(STOCKS)
    etf = stored["attribution"]["etf_factors"]
    summary = pd.DataFrame.from_dict(etf["summary"], orient="index")
    assert sorted(i for i in summary.index if i in etfs) == sorted(etfs) and 0 < etf["r_squared"] <= 1
    parts = summary.drop(index="total")["contribution (annual)"].sum()
    assert parts == pytest.approx(summary.loc["total", "contribution (annual)"], rel=1e-9, abs=1e-12)
    # and without the ETFs the attribution is skipped with a reason that says how to get them
    stored, _ = _run(lake, "etf2", _request(symbols=STOCKS, factor_etfs=["NOPE"]))
    assert "etf_factors" not in stored["attribution"]
    assert any("NOPE" in reason for reason in stored["skipped"])
