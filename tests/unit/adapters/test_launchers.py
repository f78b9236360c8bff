"""Run launchers: Step Functions (on moto) and the local child-process launcher."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from portfolio_engine.adapters.launchers import LocalLauncher, StepFunctionsLauncher
from portfolio_engine.exceptions import ConfigurationError, DuplicateError

PASS = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
ROLE = "arn:aws:iam::123456789012:role/spe-states"


@pytest.fixture
def sfn(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StepFunctionsLauncher, Any]]:
    """A launcher over moto's Step Functions with one trivial (Pass) state machine named rebalance."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("stepfunctions", region_name="us-east-1")
        arn = client.create_state_machine(name="spe-rebalance", definition=PASS, roleArn=ROLE)["stateMachineArn"]
        yield StepFunctionsLauncher({"rebalance": arn}, region="us-east-1"), client


def test_starting_the_same_execution_twice_with_the_same_input_is_a_no_op(sfn: tuple[Any, Any]) -> None:
    launcher, client = sfn
    # Given a run started once
    launcher.start("rebalance", "core-api-1", {"portfolio": "core"})
    # When the same start is sent again (a client retrying), it is accepted
    launcher.start("rebalance", "core-api-1", {"portfolio": "core"})
    # Then there is still one execution
    arn = launcher.arns["rebalance"]
    assert [e["name"] for e in client.list_executions(stateMachineArn=arn)["executions"]] == ["core-api-1"]


def test_the_same_execution_name_with_another_input_is_a_duplicate(sfn: tuple[Any, Any]) -> None:
    launcher, _ = sfn
    launcher.start("rebalance", "core-api-1", {"portfolio": "core"})
    with pytest.raises(DuplicateError, match="core-api-1"):
        launcher.start("rebalance", "core-api-1", {"portfolio": "growth"})


def test_starting_an_ended_execution_again_is_a_no_op_with_the_same_input(sfn: tuple[Any, Any]) -> None:
    # Step Functions (and moto) answer ExecutionAlreadyExists for a closed execution's name whatever the input;
    # the port makes the same start a no-op, so the launcher compares the input the execution was started with.
    launcher, client = sfn
    launcher.start("rebalance", "core-api-1", {"portfolio": "core", "symbols": ["AAPL"]})
    arn = launcher.arns["rebalance"].replace(":stateMachine:", ":execution:") + ":core-api-1"
    client.stop_execution(executionArn=arn, error="Stopped", cause="before its first task")
    # When the same start is sent again (a client retrying after the run failed early)
    launcher.start("rebalance", "core-api-1", {"symbols": ["AAPL"], "portfolio": "core"})
    # Then it is a no-op that reads as the ended run; another input is still a duplicate
    assert launcher.status("rebalance", "core-api-1")[0] == "FAILED"  # type: ignore[index]
    with pytest.raises(DuplicateError, match="another input"):
        launcher.start("rebalance", "core-api-1", {"portfolio": "growth"})
    assert len(client.list_executions(stateMachineArn=launcher.arns["rebalance"])["executions"]) == 1


def test_status_of_an_unknown_execution_is_none(sfn: tuple[Any, Any]) -> None:
    launcher, _ = sfn
    assert launcher.status("rebalance", "never-started") is None


def test_status_of_a_started_execution(sfn: tuple[Any, Any]) -> None:
    launcher, client = sfn
    launcher.start("rebalance", "core-api-1", {"portfolio": "core"})
    assert launcher.status("rebalance", "core-api-1") in {("RUNNING", None), ("SUCCEEDED", None)}
    # moto keeps an execution RUNNING until told otherwise; stop it to see a failure read back
    arn = launcher.arns["rebalance"].replace(":stateMachine:", ":execution:") + ":core-api-1"
    client.stop_execution(executionArn=arn, error="Stopped", cause="an operator stopped it")
    status, cause = launcher.status("rebalance", "core-api-1")
    assert status == "FAILED" and cause


def test_an_unknown_machine_is_a_configuration_error(sfn: tuple[Any, Any]) -> None:
    launcher, _ = sfn
    with pytest.raises(ConfigurationError, match="retrain-regime"):
        launcher.start("retrain-regime", "r-1", {})
    with pytest.raises(ConfigurationError, match="SPE_STATE_MACHINE_ARNS"):
        launcher.status("backtest", "r-1")


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalLauncher]:
    launcher = LocalLauncher(tmp_path / "runs", env={"SPE_DATA_DIR": str(tmp_path / "data"), "PATH": ""})
    yield launcher
    launcher.close()


def test_a_local_run_of_an_unknown_machine_fails_with_a_cause(local: LocalLauncher, tmp_path: Path) -> None:
    # Given a run of a machine that does not exist
    local.start("no-such-machine", "r-1", {"portfolio": "core"})
    # When it has ended
    local.wait(timeout=60)
    # Then it failed, with the tail of its log as the cause, and its log is kept
    status, cause = local.status("no-such-machine", "r-1")  # type: ignore[misc]
    assert status == "FAILED"
    assert cause
    assert (tmp_path / "runs" / "r-1.log").read_text().strip().splitlines()[-1] in cause
    # And it is not known under another machine, nor another id
    assert local.status("rebalance", "r-1") is None
    assert local.status("no-such-machine", "r-2") is None


def test_a_local_run_started_twice_runs_once(local: LocalLauncher, tmp_path: Path) -> None:
    local.start("no-such-machine", "r-1", {"portfolio": "core"})
    local.start("no-such-machine", "r-1", {"portfolio": "core"})  # the same input: a no-op
    with pytest.raises(DuplicateError, match="another input"):
        local.start("no-such-machine", "r-1", {"portfolio": "growth"})
    with pytest.raises(DuplicateError):
        local.start("rebalance", "r-1", {"portfolio": "core"})
    local.wait(timeout=60)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r-1.log"]


def test_a_local_run_that_cannot_start_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an interpreter path that does not exist
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    launcher = LocalLauncher(tmp_path / "runs", env={})
    try:
        launcher.start("rebalance", "r-1", {})
        launcher.wait(timeout=30)
        status, cause = launcher.status("rebalance", "r-1")  # type: ignore[misc]
    finally:
        launcher.close()
    assert status == "FAILED" and cause is not None and "Cannot start the local run" in cause
