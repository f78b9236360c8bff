"""``/runs``: start a rebalance (202 + Location), read any run's status, result and audit events, list runs.

A run is the record its state machine writes (``RunView``: request, per-state timings, what it consumed, the
committed result or the error, cause and failed state). Between the 202 and the run's first task recording it,
the launcher's own status answers (QUEUED or RUNNING).
"""

from __future__ import annotations

import json
from datetime import date
from importlib.resources import files
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from portfolio_engine.api.models import EventList, RunAccepted, RunList
from portfolio_engine.api.routing import operation, services
from portfolio_engine.exceptions import InvalidTransitionError, RecordNotFoundError
from portfolio_engine.pipeline.launching import KEY_PATTERN, Launched, launch_run
from portfolio_engine.pipeline.listing import filtered_page
from portfolio_engine.records.events import portfolio_stream
from portfolio_engine.records.views import RunView

router = Router()

RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$", description="The run's id.")]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="The portfolio's name.")]
IdempotencyKey = Annotated[
    str | None,
    Header(pattern=KEY_PATTERN, description="The same key (for this portfolio) gives the same run, started once."),
]
Symbol = Annotated[str, Field(pattern=r"^[A-Za-z0-9^][A-Za-z0-9.^=_-]{0,19}$")]
MACHINES = ("rebalance", "retrain-regime", "backtest")


class StartRebalance(BaseModel):
    """Options of a rebalance run; every field has a default (the portfolio's universe, the bundled prices)."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["bundled", "yahoo", "alpha_vantage", "nasdaq_data_link"] = "bundled"
    symbols: list[Symbol] | None = Field(default=None, min_length=1, max_length=2000)
    benchmarks: list[Symbol] | None = Field(default=None, max_length=20)
    start: date | None = None
    end: date | None = None
    validation_policy: Literal["reject", "forward_fill", "quarantine"] | None = None


class PendingRun(BaseModel):
    """A run the launcher started that has not recorded itself yet (or failed before it could)."""

    run_id: str
    machine: str
    status: Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]
    cause: str | None = None


def accepted(launched: Launched, location: str) -> Response[RunAccepted]:
    """202 with the run and its ``Location``."""
    body = RunAccepted(
        run_id=launched.run_id,
        machine=launched.machine,
        status=launched.status,
        location=location,
        replayed=launched.replayed,
    )
    return Response(status_code=202, content_type="application/json", body=body, headers={"Location": location})


def _rebalanceable(name: str) -> None:
    raw = services().store.view("portfolio", name)
    if raw is None:
        if not files("portfolio_engine.resources").joinpath("portfolios", f"{name}.yaml").is_file():
            raise RecordNotFoundError(f"No portfolio {name!r}.", hint="Create it first: POST /portfolios.")
    elif raw["status"] == "archived":
        raise InvalidTransitionError(f"Portfolio {name!r} is archived.", hint=f"POST /portfolios/{name}/restore.")


@operation(
    router, "POST", "/portfolios/<name>/runs", role="manager", summary="Start a rebalance run",
    tags=["runs"], status_code=202, errors=(404, 409),
)  # fmt: skip
def start_rebalance(name: Name, body: StartRebalance, idempotency_key: IdempotencyKey = None) -> Response[RunAccepted]:
    """202 with the run id and Location at once; the run records itself as it goes (GET the Location)."""
    _rebalanceable(name)
    request: dict[str, Any] = {"portfolio": name, **body.model_dump(mode="json", exclude_none=True)}
    bound = services()
    launched = launch_run(
        bound.store, bound.launcher, machine="rebalance", subject=name, request=request,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    return accepted(launched, f"/runs/{launched.run_id}")


def read_run(run_id: str, machines: tuple[str, ...] = MACHINES) -> RunView | PendingRun:
    """The run's record, else the launcher's status of it.

    Raises
    ------
    RecordNotFoundError
        Neither the store nor the launcher knows the run.
    """
    bound = services()
    raw = bound.store.view("run", run_id)
    if raw is not None:
        if raw["machine"] in machines:
            return RunView.model_validate(raw)
    else:
        for machine in machines:
            known = bound.launcher.status(machine, run_id)
            if known is not None:
                return PendingRun(run_id=run_id, machine=machine, status=known[0], cause=known[1])
    raise RecordNotFoundError(f"No run {run_id!r}.", hint="GET /runs lists the recorded runs.")


@operation(router, "GET", "/runs/<run_id>", role="viewer", summary="A run's status, result, timings or error",
           tags=["runs"], errors=(404,))  # fmt: skip
def get_run(run_id: RunId) -> RunView | PendingRun:
    """Status, request, per-state timings (``steps``) and what the run consumed (``inputs``).

    Weights, regime, risk, breaches, hedge and alerts are in ``result`` once it committed; ``error``, ``cause``
    and ``failed_state`` when it failed.
    """
    return read_run(run_id)


@operation(router, "GET", "/runs/<run_id>/events", role="viewer", summary="A run's audit events",
           tags=["runs"], errors=(404,))  # fmt: skip
def run_events(run_id: RunId) -> EventList:
    store = services().store
    raw = store.view("run", run_id)
    if raw is None:
        raise RecordNotFoundError(f"No run {run_id!r} is recorded.", hint="GET /runs lists the recorded runs.")
    found = [e for e in store.events(raw["stream"]) if e.run_id == run_id]
    return EventList(items=[json.loads(e.model_dump_json()) for e in found], next_after=None)


@operation(router, "GET", "/runs", role="viewer", summary="Runs of every machine, newest first", tags=["runs"])
def list_runs(
    portfolio: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
    machine: Annotated[str | None, Query(pattern="^(rebalance|retrain-regime|backtest)$")] = None,
    status: Annotated[str | None, Query(pattern="^(RUNNING|SUCCEEDED|FAILED)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> RunList:
    page = filtered_page(
        services().store,
        "run",
        owner=portfolio_stream(portfolio) if portfolio else None,
        limit=limit,
        cursor=cursor,
        keep=lambda r: (status is None or r["status"] == status) and (machine is None or r["machine"] == machine),
    )
    return RunList.of(page)
