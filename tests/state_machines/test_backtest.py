"""The real backtest state machine JSON, executed end to end by the local runner on the bundled data."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import BundledSource, load_ff3_monthly, load_sectors
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.backtest import EstimationWindow, TransactionCosts, calendar_schedule, run_backtest
from portfolio_engine.contracts.backtest import BacktestRequest, BacktestWindowOutput
from portfolio_engine.local.runner import LocalStateMachineRunner
from portfolio_engine.pipeline.backtest import build_policy, load_backtest, resolve_backtest_spec
from portfolio_engine.pipeline.optimize import price_returns

SMALL = ["AAPL", "JPM", "XOM"]
REQUEST = {"symbols": SMALL, "start": "2015-01-01", "end": "2022-12-31", "n_windows": 3}


@pytest.fixture
def lake(data_dir: Path) -> ParquetLake:
    """The local lake the handlers use, holding curated bundled prices of three stocks and the index."""
    lake = ParquetLake(str(data_dir / "lake"))
    bars = BundledSource().fetch([*SMALL, "^GSPC"], start=date(2013, 1, 1), end=date(2022, 12, 28))
    lake.write_bars(bars, "bundled", zone="curated")
    lake.write_reference("ff3_monthly", load_ff3_monthly())
    lake.write_reference("sectors", pd.DataFrame(sorted(load_sectors().items()), columns=["symbol", "sector"]))
    return lake


def _run(payload: dict, name: str) -> tuple:
    events: list[tuple[str, str]] = []
    runner = LocalStateMachineRunner(listener=lambda e, f, d: events.append((e, f)), wait_scale=0)
    return runner.run("backtest", payload, name=name), events


def test_a_monthly_walk_forward_fans_out_and_merges_into_the_single_process_backtest(lake: ParquetLake) -> None:
    # When the backtest machine runs three windows of a monthly rolling-252-day walk-forward, 2015-2022
    result, events = _run(REQUEST, "bt-small")
    # Then it plans, runs every window, aggregates, and succeeds
    assert result.status == "SUCCEEDED", result.cause
    assert [f for e, f in events if e == "start"] == [
        "start_run",
        "plan_backtest",
        *["run_backtest_window"] * 3,
        "aggregate_backtest",
        "commit_run",
    ]
    # and the run is recorded, committed in the backtest stream of its spec, changing no portfolio
    store = SqliteStore(Path(lake.uri).parent / "store.db")
    run = store.view("run", "bt-small")
    assert run is not None and run["status"] == "SUCCEEDED" and run["stream"] == "backtest/default"
    assert (
        run["result"]["result_key"] == result.output["result"]["result_key"]
        and store.view("portfolio", "default") is None
    )
    plan, out = result.output["plan"], result.output["result"]
    assert plan["symbols"] == SMALL and len(plan["windows"]) == 3
    # 2015's first 252 trading days are history only: the first decision is the end of January 2016
    assert plan["first_decision"] == "2016-01-29" and plan["last_decision"] == "2022-11-30"
    assert plan["n_decisions"] == 83
    # And the merged daily net returns equal one single-process run_backtest on the same inputs, exactly
    returns = price_returns(lake, "bundled", SMALL, "1d").loc["2015-01-01":"2022-12-31"]
    spec = resolve_backtest_spec(BacktestRequest(), SMALL)
    single = run_backtest(
        returns,
        build_policy(spec, "spec"),
        calendar_schedule(returns.index, "monthly", min_history=252),
        window=EstimationWindow("rolling", 252),
        costs=TransactionCosts(cost_bps=10.0),
    )
    merged = load_backtest(lake, [BacktestWindowOutput.model_validate(w) for w in result.output["windows"]])
    assert merged.net_returns.index.equals(single.net_returns.index)
    assert np.array_equal(merged.net_returns.to_numpy(), single.net_returns.to_numpy())
    assert np.array_equal(merged.weights.to_numpy(), single.weights.to_numpy())
    # And the stored result measures it against the index and the equal-weight universe
    assert out["columns"] == ["default", "^GSPC", "equal_weight", "min_variance"]
    # everything is attributed but on the factor ETFs, which this lake does not hold
    assert [r.split(":")[0] for r in out["skipped"]] == ["ETF factor attribution skipped"]
    assert out["n_days"] == len(single.net_returns) and out["n_decisions"] == 83
    stored = lake.get_json(out["result_key"])
    cagr = float(single.equity.iloc[-1] ** (252 / len(single.net_returns)) - 1)
    assert out["headline"]["CAGR"] == pytest.approx(cagr, rel=1e-12)
    assert stored["metrics"]["default"]["CAGR"] == pytest.approx(cagr, rel=1e-12)
    spx = lake.read_bars("bundled", ["^GSPC"]).set_index("date")["adj_close"]
    spx.index = pd.DatetimeIndex(spx.index)
    first, last = single.net_returns.index[0], single.net_returns.index[-1]
    before = spx.loc[: first - pd.Timedelta(days=1)].iloc[-1]
    assert stored["equity"]["^GSPC"][last.date().isoformat()] == pytest.approx(spx.asof(last) / before, rel=1e-12)
    # And the Fama-French attribution regresses the whole months Feb 2016 .. Nov 2018 (the factors' last month)
    factor = stored["attribution"]["fama_french"]
    assert factor["months"] == 34 and 0.0 < factor["r_squared"] <= 1.0
    summary = factor["summary"]
    parts = sum(summary[k]["contribution (annual)"] for k in ("Mkt-RF", "SMB", "HML", "alpha", "residual"))
    assert parts == pytest.approx(summary["total"]["contribution (annual)"], abs=1e-12)
    # whose total is 12 times the mean monthly excess return of the strategy's compounded net returns
    net = single.net_returns.loc["2016-02-01":"2018-11-30"]
    monthly = (1 + net).groupby(net.index.to_period("M")).prod() - 1
    rf = load_ff3_monthly()["RF"]
    rf.index = rf.index.to_period("M")
    excess = monthly - rf.reindex(monthly.index)
    assert summary["total"]["contribution (annual)"] == pytest.approx(12 * float(excess.mean()), rel=1e-9)


def test_an_invalid_spec_fails_the_plan_with_its_error_name(lake: ParquetLake) -> None:
    # When the spec names an unknown optimization method
    result, events = _run({**REQUEST, "spec": {"name": "bad", "method": "astrology"}}, "bt-bad-spec")
    # Then the plan fails with SpecificationError and no window runs
    assert result.status == "FAILED" and result.error == "SpecificationError", (result.error, result.cause)
    assert [f for e, f in events if e == "start"] == ["start_run", "plan_backtest", "record_failure"]
    run = SqliteStore(Path(lake.uri).parent / "store.db").view("run", "bt-bad-spec")
    assert run is not None and run["status"] == "FAILED" and run["failed_state"] == "PlanBacktest"


def test_the_regime_aware_policy_runs_through_the_same_machine(lake: ParquetLake) -> None:
    # When the regime-aware policy (an HMM on the index refitted yearly, point in time) runs over two windows
    result, _ = _run({**REQUEST, "policy": "regime_aware", "n_windows": 2, "start": "2019-01-01"}, "bt-regime")
    # Then it succeeds and the default spec it ran was regime-aware
    assert result.status == "SUCCEEDED", result.cause
    stored = ParquetLake(lake.uri).get_json(result.output["result"]["result_key"])
    assert stored["request"]["policy"] == "regime_aware" and result.output["result"]["n_decisions"] == 35
    # And the state chosen at each of the 35 decisions is stored, window by window and merged in the result
    by_window = {d: s for w in result.output["windows"] for d, s in w["regimes"].items()}
    assert stored["regimes"] == by_window and len(by_window) == 35
    assert list(by_window) == stored["weights"]["dates"]
    # 2013-2018 gives the HMM its 504 days before the 2019 anchor: every decision has a state
    assert set(by_window.values()) <= {"calm", "turbulent"} and len(set(by_window.values())) >= 1
