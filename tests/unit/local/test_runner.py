"""Contract test of the local runner: moto's interpreter plus in-process Lambda dispatch behave as AWS does.

Small handlers written to a temporary ``functions/`` folder make every path visible: a result passed
between states, a Retry that succeeds, a Catch that routes on the error's class name, a Fail state
with error and cause.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portfolio_engine.exceptions import ConfigurationError, StateMachineError
from portfolio_engine.local.runner import LocalStateMachineRunner, placeholder_for, render_definition

HANDLERS = {
    "double": (
        "def lambda_handler(event, context):\n    return {'value': event['value'] * 2, 'fn': context.function_name}\n"
    ),
    "flaky": (
        "CALLS = []\n"
        "class SourceUnavailableError(Exception):\n    pass\n"
        "def lambda_handler(event, context):\n"
        "    CALLS.append(1)\n"
        "    if len(CALLS) < 3:\n        raise SourceUnavailableError('try again')\n"
        "    return {'attempts': len(CALLS)}\n"
    ),
    "reject": (
        "class DataValidationError(Exception):\n    pass\n"
        "def lambda_handler(event, context):\n    raise DataValidationError('3 symbols failed')\n"
    ),
}


def _machine(states: dict[str, Any], start: str) -> dict[str, Any]:
    return {"StartAt": start, "States": states}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    functions, machines = tmp_path / "functions", tmp_path / "state_machines"
    for name, code in HANDLERS.items():
        (functions / name).mkdir(parents=True)
        (functions / name / "app.py").write_text(code)
    machines.mkdir()
    return functions, machines


def _write(machines: Path, name: str, definition: dict[str, Any]) -> None:
    (machines / f"{name}.asl.json").write_text(json.dumps(definition))


def test_placeholder_names_follow_the_function_folder() -> None:
    assert placeholder_for("ingest_prices") == "IngestPricesFunctionArn"
    assert placeholder_for("simulate_risk_shard") == "SimulateRiskShardFunctionArn"


def test_results_flow_between_states_and_the_execution_name_is_visible(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(
        machines,
        "m",
        _machine(
            {
                "A": {
                    "Type": "Task",
                    "Resource": "${DoubleFunctionArn}",
                    "Parameters": {"value.$": "$.value", "run.$": "$$.Execution.Name"},
                    "ResultPath": "$.a",
                    "Next": "B",
                },
                "B": {
                    "Type": "Task",
                    "Resource": "${DoubleFunctionArn}",
                    "Parameters": {"value.$": "$.a.value"},
                    "ResultPath": "$.b",
                    "End": True,
                },
            },
            "A",
        ),
    )
    seen: list[tuple[str, str]] = []
    runner = LocalStateMachineRunner(functions, machines, listener=lambda e, f, d: seen.append((e, f)))
    result = runner.run("m", {"value": 3}, name="run-1")
    assert result.succeeded
    assert result.output == {"value": 3, "a": {"value": 6, "fn": "double"}, "b": {"value": 12, "fn": "double"}}
    assert seen == [("start", "double"), ("end", "double"), ("start", "double"), ("end", "double")]


def test_a_retry_on_the_error_name_succeeds(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(
        machines,
        "m",
        _machine(
            {
                "A": {
                    "Type": "Task",
                    "Resource": "${FlakyFunctionArn}",
                    "End": True,
                    "Retry": [{"ErrorEquals": ["SourceUnavailableError"], "IntervalSeconds": 30, "MaxAttempts": 3}],
                },
            },
            "A",
        ),
    )
    result = LocalStateMachineRunner(functions, machines, wait_scale=0).run("m", {}, name="retry-1")
    assert result.succeeded and result.output == {"attempts": 3}
    assert result.seconds < 10  # the 30 s intervals were scaled away


def test_a_catch_routes_on_the_error_class_name_to_a_failed_state_with_its_cause(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(
        machines,
        "m",
        _machine(
            {
                "A": {
                    "Type": "Task",
                    "Resource": "${RejectFunctionArn}",
                    "End": True,
                    "Catch": [
                        {"ErrorEquals": ["SomethingElse"], "Next": "Other"},
                        {"ErrorEquals": ["DataValidationError"], "ResultPath": "$.error", "Next": "Rejected"},
                    ],
                },
                "Other": {"Type": "Succeed"},
                "Rejected": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
            },
            "A",
        ),
    )
    result = LocalStateMachineRunner(functions, machines).run("m", {}, name="catch-1")
    assert result.status == "FAILED" and result.error == "DataValidationError"
    assert json.loads(result.cause or "{}")["errorMessage"] == "3 symbols failed"
    with pytest.raises(StateMachineError, match="3 symbols failed") as info:
        result.raise_for_status()
    assert info.value.error == "DataValidationError"


def test_an_unknown_placeholder_is_a_configuration_error(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(machines, "m", _machine({"A": {"Type": "Task", "Resource": "${MissingFunctionArn}", "End": True}}, "A"))
    with pytest.raises(ConfigurationError, match="MissingFunctionArn"):
        LocalStateMachineRunner(functions, machines).run("m", {}, name="x")


def test_an_unknown_machine_lists_the_known_ones(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(machines, "known", _machine({"A": {"Type": "Succeed"}}, "A"))
    with pytest.raises(ConfigurationError, match=r"known: \['known'\]"):
        LocalStateMachineRunner(functions, machines).run("nope", {}, name="x")


def test_render_scales_waits(tmp_path: Path) -> None:
    path = tmp_path / "m.asl.json"
    path.write_text(
        json.dumps(
            _machine(
                {
                    "W": {"Type": "Wait", "Seconds": 60, "Next": "T"},
                    "T": {
                        "Type": "Task",
                        "Resource": "${DoubleFunctionArn}",
                        "End": True,
                        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5}],
                    },
                },
                "W",
            )
        )
    )
    rendered = json.loads(render_definition(path, {"DoubleFunctionArn": "arn:x"}, wait_scale=0))
    assert rendered["States"]["W"]["Seconds"] == 0
    assert rendered["States"]["T"]["Resource"] == "arn:x"
    assert rendered["States"]["T"]["Retry"][0]["IntervalSeconds"] == 5


def test_handlers_reach_other_aws_services_with_their_own_credentials(
    layout: tuple[Path, Path], aws_env: str, s3_lake_uri: str
) -> None:
    # Given a handler that lists buckets on the moto server the environment points at
    functions, machines = layout
    (functions / "peek").mkdir()
    (functions / "peek" / "app.py").write_text(
        "import os, boto3\n"
        "def lambda_handler(event, context):\n"
        "    s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n"
        "    names = [b['Name'] for b in s3.list_buckets()['Buckets']]\n"
        "    return {'key': os.environ['AWS_ACCESS_KEY_ID'], 'buckets': names}\n"
    )
    _write(machines, "m", _machine({"A": {"Type": "Task", "Resource": "${PeekFunctionArn}", "End": True}}, "A"))
    # When it runs inside the local runner (which simulates only Step Functions and Lambda)
    result = LocalStateMachineRunner(functions, machines).run("m", {}, name="peek-1")
    # Then its call went to the real server, signed with the environment's credentials
    assert result.succeeded, result.cause
    assert result.output["key"] == "testing"
    assert s3_lake_uri.split("/")[2] in result.output["buckets"]
