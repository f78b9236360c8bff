"""The EventBridge schedules CDK deploys, fired on this machine (``spe schedule``).

moto's EventBridge never fires a schedule and cannot deliver to Lambda or Step Functions, so the local
scheduler is ours. It reads the same configuration CDK deploys (``infra/cdk/cdk.json``, context ``spe``:
``schedules``, ``stateMachines``, ``functions``, with the stage's overrides) without importing ``infra/``,
and turns each rule's expression into fire times (:mod:`portfolio_engine.local.schedule_expressions`).

A scheduled run is named ``<schedule name>-<fire time UTC as %Y%m%dT%H%MZ>`` (a valid Step Functions
execution name and engine run id), so the same fire time never gives two runs. A state machine's input is the
schedule's ``input`` with ``"trigger": "schedule"`` and ``"scheduled_for"`` (the fire time) added; in any
input, a string starting with ``$.`` is a path into the EventBridge event, as CDK deploys it, resolved
against the event EventBridge would send (its ``id`` is the run id, its ``time`` the fire time).

:class:`Scheduler` fires them: ``run_due`` runs each schedule's latest fire time at or before now (``spe
schedule --once``), ``run_forever`` sleeps until the next fire time and runs it, until interrupted. It asks
``already_ran`` before each run: ``spe schedule`` answers from the store of record for state machine
targets (every machine records its run, under its execution name). A function target (the scheduled ingest)
records no run: it relies on the function's own idempotency (powertools, keyed on the event id when
``SPE_IDEMPOTENCY_TABLE`` is set) and on ingest being idempotent by design (an upsert of the bars the source
serves), so running it again for a fire time it already ran changes nothing.

Nothing here talks to AWS: launching a run is the caller's ``launch`` callable.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.local.schedule_expressions import RATE_ORIGIN, ScheduleExpression, parse_expression
from portfolio_engine.local.schedule_expressions import utc as _utc

__all__ = [
    "Outcome",
    "RunReport",
    "Schedule",
    "ScheduleExpression",
    "ScheduledRun",
    "Scheduler",
    "load_schedules",
    "parse_expression",
    "run_id_for",
]

logger = logging.getLogger(__name__)

CONTEXT_KEY = "spe"
#: EventBridge's fire times are whole minutes in UTC; ids keep the minute.
RUN_ID_TIME_FORMAT = "%Y%m%dT%H%MZ"
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ACCOUNT = "123456789012"
REGION = "us-east-1"

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,47}$")  # as infra/cdk/spe_infra/config.py validates it
_SCHEDULE_KEYS = {"expression", "function", "stateMachine", "input", "enabled"}


def run_id_for(schedule: str, fire_time: datetime) -> str:
    """The run id (and execution name) of a schedule's run at ``fire_time``: ``<name>-<%Y%m%dT%H%MZ>``."""
    return f"{schedule}-{_utc(fire_time):{RUN_ID_TIME_FORMAT}}"


@dataclass(frozen=True, eq=False)
class Schedule:
    """One EventBridge rule of ``cdk.json``: its expression (UTC), exactly one target, and the target's input.

    Attributes
    ----------
    name : str
        The key under ``spe.schedules``.
    expression : str
        ``cron(...)`` or ``rate(...)``.
    function, state_machine : str or None
        The target: a folder under ``functions/``, or a name under ``spe.stateMachines``.
    input : mapping
        The target's input; strings starting with ``$.`` are paths into the EventBridge event.
    enabled : bool
        A disabled rule never fires.
    definition : str or None
        For a state machine target, its definition file under ``state_machines/`` (``retrain_regime.asl.json``).

    Raises
    ------
    ConfigurationError
        On an invalid name, no or two targets, an expression that does not parse, or an input path (``$.x``)
        that is not a field of a scheduled event.
    """

    name: str
    expression: str
    function: str | None = None
    state_machine: str | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    definition: str | None = None
    timing: ScheduleExpression = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigurationError(
                f"Schedule name {self.name!r} is not valid.", hint="Use 1-48 lower-case letters, digits and '-'."
            )
        if (self.function is None) == (self.state_machine is None):
            raise ConfigurationError(
                f"Schedule {self.name!r} needs exactly one target.", hint="Give either 'function' or 'stateMachine'."
            )
        object.__setattr__(self, "timing", parse_expression(self.expression, schedule=self.name))
        self.run_at(RATE_ORIGIN).payload()  # an input path no scheduled event has fails here, not at a fire time

    @property
    def target(self) -> str:
        """``function:<name>`` or ``stateMachine:<name>``."""
        return f"function:{self.function}" if self.function else f"stateMachine:{self.state_machine}"

    def run_at(self, fire_time: datetime) -> ScheduledRun:
        """The run of this schedule at ``fire_time``."""
        return ScheduledRun(self, _utc(fire_time))


def _resolve_path(path: str, event: Mapping[str, Any], schedule: str) -> Any:
    node: Any = event
    for key, index in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path[1:]):
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError):
            raise ConfigurationError(
                f"Schedule {schedule!r}: input path {path!r} is not in a scheduled EventBridge event.",
                hint=f"Use one of $.{', $.'.join(event)} (a scheduled event's fields).",
            ) from None
    return node


def _resolve(value: Any, event: Mapping[str, Any], schedule: str) -> Any:
    """Replace ``"$.path"`` strings by the event's values, recursively (what CDK's ``EventField`` deploys)."""
    if isinstance(value, str) and value.startswith("$."):
        return _resolve_path(value, event, schedule)
    if isinstance(value, Mapping):
        return {key: _resolve(item, event, schedule) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, event, schedule) for item in value]
    return value


@dataclass(frozen=True)
class ScheduledRun:
    """One fire of one schedule: its deterministic run id, the EventBridge event, the target's payload."""

    schedule: Schedule
    fire_time: datetime

    @property
    def run_id(self) -> str:
        return run_id_for(self.schedule.name, self.fire_time)

    def event(self) -> dict[str, Any]:
        """The scheduled event EventBridge would send, its ``id`` the run id and its ``time`` the fire time."""
        return {
            "version": "0",
            "id": self.run_id,
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": f"{self.fire_time:{EVENT_TIME_FORMAT}}",
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.schedule.name}"],
            "detail": {},
        }

    def payload(self) -> dict[str, Any]:
        """The target's input: ``input`` with its ``$.`` paths resolved against :meth:`event`.

        A state machine's input also gets ``trigger`` and ``scheduled_for`` (its request models accept them;
        a function's input model may not).

        Raises
        ------
        ConfigurationError
            If a ``$.`` path is not a field of a scheduled event.
        """
        resolved = _resolve(dict(self.schedule.input), self.event(), self.schedule.name)
        if self.schedule.state_machine:
            resolved = {**resolved, "trigger": "schedule", "scheduled_for": f"{self.fire_time:{EVENT_TIME_FORMAT}}"}
        return resolved


def _config_error(path: Path, where: str, problem: str, hint: str) -> ConfigurationError:
    return ConfigurationError(f"{path}: {where}: {problem}", hint=hint)


def load_schedules(path: Path, *, stage: str | None = None) -> tuple[Schedule, ...]:
    """Read the schedules of a CDK ``cdk.json`` (context ``spe``), as ``EngineConfig.from_context`` reads them.

    The stage is ``stage``, else the context's ``stage``, else ``dev``; its ``spe.stages.<stage>`` entries
    are merged over the defaults one level deep (a schedule named there replaces the default one).

    Parameters
    ----------
    path : Path
        ``infra/cdk/cdk.json``, or a file of the same shape.
    stage : str, optional
        The stage whose overrides apply.

    Returns
    -------
    tuple of Schedule
        In the file's order, disabled ones included.

    Raises
    ------
    ConfigurationError
        If the file is missing or not JSON, a schedule has unknown keys, no or two targets, a target the
        configuration does not define, an input that is not an object, or an expression that does not parse.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"No CDK configuration at {path}.", hint="Point --config at a cdk.json with a context.spe object."
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path} is not readable JSON: {exc}.", hint="Fix the file (it is cdk.json).") from exc
    context = document.get("context", {}) if isinstance(document, Mapping) else {}
    raw = context.get(CONTEXT_KEY) if isinstance(context, Mapping) else None
    if not isinstance(raw, Mapping):
        raise _config_error(
            path, "context.spe", "missing or not an object", "cdk.json keeps the engine's settings there."
        )
    raw = dict(raw)
    stages = raw.pop("stages", {}) or {}
    stage = stage or raw.pop("stage", None) or context.get("stage") or "dev"
    for key, value in (stages.get(stage) or {}).items() if isinstance(stages, Mapping) else ():
        base = raw.get(key)
        raw[key] = {**base, **value} if isinstance(base, Mapping) and isinstance(value, Mapping) else value
    functions, machines = raw.get("functions") or {}, raw.get("stateMachines") or {}
    bodies = raw.get("schedules") or {}
    if not isinstance(bodies, Mapping):
        raise _config_error(path, "spe.schedules", "not an object", "Map each schedule's name to its settings.")
    schedules = []
    for name, body in bodies.items():
        where = f"spe.schedules.{name}"
        if not isinstance(body, Mapping):
            raise _config_error(path, where, "not an object", "Give expression, function or stateMachine, input.")
        unknown = sorted(set(body) - _SCHEDULE_KEYS)
        if unknown or "expression" not in body:
            problem = f"unknown keys {unknown}" if unknown else "no 'expression'"
            raise _config_error(path, where, problem, f"Allowed keys: {sorted(_SCHEDULE_KEYS)}.")
        function, machine = body.get("function"), body.get("stateMachine")
        if function is not None and function not in functions:
            raise _config_error(path, where, f"unknown function {function!r}", f"Known: {sorted(functions)}.")
        if machine is not None and machine not in machines:
            raise _config_error(path, where, f"unknown state machine {machine!r}", f"Known: {sorted(machines)}.")
        if not isinstance(body.get("input", {}), Mapping) or not isinstance(body.get("enabled", True), bool):
            raise _config_error(path, where, "'input' must be an object, 'enabled' true or false", "Fix the entry.")
        schedules.append(
            Schedule(
                name=str(name),
                expression=str(body["expression"]),
                function=function,
                state_machine=machine,
                input=dict(body.get("input", {})),
                enabled=body.get("enabled", True),
                definition=machines.get(machine) if machine is not None else None,
            )
        )
    return tuple(schedules)


@dataclass(frozen=True)
class Outcome:
    """How a launched run ended: its status (``SUCCEEDED``, ``FAILED``, ...) and, if it failed, why."""

    status: str
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True)
class RunReport:
    """One run started or skipped by the scheduler (what ``spe schedule --json`` prints, one per line)."""

    schedule: str
    target: str
    run_id: str
    scheduled_for: datetime
    action: str
    """``ran`` or ``skipped``."""
    status: str
    """The run's end (``SUCCEEDED``, ``FAILED``, ...), or ``SKIPPED``."""
    error: str | None = None
    cause: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.action == "ran" and self.status != "SUCCEEDED"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "target": self.target,
            "run_id": self.run_id,
            "scheduled_for": f"{self.scheduled_for:{EVENT_TIME_FORMAT}}",
            "action": self.action,
            "status": self.status,
            "error": self.error,
            "cause": self.cause,
            "seconds": round(self.seconds, 3),
        }


def one_line(text: str | None, limit: int = 300) -> str | None:
    """A Lambda error payload's or Step Functions cause's message, on one line of at most ``limit`` characters."""
    if text is None:
        return None
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        document = None
    if isinstance(document, Mapping) and "errorMessage" in document:
        text = str(document["errorMessage"])
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Fire schedules on this machine: the latest due run of each (``run_due``), or each as it falls due.

    Parameters
    ----------
    schedules : sequence of Schedule
        Disabled ones are ignored.
    launch : callable
        ``launch(run) -> Outcome``: runs one scheduled run to its end (``spe schedule``: the local state
        machine runner, or the function in-process). An exception it raises is that run's failure.
    already_ran : callable, optional
        ``already_ran(run) -> bool``: whether the run id already names a run; such a run is skipped.
    now, sleep : callable
        The clock (aware datetimes) and the sleep; tests pass fakes, so two fire times take milliseconds.
    report : callable, optional
        Told each :class:`RunReport` as it happens.
    max_sleep_seconds : float
        The longest single sleep: the clock is read again after it (a laptop that slept, a clock change).
    """

    def __init__(
        self,
        schedules: Iterable[Schedule],
        *,
        launch: Callable[[ScheduledRun], Outcome],
        already_ran: Callable[[ScheduledRun], bool] = lambda _run: False,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
        report: Callable[[RunReport], None] = lambda _report: None,
        max_sleep_seconds: float = 60.0,
    ) -> None:
        self.schedules = tuple(s for s in schedules if s.enabled)
        self.launch = launch
        self.already_ran = already_ran
        self.now = now
        self.sleep = sleep
        self.report = report
        self.max_sleep_seconds = max_sleep_seconds

    def due(self, moment: datetime | None = None) -> list[ScheduledRun]:
        """Each schedule's latest fire time at or before ``moment`` (default: now), as runs."""
        moment = self.now() if moment is None else moment
        runs = []
        for schedule in self.schedules:
            fire = schedule.timing.latest_at_or_before(moment)
            if fire is not None:
                runs.append(schedule.run_at(fire))
        return runs

    def next_fire(self, moment: datetime | None = None) -> tuple[datetime, list[Schedule]] | None:
        """The next fire time after ``moment`` (default: now) and the schedules firing then, or None."""
        moment = self.now() if moment is None else moment
        upcoming = [(s.timing.next_after(moment), s) for s in self.schedules]
        times = [t for t, _ in upcoming if t is not None]
        if not times:
            return None
        first = min(times)
        return first, [s for t, s in upcoming if t == first]

    def fire(self, run: ScheduledRun) -> RunReport:
        """Run ``run`` unless it already ran; a failure is reported, never raised."""
        started = time.monotonic()

        def report(action: str, status: str, error: str | None = None, cause: str | None = None) -> RunReport:
            return RunReport(
                schedule=run.schedule.name,
                target=run.schedule.target,
                run_id=run.run_id,
                scheduled_for=run.fire_time,
                action=action,
                status=status,
                error=error,
                cause=one_line(cause),
                seconds=time.monotonic() - started,
            )

        try:
            if self.already_ran(run):
                logger.info("schedule %s: %s already ran", run.schedule.name, run.run_id)
                result = report("skipped", "SKIPPED", cause="a run with this id exists")
            else:
                logger.info("schedule %s: starting %s", run.schedule.name, run.run_id)
                outcome = self.launch(run)
                result = report("ran", outcome.status, outcome.error, outcome.cause)
        except Exception as exc:  # one schedule's failure never stops the others
            error = getattr(exc, "error", None) or type(exc).__name__
            result = report("ran", "FAILED", str(error), getattr(exc, "message", None) or str(exc))
        if result.failed:
            logger.warning(
                "schedule %s: %s %s: %s: %s", run.schedule.name, run.run_id, result.status, result.error, result.cause
            )
        self.report(result)
        return result

    def run_due(self) -> list[RunReport]:
        """Run each schedule's latest fire time at or before now, unless it already ran (``--once``)."""
        return [self.fire(run) for run in self.due()]

    def run_forever(self) -> None:
        """Sleep until the next fire time, run what falls due, repeat; returns only if nothing fires again.

        Fire times missed while the process could not run (a long run, a laptop asleep) are coalesced: each
        schedule runs its latest due fire time once. Interrupt it (Ctrl-C: ``KeyboardInterrupt``) to stop.
        """
        moment = self.now()
        pending = {s.name: s.timing.next_after(moment) for s in self.schedules}
        while True:
            upcoming = [t for t in pending.values() if t is not None]
            if not upcoming:
                logger.info("no schedule fires again")
                return
            wait = (min(upcoming) - self.now()).total_seconds()
            if wait > 0:
                self.sleep(min(wait, self.max_sleep_seconds))
                continue
            moment = self.now()
            for schedule in self.schedules:
                next_time = pending[schedule.name]
                if next_time is None or next_time > moment:
                    continue
                fire = schedule.timing.latest_at_or_before(moment)
                assert fire is not None
                self.fire(schedule.run_at(fire))
                pending[schedule.name] = schedule.timing.next_after(fire)
