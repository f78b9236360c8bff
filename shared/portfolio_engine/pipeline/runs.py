"""StartRun and RecordFailure: the first and the failure task of every state machine.

StartRun records ``RunStarted`` in the stream of what the run works on (a portfolio, a model, a backtested spec)
and resolves the request its steps use: a rebalance of a portfolio the store does not hold yet creates it from
the bundled spec of that name (``default``), and ingests the portfolio's own universe unless the request names
symbols. RecordFailure records ``RunFailed`` with the error, its cause and the state that failed, sends the
failure alert, and changes nothing else: holdings, champions and latest results stay as they were.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from portfolio_engine.contracts.backtest import BacktestRequest
from portfolio_engine.contracts.runs import (
    ChildRun,
    ListPortfoliosInput,
    ListPortfoliosOutput,
    Machine,
    RecordFailureInput,
    RecordFailureOutput,
    StartRunInput,
    StartRunOutput,
)
from portfolio_engine.contracts.tasks import RunRequest
from portfolio_engine.contracts.training import RetrainRegimeRequest
from portfolio_engine.exceptions import (
    ConcurrencyError,
    InvalidTransitionError,
    PortfolioEngineError,
    RecordNotFoundError,
)
from portfolio_engine.ports import Store
from portfolio_engine.provenance import code_version, package_versions
from portfolio_engine.records.events import NewEvent, backtest_stream, model_stream, portfolio_stream
from portfolio_engine.records.views import PortfolioView

logger = logging.getLogger(__name__)

__all__ = [
    "alert_event_data",
    "append_retrying",
    "child_run_id",
    "list_portfolios",
    "record_failure",
    "run_stream",
    "start_run",
]

#: How often an append is retried when another writer appended in between (each retry re-reads the state).
APPEND_ATTEMPTS = 8
#: Longest cause kept in a run's record (Step Functions' own limit on a cause is 32,768 characters).
MAX_CAUSE = 8_192

SpecLoader = Callable[[str], Any]
"""``name -> PortfolioSpec | None``: the bundled spec of a name (``pipeline.optimize.bundled_spec``)."""


def append_retrying(
    store: Store, stream: str, build: Callable[[int], Sequence[NewEvent]], *, attempts: int = APPEND_ATTEMPTS
) -> list[Any]:
    """Append what ``build(version)`` returns at the stream's current version; re-read and rebuild on a conflict.

    ``build`` reads whatever it decides on (a view) itself and raises when its decision no longer holds (a
    ``StaleHoldingsError``), so a retry never commits a decision made on state that has changed.

    Raises
    ------
    ConcurrencyError
        If the stream kept moving for ``attempts`` tries.
    """
    for attempt in range(attempts):
        version = store.stream_version(stream)
        events = build(version)
        try:
            return store.append(stream, events, expected_version=version)
        except ConcurrencyError:
            if attempt == attempts - 1:
                raise
            logger.info("stream %s moved; rebuilding the append (attempt %d)", stream, attempt + 2)
    raise AssertionError("unreachable")  # pragma: no cover


def run_stream(machine: Machine, request: dict[str, Any]) -> tuple[str, str]:
    """The stream and subject of a run, from its machine and request (portfolio, model or spec name)."""
    if machine == "rebalance":
        name = request.get("portfolio") if isinstance(request.get("portfolio"), str) else "default"
        return portfolio_stream(str(name or "default")), str(name or "default")
    if machine == "retrain-regime":
        model = request.get("model") if isinstance(request.get("model"), dict) else {}
        name = str((model or {}).get("name") or "market")
        return model_stream("regime", name), name
    spec = request.get("spec") if isinstance(request.get("spec"), dict) else {}
    name = str((spec or {}).get("name") or "default")
    return backtest_stream(name), name


def _provenance(deployed: str | None) -> dict[str, Any]:
    return {"code_version": code_version(deployed), "packages": package_versions()}


def start_run(
    task: StartRunInput,
    *,
    store: Store,
    bundled_spec: SpecLoader,
    deployed_version: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> StartRunOutput:
    """Record the run as started and resolve its request.

    Raises
    ------
    DuplicateError
        The run id (or its idempotency key) already names a run: the machine stops without recording.
    RecordNotFoundError
        A rebalance of a portfolio the store does not hold and no bundled spec of that name exists.
    InvalidTransitionError
        A rebalance of an archived portfolio.
    pydantic.ValidationError
        A malformed request.
    """
    started_at = task.started_at or clock()
    requests: dict[str, type[BaseModel]] = {
        "rebalance": RunRequest,
        "retrain-regime": RetrainRegimeRequest,
        "backtest": BacktestRequest,
    }
    request = requests[task.machine].model_validate(task.request)
    stream, subject = run_stream(task.machine, request.model_dump(mode="json"))
    resolved: dict[str, Any] = request.model_dump(mode="json")
    spec_version: int | None = None

    def build(version: int) -> list[NewEvent]:
        nonlocal resolved, spec_version
        events: list[NewEvent] = []
        if task.machine == "rebalance":
            created, spec, spec_version = _portfolio_for_run(store, subject, bundled_spec)
            events += created
            if resolved.get("symbols") is None and spec.get("universe"):
                resolved = {**resolved, "symbols": list(spec["universe"])}
        data = {
            "machine": task.machine,
            "trigger": resolved.get("trigger", "cli"),
            "idempotency_key": resolved.get("idempotency_key"),
            "scheduled_for": resolved.get("scheduled_for"),
            "started_at": started_at.isoformat(),
            "request": resolved,
            "inputs": {"spec_version": spec_version, **_provenance(deployed_version)},
        }
        return [*events, NewEvent(type="RunStarted", run_id=task.run_id, data=data)]

    append_retrying(store, stream, build)
    logger.info("run started", extra={"run_id": task.run_id, "stream": stream})
    return StartRunOutput(
        run_id=task.run_id,
        machine=task.machine,
        stream=stream,
        subject=subject,
        spec_version=spec_version,
        request=resolved,
    )


def _portfolio_for_run(store: Store, name: str, bundled_spec: SpecLoader) -> tuple[list[NewEvent], dict[str, Any], int]:
    """Events creating the portfolio if it is new (from its bundled spec), its spec, and the spec's version."""
    raw = store.view("portfolio", name)
    if raw is None:
        spec = bundled_spec(name)
        if spec is None:
            raise RecordNotFoundError(
                f"No portfolio {name!r} in the store {store.uri}.",
                hint=f"Create it first: `spe portfolio create {name} --spec file.yaml` (or POST /portfolios).",
            )
        document = spec.to_dict()
        return [NewEvent(type="PortfolioCreated", data={"spec": document, "origin": "bundled"})], document, 1
    view = PortfolioView.model_validate(raw)
    if view.status == "archived":
        raise InvalidTransitionError(
            f"Portfolio {name!r} is archived; it is not rebalanced.",
            hint=f"Restore it (`spe portfolio restore {name}`) to run it again.",
        )
    return [], view.spec, view.spec_version


def alert_event_data(outcome: dict[str, Any]) -> dict[str, Any]:
    """An ``AlertSent`` event's data from a dispatch outcome (``{"alert": ..., "status": ..., "channels": ...}``)."""
    alert = outcome.get("alert") or {}
    keep = ("portfolio", "limit", "severity", "value", "threshold", "message", "dedup_key")
    return {**{k: alert.get(k) for k in keep}, "status": outcome.get("status"), "channels": outcome.get("channels")}


def _message(cause: str) -> str:
    """A Lambda error's message from Step Functions' cause (JSON with errorMessage), or the cause itself."""
    try:
        document = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        return cause
    return str(document.get("errorMessage", cause)) if isinstance(document, dict) else cause


def record_failure(
    task: RecordFailureInput,
    *,
    store: Store,
    steps: Callable[[str], list[dict[str, Any]]] | None = None,
    notify: Callable[..., dict[str, Any] | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RecordFailureOutput:
    """Record the failed run (error, cause, failed state, timings) and alert; change nothing else.

    A run that already ended (RecordFailure retried after it recorded) is left as it is. A run whose
    StartRun never recorded it (a malformed request, an unknown portfolio) is recorded as started and
    failed in one append, so every execution that failed has a record.
    """
    error = str(task.error.get("Error") or "States.Runtime")
    cause = str(task.error.get("Cause") or "")
    run = task.state.get("run") if isinstance(task.state.get("run"), dict) else None
    if run is not None and "stream" in run:
        stream, subject = str(run["stream"]), str(run["subject"])
    else:
        stream, subject = run_stream(task.machine, task.state)
    existing = store.view("run", task.run_id)
    if existing is not None and existing["status"] != "RUNNING":
        return RecordFailureOutput(
            run_id=task.run_id, recorded=False, stream=existing["stream"], error=error, cause=cause, failed_state=None
        )
    # The states before this one (this task is still running while it reads the history).
    timings = [t for t in (steps(task.execution) if steps and task.execution else []) if t["status"] != "running"]
    failed = [s for s in timings if s.get("status") == "failed"]
    failed_state = failed[-1]["state"] if failed else None
    message = _message(cause)
    alert = None
    if notify is not None:
        try:
            alert = notify(portfolio=subject, run_id=task.run_id, error=error, cause=cause, failed_state=failed_state)
        except PortfolioEngineError as exc:  # the failure is recorded even when it cannot be alerted
            logger.warning("run %s failed and its alert could not be sent: %s", task.run_id, exc)
    ended_at = clock()

    def build(version: int) -> list[NewEvent]:
        current = store.view("run", task.run_id)
        events: list[NewEvent] = []
        if current is None:
            started = (task.started_at or ended_at).isoformat()
            request = {k: v for k, v in task.state.items() if k != "error"}
            data = {"machine": task.machine, "trigger": request.get("trigger", "cli"), "started_at": started}
            try:  # keep the request only if it is one (a malformed one is what failed)
                json.dumps(request)
                data["request"] = request
            except (TypeError, ValueError):
                pass
            events.append(NewEvent(type="RunStarted", run_id=task.run_id, data=data))
        if alert is not None:  # before RunFailed: a run's events end with the one that ends it
            events.append(NewEvent(type="AlertSent", run_id=task.run_id, data=alert_event_data(alert)))
        events.append(
            NewEvent(
                type="RunFailed",
                run_id=task.run_id,
                data={
                    "error": error,
                    "cause": message[:MAX_CAUSE],
                    "failed_state": failed_state,
                    "ended_at": ended_at.isoformat(),
                    "steps": timings,
                },
            )
        )
        return events

    append_retrying(store, stream, build)
    logger.warning(
        "run failed", extra={"run_id": task.run_id, "error": error, "failed_state": failed_state, "stream": stream}
    )
    return RecordFailureOutput(
        run_id=task.run_id,
        recorded=True,
        stream=stream,
        error=error,
        cause=message,
        failed_state=failed_state,
        alert=alert,
    )


def child_run_id(portfolio: str, batch_id: str, scheduled_for: datetime | None) -> str:
    """A portfolio's run id in a batch: ``<portfolio>-<scheduled time>`` (or ``-<batch id>`` when unscheduled).

    The same trigger (the same fire time) always gives the same id, so Step Functions starts it once.
    """
    suffix = f"{scheduled_for.astimezone(UTC):%Y%m%dT%H%MZ}" if scheduled_for else batch_id
    return f"{portfolio}-{suffix}"[:80].rstrip("-_.")


def list_portfolios(task: ListPortfoliosInput, *, store: Store) -> ListPortfoliosOutput:
    """The active portfolios to rebalance and one deterministic child run for each.

    Raises
    ------
    RecordNotFoundError
        A requested portfolio the store does not hold, or that is archived.
    """
    request = task.request
    active: list[str] = []
    cursor = None
    while True:
        page = store.views("portfolio", limit=200, cursor=cursor)
        active += [p["name"] for p in page.items if p["status"] == "active"]
        if page.cursor is None:
            break
        cursor = page.cursor
    names = active if request.portfolios is None else list(request.portfolios)
    unknown = sorted(set(names) - set(active))
    if unknown:
        raise RecordNotFoundError(
            f"No active portfolio {unknown} in the store.", hint=f"Active portfolios: {active or 'none'}."
        )
    base: dict[str, Any] = {"trigger": request.trigger, "source": request.source}
    if request.scheduled_for is not None:
        base["scheduled_for"] = request.scheduled_for.isoformat()
    runs = [
        ChildRun(run_id=child_run_id(name, task.batch_id, request.scheduled_for), input={**base, "portfolio": name})
        for name in names
    ]
    return ListPortfoliosOutput(batch_id=task.batch_id, portfolios=names, runs=runs)
