"""Per-state timings of a Step Functions execution, read from its history (``GetExecutionHistory``).

The commit and failure-recording steps call this for their own execution, so a run's record says how long each
state took, how often it was attempted and which one failed. Locally the same call reaches the local runner's
in-process interpreter (``SPE_STATES_ENDPOINT_URL``, set by the runner); on AWS, Step Functions itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from portfolio_engine.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["LOCAL_STATES", "StepFunctionsHistory", "build_history", "steps_from_history"]

#: States whose time is worth recording (Pass, Choice, Succeed and Fail take none).
_TIMED = ("Task", "Map", "Parallel", "Wait")
_SCHEDULED = ("LambdaFunctionScheduled", "TaskScheduled")
_FAILED = ("LambdaFunctionFailed", "LambdaFunctionTimedOut", "TaskFailed", "TaskTimedOut", "MapStateFailed")
_SUCCEEDED = ("LambdaFunctionSucceeded", "TaskSucceeded", "MapStateSucceeded")


def _name(event: Mapping[str, Any]) -> str | None:
    for key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
        if key in event:
            return str(event[key].get("name"))
    return None


def _error(event: Mapping[str, Any]) -> str | None:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping) and "error" in value:
            return str(value["error"])
    return None


def steps_from_history(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The timed states of an execution history, in the order they were entered.

    Each entry has ``state``, ``status`` (``succeeded``, ``failed``: its last attempt failed, whether or not a
    Catch handled it, ``running``), ``started_at``, ``ended_at``, ``seconds``, ``attempts`` and ``error``.
    Events are attributed to the state they belong to by following ``previousEventId`` back to the state's
    ``...StateEntered`` event, which keeps the iterations of a Map apart.
    """
    history = sorted(events, key=lambda e: int(e["id"]))
    by_id = {int(e["id"]): e for e in history}
    steps: dict[int, dict[str, Any]] = {}
    owner_cache: dict[int, int | None] = {}

    def owner(event_id: int) -> int | None:
        """The id of the ``...StateEntered`` event of the state a Lambda/Task event belongs to."""
        seen = []
        current: int | None = event_id
        while current is not None and current in by_id:
            if current in owner_cache:
                found = owner_cache[current]
                break
            event = by_id[current]
            if event["type"].endswith("StateEntered") and event["type"].removesuffix("StateEntered") in _TIMED:
                found = current
                break
            seen.append(current)
            previous = int(event.get("previousEventId") or 0)
            current = previous if previous and previous != current else None
        else:
            found = None
        for visited in seen:
            owner_cache[visited] = found
        return found

    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered") and kind.removesuffix("StateEntered") in _TIMED:
            steps[int(event["id"])] = {
                "state": _name(event),
                "status": "running",
                "started_at": event["timestamp"],
                "ended_at": None,
                "seconds": None,
                "attempts": 0,
                "error": None,
                "exited": False,
            }
            continue
        if kind.endswith("StateExited"):
            entered = _entered_of(event, by_id, steps)
            if entered is not None:
                step = steps[entered]
                step["exited"] = True
                step["ended_at"] = event["timestamp"]
                step["status"] = "failed" if step["error"] else "succeeded"
            continue
        entered = owner(int(event["id"]))
        if entered is None or entered not in steps:
            continue
        step = steps[entered]
        if kind in _SCHEDULED:
            step.update(attempts=step["attempts"] + 1, error=None, status="running", ended_at=None)
        elif kind in _FAILED:
            step["error"] = _error(event) or kind
            step["ended_at"] = event["timestamp"]
            step["status"] = "failed"
        elif kind in _SUCCEEDED:
            step["error"] = None
    out = []
    for step in steps.values():
        step["attempts"] = max(step["attempts"], 1)
        if step["ended_at"] is not None:
            step["seconds"] = round((step["ended_at"] - step["started_at"]).total_seconds(), 3)
        out.append({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in step.items() if k != "exited"})
    return out


def _entered_of(
    exited: Mapping[str, Any], by_id: Mapping[int, Mapping[str, Any]], steps: Mapping[int, Any]
) -> int | None:
    """The open ``...StateEntered`` event an exit closes: back along ``previousEventId`` to the same name."""
    name = _name(exited)
    current = int(exited.get("previousEventId") or 0)
    while current and current in by_id:
        event = by_id[current]
        if current in steps and _name(event) == name and not steps[current]["exited"]:
            return current
        current = int(event.get("previousEventId") or 0)
    return None


#: ``SPE_STATES_ENDPOINT_URL`` value the local runner sets: Step Functions is its in-process interpreter.
LOCAL_STATES = "local"


def build_history(settings: Settings) -> StepFunctionsHistory:
    """The history reader the settings point at: AWS, ``AWS_ENDPOINT_URL``, or the local runner's interpreter."""
    import boto3

    if settings.states_endpoint_url == LOCAL_STATES:
        # moto answers AWS's own endpoint in-process; it needs no real credentials, only signed requests.
        client = boto3.client(
            "stepfunctions",
            region_name=settings.aws_region,
            endpoint_url=f"https://states.{settings.aws_region}.amazonaws.com",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
    else:
        endpoint = settings.states_endpoint_url or settings.aws_endpoint_url
        client = boto3.client("stepfunctions", region_name=settings.aws_region, endpoint_url=endpoint)
    return StepFunctionsHistory(client)


class StepFunctionsHistory:
    """Reads an execution's history through boto3 (``states:GetExecutionHistory`` on the execution)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def steps(self, execution_arn: str) -> list[dict[str, Any]]:
        """The timed states of ``execution_arn`` (see :func:`steps_from_history`); empty if it cannot be read.

        A run's record is worth keeping without its timings, so a history that cannot be read is logged,
        not raised.
        """
        try:
            paginator = self.client.get_paginator("get_execution_history")
            events = [e for page in paginator.paginate(executionArn=execution_arn) for e in page["events"]]
        except (ClientError, BotoCoreError) as exc:
            logger.warning("no execution history for %s: %s", execution_arn, exc)
            return []
        return steps_from_history(events)
