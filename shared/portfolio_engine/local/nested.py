"""What moto's interpreter lacks for a machine that starts machines: nested executions and Distributed Maps.

moto 5.2.5 runs neither ``arn:aws:states:::states:startExecution.sync:2`` nor a ``DISTRIBUTED`` Map over an
``ItemsPath``. The local runner renders such a definition with two substitutions, and nothing else changes:

* a Distributed Map runs inline (the same iterations, in this process's threads; its tolerated-failure
  settings go, as an inline Map has none: every child catches its own failure anyway);
* a ``startExecution.sync`` task becomes a call of the pseudo-function :data:`NESTED_FUNCTION`, which the runner
  answers by running the named machine's own definition to its end, as Step Functions does for ``.sync:2``:
  the output is ``{ExecutionArn, Name, Status, Output (JSON), StartDate, StopDate}``; a child that fails fails
  the task with the child's error name (Step Functions says ``States.TaskFailed``, a name moto refuses from a
  Lambda: a ``States.ALL`` Catch handles both) and the child's description as cause; a name already used fails it with
  ``StepFunctions.ExecutionAlreadyExistsException`` (Step Functions refuses a second execution of a closed
  name, so a repeated trigger runs each child once).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["NESTED_FUNCTION", "localize", "machine_placeholder", "sync_response"]

#: The pseudo-function a ``startExecution.sync`` task calls locally (never a folder under functions/).
NESTED_FUNCTION = "spe-local-start-execution"
_DISTRIBUTED_ONLY = ("ToleratedFailurePercentage", "ToleratedFailurePercentagePath", "ToleratedFailureCount",
                     "ToleratedFailureCountPath", "Label")  # fmt: skip
_SYNC = ("arn:aws:states:::states:startExecution.sync:2", "arn:aws:states:::states:startExecution.sync")


def machine_placeholder(machine: str) -> str:
    """The definition placeholder of a machine file: ``rebalance_all`` -> ``RebalanceAllStateMachineArn``."""
    return "".join(part.capitalize() for part in machine.split("_")) + "StateMachineArn"


def localize(node: Any, nested_arn: str) -> Any:
    """Rewrite a parsed definition in place for moto: Distributed Maps inline, ``.sync`` tasks to the runner."""
    if isinstance(node, dict):
        processor = node.get("ItemProcessor") if node.get("Type") == "Map" else None
        config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
        if isinstance(processor, dict) and isinstance(config, dict) and config.get("Mode") == "DISTRIBUTED":
            processor["ProcessorConfig"] = {"Mode": "INLINE"}
            for field in _DISTRIBUTED_ONLY:  # moto's parser refuses them on an inline Map, as AWS does
                node.pop(field, None)
        if node.get("Type") == "Task" and node.get("Resource") in _SYNC:
            node["Resource"] = nested_arn
        for value in node.values():
            localize(value, nested_arn)
    elif isinstance(node, list):
        for value in node:
            localize(value, nested_arn)
    return node


def sync_response(arn: str, name: str, status: str, output: Any, started: datetime) -> dict[str, Any]:
    """The task result of a finished child, shaped as ``startExecution.sync:2`` returns it."""
    return {
        "ExecutionArn": arn,
        "Name": name,
        "Status": status,
        "Output": output,
        "StartDate": started.isoformat(),
        "StopDate": datetime.now(UTC).isoformat(),
    }


def failure(error: str, cause: Any) -> dict[str, Any]:
    """A Lambda-style error payload whose ``errorType`` becomes the task's error name."""
    return {"errorType": error, "errorMessage": cause if isinstance(cause, str) else json.dumps(cause, default=str)}
