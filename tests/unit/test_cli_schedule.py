"""``spe schedule``: the schedules of a CDK configuration fired locally, with a fixed clock.

The state machines are two short definitions written for the test around the real ``StartRun`` function (which
records the run in the store of record under its execution name), run by the real local runner; the function
target is the real ``ingest_prices`` handler on a user file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from portfolio_engine.adapters.store import build_store
from portfolio_engine.cli import app
from portfolio_engine.cli import schedule as schedule_cli
from portfolio_engine.local.runner import LocalStateMachineRunner
from portfolio_engine.settings import Settings

runner = CliRunner()
# Tuesday 9 January 2024, 23:30 UTC: the latest fire times are Tuesday 21:30 (ingest), Saturday 6 January 06:00
# (retrain) and Tuesday 23:00 (backtest).
NOW = datetime(2024, 1, 9, 23, 30, tzinfo=UTC)

START_RUN = {
    "Type": "Task",
    "Resource": "${StartRunFunctionArn}",
    "Parameters": {"run_id.$": "$$.Execution.Name", "started_at.$": "$$.Execution.StartTime", "request.$": "$"},
    "ResultPath": "$.run",
}
MACHINES = {
    "tiny_retrain.asl.json": {
        "StartAt": "StartRun",
        "States": {
            "StartRun": {
                **START_RUN,
                "Parameters": {**START_RUN["Parameters"], "machine": "retrain-regime"},
                "End": True,
            }
        },
    },
    "tiny_backtest.asl.json": {
        "StartAt": "StartRun",
        "States": {
            "StartRun": {**START_RUN, "Parameters": {**START_RUN["Parameters"], "machine": "backtest"}, "Next": "Fail"},
            "Fail": {"Type": "Fail", "Error": "DataValidationError", "Cause": "3 symbols failed\nsee the report"},
        },
    },
}


def _config(tmp_path: Path, schedules: dict[str, Any]) -> Path:
    path = tmp_path / "cdk.json"
    spe = {
        "functions": {"ingest_prices": {}, "start_run": {}},
        "stateMachines": {"retrain-regime": "tiny_retrain.asl.json", "backtest": "tiny_backtest.asl.json"},
        "schedules": schedules,
    }
    path.write_text(json.dumps({"context": {"stage": "dev", "spe": spe}}))
    return path


@pytest.fixture
def machines(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's state machines, run by the real runner (no waits), and the clock stopped at ``NOW``."""
    directory = tmp_path / "state_machines"
    directory.mkdir()
    for name, definition in MACHINES.items():
        (directory / name).write_text(json.dumps(definition))
    monkeypatch.setattr(
        schedule_cli, "make_runner", lambda: LocalStateMachineRunner(state_machines_dir=directory, wait_scale=0)
    )
    monkeypatch.setattr(schedule_cli, "now", lambda: NOW)
    monkeypatch.setattr(schedule_cli, "sleep", _no_sleep)
    monkeypatch.delenv("SPE_IDEMPOTENCY_TABLE", raising=False)
    return directory


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"--once must not sleep ({seconds} s)")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    prices = tmp_path / "prices.csv"
    prices.write_text("date,AAA\n2024-01-08,10\n2024-01-09,11\n")
    return _config(
        tmp_path,
        {
            "ingest-file": {
                "expression": "cron(30 21 ? * MON-FRI *)",
                "function": "ingest_prices",
                "input": {"run_id": "$.id", "request": {"source": "file", "file_uri": str(prices)}},
            },
            "retrain-weekly": {"expression": "cron(0 6 ? * SAT *)", "stateMachine": "retrain-regime", "input": {}},
            "backtest-nightly": {"expression": "cron(0 23 * * ? *)", "stateMachine": "backtest", "input": {}},
            "paused": {"expression": "rate(1 minute)", "stateMachine": "backtest", "enabled": False},
        },
    )


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _summary(line: dict[str, Any]) -> tuple[Any, ...]:
    return line["schedule"], line["run_id"], line["action"], line["status"], line["error"], line["cause"]


def test_once_runs_what_is_due_once_and_skips_it_on_the_second_call(machines: Path, config: Path) -> None:
    # When what is due runs
    first = runner.invoke(app, ["schedule", "--once", "--config", str(config), "--json"])

    # Then each enabled schedule's latest fire time ran, under its deterministic id; the failing backtest is
    # reported with its error and cause on one line, and did not stop the others
    assert first.exit_code == 1, first.output  # a run failed
    assert [_summary(line) for line in _lines(first.stdout)] == [
        ("ingest-file", "ingest-file-20240109T2130Z", "ran", "SUCCEEDED", None, None),
        ("retrain-weekly", "retrain-weekly-20240106T0600Z", "ran", "SUCCEEDED", None, None),
        (
            "backtest-nightly",
            "backtest-nightly-20240109T2300Z",
            "ran",
            "FAILED",
            "DataValidationError",
            "3 symbols failed see the report",
        ),
    ]
    # And the store holds the machines' runs, started by the schedule for its fire time
    store = build_store(Settings())
    retrain = store.view("run", "retrain-weekly-20240106T0600Z")
    assert retrain is not None and retrain["trigger"] == "schedule" and retrain["machine"] == "retrain-regime"
    assert datetime.fromisoformat(retrain["scheduled_for"]) == datetime(2024, 1, 6, 6, tzinfo=UTC)
    assert store.view("run", "backtest-nightly-20240109T2300Z") is not None

    # When it is called again for the same fire times
    second = runner.invoke(app, ["schedule", "--once", "--config", str(config), "--json"])

    # Then the machines' runs are skipped; the ingest (no run record: idempotent by design) ran again
    assert second.exit_code == 0, second.output
    assert [(line["schedule"], line["action"], line["status"]) for line in _lines(second.stdout)] == [
        ("ingest-file", "ran", "SUCCEEDED"),
        ("retrain-weekly", "skipped", "SKIPPED"),
        ("backtest-nightly", "skipped", "SKIPPED"),
    ]


def test_only_selects_schedules_and_the_text_output_names_each_run(machines: Path, config: Path) -> None:
    result = runner.invoke(app, ["schedule", "--once", "--config", str(config), "--only", "retrain-weekly"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "retrain-weekly (2024-01-06 06:00 UTC) retrain-weekly-20240106T0600Z: SUCCEEDED" in text
    assert "ingest-file" not in text and "backtest" not in text


@pytest.mark.parametrize(
    ("only", "message"),
    [("nope", "No schedule named ['nope']"), ("paused", "Schedule(s) ['paused'] are disabled")],
)
def test_only_refuses_an_unknown_or_disabled_schedule(machines: Path, config: Path, only: str, message: str) -> None:
    result = runner.invoke(app, ["schedule", "--once", "--config", str(config), "--only", only])
    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.output


class Clock:
    def __init__(self, start: datetime, interrupt_after: int) -> None:
        self.time, self.sleeps, self.interrupt_after = start, 0, interrupt_after

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps > self.interrupt_after:
            raise KeyboardInterrupt
        self.time += timedelta(seconds=seconds)


def _loop(machines: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], Any]:
    monkeypatch.setattr(schedule_cli, "now", clock.now)
    monkeypatch.setattr(schedule_cli, "sleep", clock.sleep)
    return lambda args: runner.invoke(app, ["schedule", *args])


def test_the_loop_runs_each_fire_time_as_it_falls_due_until_ctrl_c(
    machines: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Saturday 6 January 2024 05:59:30 and Ctrl-C once the retrain has run (sleeps: 30 s, then Ctrl-C)
    clock = Clock(datetime(2024, 1, 6, 5, 59, 30, tzinfo=UTC), interrupt_after=1)
    spe = _loop(machines, clock, monkeypatch)

    # When the scheduler runs until interrupted
    result = spe(["--config", str(config), "--only", "retrain-weekly", "--json"])

    # Then it ran Saturday's retrain at 06:00, and Ctrl-C ended it cleanly: code 0, one line, no traceback
    assert result.exit_code == 0, result.output
    assert [_summary(line) for line in _lines(result.stdout)] == [
        ("retrain-weekly", "retrain-weekly-20240106T0600Z", "ran", "SUCCEEDED", None, None)
    ]
    assert "Stopped (Ctrl-C) after 1 run(s)." in result.stderr and "Traceback" not in result.output
    assert clock.time == datetime(2024, 1, 6, 6, tzinfo=UTC)


def test_the_loop_says_what_runs_next(machines: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(datetime(2024, 1, 6, 5, 59, 30, tzinfo=UTC), interrupt_after=1)
    result = _loop(machines, clock, monkeypatch)(["--config", str(config), "--only", "retrain-weekly"])
    assert result.exit_code == 0, result.output
    assert "retrain-weekly-20240106T0600Z: SUCCEEDED" in " ".join(result.stdout.split())
    assert "Next: retrain-weekly at 2024-01-13 06:00 UTC." in result.stderr


def test_ctrl_c_while_waiting_exits_cleanly(machines: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spe = _loop(machines, Clock(NOW, interrupt_after=0), monkeypatch)
    result = spe(["--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Scheduling ingest-file, retrain-weekly, backtest-nightly" in " ".join(result.stderr.split())
    assert result.stderr.strip().splitlines()[-1] == "Stopped (Ctrl-C) after 0 run(s)."
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 0 15W * ? *)", "Schedule 'bad': cron(0 0 15W * ? *): day-of-month field '15W'"),
        ("cron(0 0 * * * *)", "exactly one of day-of-month ('*') and day-of-week ('*') must be '?'"),
        ("rate(5 weeks)", "'rate(5 weeks)' is not an EventBridge schedule expression"),
    ],
)
def test_a_bad_expression_fails_with_a_clear_error(
    machines: Path, tmp_path: Path, expression: str, message: str
) -> None:
    path = _config(tmp_path, {"bad": {"expression": expression, "stateMachine": "backtest"}})
    result = runner.invoke(app, ["schedule", "--once", "--config", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("ConfigurationError: ") and message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    as_json = runner.invoke(app, ["schedule", "--once", "--config", str(path), "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"] == "ConfigurationError"


def test_a_missing_definition_or_configuration_is_named(machines: Path, tmp_path: Path) -> None:
    path = _config(tmp_path, {"x": {"expression": "rate(1 day)", "stateMachine": "backtest"}})
    (machines / "tiny_backtest.asl.json").unlink()
    result = runner.invoke(app, ["schedule", "--once", "--config", str(path)])
    assert result.exit_code == 1 and "has no definition" in " ".join(result.stderr.split())
    missing = runner.invoke(app, ["schedule", "--once", "--config", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and "No CDK configuration at" in " ".join(missing.stderr.split())


def test_the_repos_configuration_is_the_default(machines: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the real configuration, and a launcher that records instead of running the real machines
    launched: list[tuple[str, str, dict[str, Any]]] = []

    def record(self: Any, run: Any) -> Any:
        from portfolio_engine.local.scheduler import Outcome

        launched.append((run.schedule.target, run.run_id, run.payload()))
        return Outcome("SUCCEEDED")

    monkeypatch.setattr(schedule_cli, "make_runner", LocalStateMachineRunner)
    monkeypatch.setattr(schedule_cli.LocalLauncher, "__call__", record)
    result = runner.invoke(app, ["schedule", "--once", "--json"])
    assert result.exit_code == 0, result.output
    assert launched == [
        (
            "function:ingest_prices",
            "ingest-after-close-20240109T2130Z",
            {"run_id": "ingest-after-close-20240109T2130Z", "request": {}},
        ),
        (
            "stateMachine:rebalance-all",
            "rebalance-after-close-20240109T2200Z",
            {"trigger": "schedule", "scheduled_for": "2024-01-09T22:00:00Z"},
        ),
        (
            "stateMachine:retrain-regime",
            "retrain-regime-weekly-20240106T0600Z",
            {"trigger": "schedule", "scheduled_for": "2024-01-06T06:00:00Z"},
        ),
    ]
