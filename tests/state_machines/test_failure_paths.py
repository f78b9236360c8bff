"""Every task of every machine made to fail, always and once: the book is exactly as before a failed run.

A fault is injected through the runner's listener, which fails the invocation like the handler would: with a
named error that no Retry matches (``InjectedFault``: the Catch sends the run to RecordFailure), or once with
``Lambda.ServiceException``, which every task retries (the run then succeeds and commits exactly once).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.local.runner import ExecutionResult, LocalStateMachineRunner
from portfolio_engine.records.events import NewEvent, portfolio_stream

SMALL = {"symbols": ["AAPL", "JPM", "XOM"], "start": "2012-01-01"}
# A spec that trades on any difference and breaches its volatility limit: a committed run would move the
# holdings, take the hedge branch and alert, so a commit that should not have happened cannot hide.
SPEC_V2 = {
    "name": "default",
    "universe": ["AAPL", "JPM", "XOM"],
    "method": "min_variance",
    "constraints": {"weight_bounds": [0.0, 0.6]},
    "method_params": {"rebalance": {"drift_threshold": 0.0, "cost_bps": 0.0}},
    "limits": {"max_volatility": 0.05},
}
REBALANCE_TASKS = [
    "start_run",
    "ingest_prices",
    "validate_prices",
    "build_features",
    "detect_regime",
    "optimize_portfolio",
    "plan_risk",
    "simulate_risk_shard",
    "aggregate_risk",
    "stress_test",
    "check_limits",
    "propose_hedge",
    "send_alerts",
    "commit_run",
]
STATE_OF = {
    "start_run": "StartRun",
    "ingest_prices": "IngestPrices",
    "validate_prices": "ValidatePrices",
    "build_features": "BuildFeatures",
    "detect_regime": "DetectRegime",
    "optimize_portfolio": "Optimize",
    "plan_risk": "PlanRisk",
    "simulate_risk_shard": "SimulateRiskShard",
    "aggregate_risk": "AggregateRisk",
    "stress_test": "StressTest",
    "check_limits": "CheckLimits",
    "propose_hedge": "ProposeHedge",
    "send_alerts": "AlertBreaches",
    "commit_run": "CommitRun",
}


class Fault:
    """A listener that fails ``function``'s invocations (all, or the first ``times``) with ``error``."""

    def __init__(self, function: str, *, times: int | None = None, error: str = "InjectedFault") -> None:
        self.function, self.times, self.error, self.raised = function, times, error, 0
        self.started: list[str] = []

    def __call__(self, event: str, function: str, detail: dict[str, Any]) -> None:
        if event != "start":
            return
        self.started.append(function)
        if function == self.function and (self.times is None or self.raised < self.times):
            self.raised += 1
            raise type(self.error, (Exception,), {})(f"fault injected into {function}")


def run(machine: str, payload: dict[str, Any], name: str, fault: Fault | None = None) -> ExecutionResult:
    return LocalStateMachineRunner(listener=fault, wait_scale=0).run(machine, payload, name=name)


def book(data_dir: Path) -> dict[str, Any]:
    """What a failed run must not change: holdings, spec, latest result, champion; and the runs committed."""
    store = SqliteStore(data_dir / "store.db")
    portfolio = store.view("portfolio", "default") or {}
    committed = [e.run_id for e in store.events(portfolio_stream("default")) if e.type == "RunCommitted"]
    champion = store.view("champion", "regime/market")  # (its stream version moves with every run recorded)
    return {
        **{k: portfolio.get(k) for k in ("holdings", "spec", "spec_version", "latest", "status")},
        "champion": None if champion is None else {k: champion[k] for k in ("champion", "pinned", "lineage")},
        "committed": committed,
    }


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after one committed run of 'default', whose spec then changed so that the next would trade."""
    directory = tmp_path_factory.mktemp("failures") / "spe-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPE_DATA_DIR", str(directory))
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        first = run("rebalance", SMALL, "base")
        assert first.succeeded, first.cause
        store = SqliteStore(directory / "store.db")
        changed = NewEvent(type="SpecChanged", data={"spec": SPEC_V2, "origin": "cli"})
        store.append(portfolio_stream("default"), [changed], expected_version=store.stream_version("portfolio/default"))
    return directory


@pytest.fixture
def copy_of(data_dir: Path) -> Callable[[Path], Path]:
    def copy(source: Path) -> Path:
        shutil.copytree(source, data_dir, dirs_exist_ok=True)
        return data_dir

    return copy


@pytest.mark.parametrize("function", REBALANCE_TASKS)
def test_a_rebalance_task_that_always_fails_leaves_the_book_as_it_was(
    function: str, traded: Path, copy_of: Callable[[Path], Path]
) -> None:
    # GIVEN committed holdings, a champion, a latest result, and a spec the next run would trade on
    data_dir = copy_of(traded)
    before = book(data_dir)
    assert before["holdings"] is not None and before["champion"]["champion"] and before["latest"]
    # WHEN one task fails on every attempt
    fault = Fault(function)
    result = run("rebalance", SMALL, f"fail-{function}", fault)
    # THEN the execution fails with that error, the failure is recorded with its state, and nothing else changed
    assert result.status == "FAILED" and result.error == "InjectedFault", result.cause
    assert fault.raised >= 1 and fault.started[-1] == "record_failure"
    failed = SqliteStore(data_dir / "store.db").view("run", f"fail-{function}")
    assert failed is not None and failed["status"] == "FAILED" and failed["error"] == "InjectedFault"
    assert failed["failed_state"] == STATE_OF[function] and "fault injected" in failed["cause"]
    assert book(data_dir) == before


@pytest.mark.parametrize("function", [f for f in REBALANCE_TASKS if REBALANCE_TASKS.index(f) >= 5])
def test_a_first_run_that_fails_after_training_a_model_promotes_nothing_and_holds_nothing(
    function: str, data_dir: Path
) -> None:
    # GIVEN an empty store: DetectRegime will train the first regime model of this run
    fault = Fault(function)
    # WHEN a later task fails
    result = run("rebalance", SMALL, f"first-{function}", fault)
    # THEN the trained model was not promoted and the portfolio holds nothing
    assert result.status == "FAILED" and "detect_regime" in fault.started
    after = book(data_dir)
    assert after["champion"] is None and after["holdings"] is None and after["latest"] is None
    assert after["committed"] == []


@pytest.mark.slow
@pytest.mark.parametrize("function", REBALANCE_TASKS)
def test_a_rebalance_task_that_fails_once_is_retried_and_the_run_commits_exactly_once(
    function: str, traded: Path, copy_of: Callable[[Path], Path]
) -> None:
    data_dir = copy_of(traded)
    before = book(data_dir)
    fault = Fault(function, times=1, error="Lambda.ServiceException")
    result = run("rebalance", SMALL, f"retry-{function}", fault)
    assert result.succeeded, result.cause
    assert fault.raised == 1 and fault.started.count(function) >= 2 and "record_failure" not in fault.started
    after = book(data_dir)
    # the run traded (the spec says so) and committed once: its result is the latest, its holdings the target
    assert after["committed"] == [*before["committed"], f"retry-{function}"]
    assert after["latest"]["run_id"] == f"retry-{function}" and after["holdings"]["run_id"] == f"retry-{function}"
    # (the book holds the proposal's exact weights; the output rounds them to 1e-10)
    assert after["holdings"]["weights"] == pytest.approx(result.output["portfolio"]["target_weights"], abs=1e-9)
    run_view = SqliteStore(data_dir / "store.db").view("run", f"retry-{function}")
    assert run_view is not None and run_view["status"] == "SUCCEEDED"
    retried = [s for s in run_view["steps"] if s["state"] == STATE_OF[function]]
    assert any(s["attempts"] == 2 for s in retried) or function == "commit_run"


def test_a_commit_decided_on_holdings_another_run_moved_is_refused_and_recorded(
    traded: Path, copy_of: Callable[[Path], Path]
) -> None:
    # GIVEN a run that read the holdings, and another writer that commits new holdings before this run commits
    data_dir = copy_of(traded)
    store = SqliteStore(data_dir / "store.db")
    stream = portfolio_stream("default")
    other = {"weights": {"KO": 1.0}, "as_of": "2022-12-28", "regime": None}

    def race(event: str, function: str, detail: dict[str, Any]) -> None:
        if event == "start" and function == "commit_run":
            store.append(
                stream,
                [
                    NewEvent(type="RunStarted", run_id="other", data={}),
                    NewEvent(type="RunCommitted", run_id="other", data={"holdings_moved": True, "holdings": other}),
                ],
                expected_version=store.stream_version(stream),
            )

    # WHEN the run commits
    result = LocalStateMachineRunner(listener=race, wait_scale=0).run("rebalance", SMALL, name="late")
    # THEN its commit is refused with a typed conflict, recorded, and the other writer's holdings stand
    assert result.status == "FAILED" and result.error == "StaleHoldingsError", result.cause
    late = store.view("run", "late")
    assert late is not None and late["status"] == "FAILED" and late["failed_state"] == "CommitRun"
    holdings = store.view("portfolio", "default")["holdings"]  # type: ignore[index]
    assert holdings["run_id"] == "other" and holdings["weights"] == {"KO": 1.0}


def test_the_same_run_id_twice_runs_once_and_the_first_record_is_untouched(
    traded: Path, copy_of: Callable[[Path], Path]
) -> None:
    data_dir = copy_of(traded)
    store = SqliteStore(data_dir / "store.db")
    recorded = store.view("run", "base")
    fault = Fault("never")
    result = run("rebalance", SMALL, "base", fault)
    assert result.status == "FAILED" and result.error == "DuplicateError"
    assert fault.started == ["start_run"]  # no step ran, not even RecordFailure
    assert store.view("run", "base") == recorded


@pytest.mark.parametrize("function", ["start_run", "prepare_regime_training", "register_regime_model", "commit_run"])
def test_a_retrain_task_that_fails_leaves_the_champion_as_it_was(
    function: str, traded: Path, copy_of: Callable[[Path], Path]
) -> None:
    data_dir = copy_of(traded)
    before = book(data_dir)
    model = {"n_restarts": 2, "holdout_days": 252, "min_train_days": 252}
    result = run("retrain_regime", {"model": model}, f"retrain-{function}", Fault(function))
    assert result.status == "FAILED" and result.error == "InjectedFault", result.cause
    failed = SqliteStore(data_dir / "store.db").view("run", f"retrain-{function}")
    assert failed is not None and failed["status"] == "FAILED" and failed["stream"] == "model/regime/market"
    assert book(data_dir) == before


@pytest.mark.parametrize(
    "function", ["start_run", "plan_backtest", "run_backtest_window", "aggregate_backtest", "commit_run"]
)
def test_a_backtest_task_that_fails_is_recorded_and_changes_no_portfolio(
    function: str, traded: Path, copy_of: Callable[[Path], Path]
) -> None:
    data_dir = copy_of(traded)
    before = book(data_dir)
    request = {"symbols": SMALL["symbols"], "start": "2019-01-01", "n_windows": 2}
    result = run("backtest", request, f"bt-{function}", Fault(function))
    assert result.status == "FAILED" and result.error == "InjectedFault", result.cause
    failed = SqliteStore(data_dir / "store.db").view("run", f"bt-{function}")
    assert failed is not None and failed["status"] == "FAILED" and failed["stream"] == "backtest/default"
    assert book(data_dir) == before
