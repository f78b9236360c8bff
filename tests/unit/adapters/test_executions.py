"""Per-state timings from a real execution history: moto's interpreter run by the local runner, read back by a task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portfolio_engine.adapters.executions import steps_from_history
from portfolio_engine.local.runner import LocalStateMachineRunner

HANDLERS = {
    "flaky": (
        "CALLS = []\n"
        "class SourceUnavailableError(Exception):\n    pass\n"
        "def lambda_handler(event, context):\n"
        "    CALLS.append(1)\n"
        "    if len(CALLS) == 1:\n        raise SourceUnavailableError('once')\n"
        "    return {'ok': True}\n"
    ),
    "shard": "import time\ndef lambda_handler(event, context):\n    time.sleep(0.05)\n    return event\n",
    "boom": (
        "class InfeasibleError(Exception):\n    pass\n"
        "def lambda_handler(event, context):\n    raise InfeasibleError('no portfolio meets the caps')\n"
    ),
    # The handler that reads its own execution's history, through the adapter the real functions use.
    "timings": (
        "from portfolio_engine.adapters.executions import build_history\n"
        "from portfolio_engine.settings import Settings\n"
        "HISTORY = build_history(Settings())\n"
        "def lambda_handler(event, context):\n    return {'steps': HISTORY.steps(event['execution'])}\n"
    ),
}

DEFINITION: dict[str, Any] = {
    "StartAt": "Fetch",
    "States": {
        "Fetch": {
            "Type": "Task",
            "Resource": "${FlakyFunctionArn}",
            "ResultPath": "$.fetch",
            "Retry": [{"ErrorEquals": ["SourceUnavailableError"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "Next": "Shards",
        },
        "Shards": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "StartAt": "Simulate",
                "States": {"Simulate": {"Type": "Task", "Resource": "${ShardFunctionArn}", "End": True}},
            },
            "ResultPath": "$.shards",
            "Next": "Optimize",
        },
        "Optimize": {
            "Type": "Task",
            "Resource": "${BoomFunctionArn}",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Record"}],
            "End": True,
        },
        "Record": {
            "Type": "Task",
            "Resource": "${TimingsFunctionArn}",
            "Parameters": {"execution.$": "$$.Execution.Id"},
            "End": True,
        },
    },
}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    functions, machines = tmp_path / "functions", tmp_path / "state_machines"
    for name, code in HANDLERS.items():
        (functions / name).mkdir(parents=True)
        (functions / name / "app.py").write_text(code)
    machines.mkdir()
    (machines / "timed.asl.json").write_text(json.dumps(DEFINITION))
    return functions, machines


def test_a_task_reads_the_timings_of_its_own_execution(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given AWS_ENDPOINT_URL pointing elsewhere (a moto server the lake could live on)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    runner = LocalStateMachineRunner(*layout, wait_scale=0)
    # When the machine runs: a task retried once, a Map of three iterations, a task that fails and is caught
    result = runner.run("timed", {"items": [1, 2, 3]}, name="timed-1")
    # Then the last task saw every state before it, in order, with attempts, statuses and durations
    assert result.succeeded, result.cause
    steps = result.output["steps"]
    assert [s["state"] for s in steps] == ["Fetch", "Shards", "Simulate", "Simulate", "Simulate", "Optimize", "Record"]
    fetch, shards, *simulate, optimize, record = steps
    assert fetch["status"] == "succeeded" and fetch["attempts"] == 2 and fetch["error"] is None
    assert shards["status"] == "succeeded" and shards["seconds"] >= 0.04  # iterations may overlap
    assert all(s["status"] == "succeeded" and s["seconds"] >= 0.04 for s in simulate)
    assert optimize["status"] == "failed" and optimize["error"] == "InfeasibleError" and optimize["attempts"] == 1
    assert record["status"] == "running" and record["ended_at"] is None


def test_an_unreadable_history_gives_no_timings_rather_than_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    from portfolio_engine.adapters.executions import build_history
    from portfolio_engine.settings import Settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    history = build_history(Settings(states_endpoint_url="http://127.0.0.1:9"))
    assert history.steps("arn:aws:states:us-east-1:123456789012:execution:m:e") == []


def test_steps_ignore_untimed_states_and_keep_entry_order() -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 5, tzinfo=UTC)

    def event(i: int, kind: str, prev: int, **details: Any) -> dict[str, Any]:
        return {"id": i, "previousEventId": prev, "type": kind, "timestamp": t0 + timedelta(seconds=i), **details}

    history = [
        event(1, "ExecutionStarted", 0),
        event(2, "PassStateEntered", 1, stateEnteredEventDetails={"name": "Prepare"}),
        event(3, "PassStateExited", 2, stateExitedEventDetails={"name": "Prepare"}),
        event(4, "WaitStateEntered", 3, stateEnteredEventDetails={"name": "Wait"}),
        event(6, "WaitStateExited", 4, stateExitedEventDetails={"name": "Wait"}),
    ]
    assert steps_from_history(history) == [
        {
            "state": "Wait",
            "status": "succeeded",
            "started_at": (t0 + timedelta(seconds=4)).isoformat(),
            "ended_at": (t0 + timedelta(seconds=6)).isoformat(),
            "seconds": 2.0,
            "attempts": 1,
            "error": None,
        }
    ]
