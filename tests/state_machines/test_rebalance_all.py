"""The real rebalance_all machine: every active portfolio, one child run each, one failure stops no other."""

from __future__ import annotations

from pathlib import Path

from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.local.runner import LocalStateMachineRunner
from portfolio_engine.records.events import NewEvent, portfolio_stream

UNIVERSE = ["AAPL", "JPM", "XOM"]
FIRE = "2022-12-28T22:00:00Z"


def _portfolio(store: SqliteStore, name: str, **spec: object) -> None:
    document = {"name": name, "universe": UNIVERSE, "constraints": {"weight_bounds": [0.0, 0.6]}, **spec}
    created = NewEvent(type="PortfolioCreated", data={"spec": document, "origin": "cli"})
    store.append(portfolio_stream(name), [created], expected_version=0)


def test_each_portfolio_runs_once_per_trigger_and_a_failure_stops_no_other(data_dir: Path) -> None:
    # GIVEN two stored portfolios, one of which no portfolio can satisfy (a 300% target return), and an archived one
    store = SqliteStore(data_dir / "store.db")
    _portfolio(store, "core", method="min_variance")
    _portfolio(store, "dreamer", method="target_return", target_return=3.0)
    _portfolio(store, "old", method="min_variance")
    store.append(portfolio_stream("old"), [NewEvent(type="PortfolioArchived")], expected_version=1)
    runner = LocalStateMachineRunner(wait_scale=0)
    payload = {"trigger": "schedule", "scheduled_for": FIRE, "source": "bundled"}
    # WHEN the batch runs for one schedule fire time
    first = runner.run("rebalance_all", payload, name="batch-1")
    # THEN each active portfolio got one child run named by the fire time; the failing one failed alone
    assert first.succeeded, first.cause
    results = {r["run_id"]: r["status"] for r in first.output["results"]}
    assert first.output["portfolios"] == ["core", "dreamer"]
    assert results == {"core-20221228T2200Z": "SUCCEEDED", "dreamer-20221228T2200Z": "FAILED"}
    assert [r.get("error") for r in first.output["results"]] == [None, "InfeasibleError"]
    core, dreamer = store.view("run", "core-20221228T2200Z"), store.view("run", "dreamer-20221228T2200Z")
    assert core is not None and core["trigger"] == "schedule" and core["scheduled_for"].startswith("2022-12-28T22:00")
    assert dreamer is not None and dreamer["status"] == "FAILED" and dreamer["failed_state"] == "Optimize"
    assert store.view("portfolio", "core")["holdings"]["run_id"] == "core-20221228T2200Z"  # type: ignore[index]
    assert store.view("portfolio", "dreamer")["holdings"] is None  # type: ignore[index]
    runs_before = store.views("run", limit=100).items
    # WHEN the same trigger is delivered again (EventBridge delivers at least once)
    again = runner.run("rebalance_all", payload, name="batch-2")
    # THEN no portfolio runs twice: Step Functions refuses a second execution of each name
    assert again.succeeded and {r["status"] for r in again.output["results"]} == {"ALREADY_RAN"}
    assert store.views("run", limit=100).items == runs_before
