"""StartRun and RecordFailure on a real SQLite store: runs recorded once, failures leave the book alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.contracts.runs import RecordFailureInput, StartRunInput
from portfolio_engine.exceptions import DuplicateError, InvalidTransitionError, RecordNotFoundError
from portfolio_engine.optimization import PortfolioSpec
from portfolio_engine.pipeline.runs import record_failure, start_run
from portfolio_engine.records.events import NewEvent, portfolio_stream

SPEC = PortfolioSpec.from_dict({"name": "default", "universe": ["AAPL", "MSFT", "KO"], "method": "min_variance"})


def bundled(name: str) -> PortfolioSpec | None:
    return SPEC if name == "default" else None


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "store.db")


def _start(store: SqliteStore, run_id: str, machine: str = "rebalance", **request: object) -> object:
    task = StartRunInput(run_id=run_id, machine=machine, request=dict(request))  # type: ignore[arg-type]
    return start_run(task, store=store, bundled_spec=bundled, deployed_version="abc123")


def test_the_first_run_of_the_default_portfolio_creates_it_from_the_bundled_spec(store: SqliteStore) -> None:
    # When the default portfolio's first run starts
    out = _start(store, "run-1", trigger="schedule")
    # Then the portfolio exists with the bundled spec, the run is RUNNING, and the run ingests the spec's universe
    portfolio = store.view("portfolio", "default")
    assert portfolio is not None and portfolio["spec"] == SPEC.to_dict() and portfolio["spec_origin"] == "bundled"
    run = store.view("run", "run-1")
    assert run is not None and run["status"] == "RUNNING" and run["trigger"] == "schedule"
    assert run["inputs"]["code_version"] == "abc123" and run["inputs"]["spec_version"] == 1
    assert run["inputs"]["packages"]["numpy"]
    assert out.request["symbols"] == ["AAPL", "MSFT", "KO"] and out.spec_version == 1  # type: ignore[attr-defined]
    assert [e.type for e in store.events(portfolio_stream("default"))] == ["PortfolioCreated", "RunStarted"]


def test_a_request_naming_symbols_keeps_them(store: SqliteStore) -> None:
    out = _start(store, "run-1", symbols=["AAPL", "KO"])
    assert out.request["symbols"] == ["AAPL", "KO"]  # type: ignore[attr-defined]


def test_an_unknown_portfolio_fails_the_start_and_writes_nothing(store: SqliteStore) -> None:
    with pytest.raises(RecordNotFoundError, match="No portfolio 'core'"):
        _start(store, "run-1", portfolio="core")
    assert store.view("run", "run-1") is None and store.stream_version(portfolio_stream("core")) == 0


def test_a_malformed_request_is_a_validation_error(store: SqliteStore) -> None:
    with pytest.raises(ValidationError):
        _start(store, "run-1", surprise=1)
    assert store.view("run", "run-1") is None


def test_the_same_run_id_or_idempotency_key_starts_one_run(store: SqliteStore) -> None:
    _start(store, "run-1", idempotency_key="nightly-2026-01-05")
    with pytest.raises(DuplicateError):
        _start(store, "run-1")
    with pytest.raises(DuplicateError):
        _start(store, "run-2", idempotency_key="nightly-2026-01-05")
    assert store.view("run", "run-2") is None
    assert store.view("idempotency", "nightly-2026-01-05")["run_id"] == "run-1"  # type: ignore[index]


def test_an_archived_portfolio_is_not_run(store: SqliteStore) -> None:
    _start(store, "run-1")
    stream = portfolio_stream("default")
    store.append(stream, [NewEvent(type="PortfolioArchived")], expected_version=store.stream_version(stream))
    with pytest.raises(InvalidTransitionError, match="archived"):
        _start(store, "run-2")


def test_retrain_and_backtest_runs_go_to_their_own_streams(store: SqliteStore) -> None:
    retrain = _start(store, "train-1", machine="retrain-regime")
    backtest = _start(store, "bt-1", machine="backtest", spec={"name": "core", "method": "min_variance"})
    assert retrain.stream == "model/regime/market" and backtest.stream == "backtest/core"  # type: ignore[attr-defined]
    assert store.view("run", "bt-1")["machine"] == "backtest"  # type: ignore[index]


def _failure(run_id: str, **state: object) -> RecordFailureInput:
    cause = '{"errorType": "InfeasibleError", "errorMessage": "no portfolio meets the caps Hint: relax them"}'
    return RecordFailureInput(
        run_id=run_id,
        machine="rebalance",
        execution=f"arn:aws:states:us-east-1:123456789012:execution:rebalance:{run_id}",
        started_at=datetime(2026, 1, 5, 22, tzinfo=UTC),
        error={"Error": "InfeasibleError", "Cause": cause},
        state=dict(state),
    )


def _steps(_: str) -> list[dict[str, object]]:
    return [
        {"state": "StartRun", "status": "succeeded", "seconds": 0.1, "attempts": 1},
        {"state": "Optimize", "status": "failed", "error": "InfeasibleError", "seconds": 0.4, "attempts": 1},
    ]


def test_a_failure_is_recorded_with_its_state_and_leaves_holdings_and_results_alone(store: SqliteStore) -> None:
    # Given a portfolio with holdings and a committed result, and a new run started
    out = _start(store, "run-1")
    stream = portfolio_stream("default")
    committed = NewEvent(
        type="RunCommitted",
        run_id="run-1",
        data={"holdings_moved": True, "holdings": {"weights": {"KO": 1.0}, "as_of": "2022-12-28"}, "result": {"x": 1}},
    )
    store.append(stream, [committed], expected_version=store.stream_version(stream))
    before = store.view("portfolio", "default")
    _start(store, "run-2")
    alerts: list[dict[str, object]] = []

    def notify(**alert: object) -> dict[str, object]:
        alerts.append(alert)
        return {"alert": {"portfolio": alert["portfolio"], "limit": "run_failed"}, "status": "sent", "channels": {}}

    # When RecordFailure records its failure
    result = record_failure(
        _failure("run-2", run=out.model_dump(mode="json")), store=store, steps=_steps, notify=notify
    )  # type: ignore[attr-defined]
    # Then the run is FAILED with the error, the message and the failed state, and the failure was alerted
    run = store.view("run", "run-2")
    assert run is not None and run["status"] == "FAILED" and run["error"] == "InfeasibleError"
    assert run["cause"].startswith("no portfolio meets the caps") and run["failed_state"] == "Optimize"
    assert [s["state"] for s in run["steps"]] == ["StartRun", "Optimize"] and run["alerts"][0]["status"] == "sent"
    assert run["alerts"][0]["limit"] == "run_failed"
    assert result.recorded and alerts[0]["failed_state"] == "Optimize" and alerts[0]["portfolio"] == "default"
    # and the holdings and the latest result are exactly as before
    after = store.view("portfolio", "default")
    assert after is not None and before is not None
    assert after["holdings"] == before["holdings"] and after["latest"] == before["latest"]
    assert after["spec"] == before["spec"] and after["last_run"]["status"] == "FAILED"
    # and recording it again changes nothing
    again = record_failure(_failure("run-2"), store=store, steps=_steps)
    assert not again.recorded and store.view("run", "run-2") == run


def test_a_run_that_failed_before_it_was_started_is_recorded_as_started_and_failed(store: SqliteStore) -> None:
    result = record_failure(_failure("run-9", portfolio="core", surprise=1), store=store)
    run = store.view("run", "run-9")
    assert result.recorded and result.stream == "portfolio/core" and run is not None
    assert run["status"] == "FAILED" and run["request"] == {"portfolio": "core", "surprise": 1}
    assert store.view("portfolio", "core") is None  # no portfolio is created by a failure
