"""Deployment configuration: one object, read once from the CDK context.

Everything a stage may change lives in ``cdk.json`` under the context key ``spe`` (defaults) and
``spe.stages.<stage>`` (overrides, merged one level deep). The stage comes from ``-c stage=<name>``
and defaults to ``spe.stage``. Adding a Lambda function or a state machine is one line in
``cdk.json`` (a schedule is one entry); no construct code changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The repository root: ``infra/cdk/spe_infra/config.py`` is three folders below it."""

CONTEXT_KEY = "spe"
LakeAccess = Literal["none", "read", "read_write"]
StoreAccess = Literal["none", "read", "write"]
Packaging = Literal["image", "zip"]
AlertsRole = Literal["none", "publish", "subscribe"]
_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_FUNCTION = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,47}$")


class ConfigError(ValueError):
    """The CDK context does not describe a deployable stage."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _build(cls: type, raw: Mapping[str, Any], where: str, **computed: Any) -> Any:
    """Build dataclass ``cls`` from camelCase ``raw``; unknown keys are errors, not silently ignored."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {type(raw).__name__}")
    known = {_camel(f.name): f.name for f in fields(cls) if f.name not in computed}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(known)}")
    return cls(**{known[key]: value for key, value in raw.items()}, **computed)


@dataclass(frozen=True)
class FunctionSettings:
    """Sizing, packaging and permissions of one Lambda function (a folder under ``functions/``).

    Each permission is off unless the function's entry asks for it, so a function gets what it needs and
    nothing more.
    """

    memory_mb: int = 1024
    timeout_seconds: int = 300
    ephemeral_storage_mb: int = 512
    lake_access: LakeAccess = "read_write"
    """Objects under the lake prefix: ``none``, ``read`` or ``read_write`` (its env gets ``SPE_LAKE_URI``)."""
    packaging: Packaging = "image"
    """``image``: the shared quant container image. ``zip``: the handler and the library modules it imports,
    with the light layer (``layers/light``) for its dependencies: for functions whose imports reach no numpy."""
    store: StoreAccess = "none"
    """The store of record (``SPE_STORE_URI``): ``read`` (get, query) or ``write`` (also put, update, delete,
    condition checks: what a ``TransactWriteItems`` of those is authorised by)."""
    idempotency: bool = False
    """Powertools idempotency records (``SPE_IDEMPOTENCY_TABLE``): get, put, update and delete items."""
    alerts: AlertsRole = "none"
    """The alerts topic: ``publish`` (``SPE_ALERTS_TOPIC_ARN``, ``sns:Publish`` and the topic key), or
    ``subscribe`` (an SNS subscription; asynchronous retries, then a dead-letter queue)."""
    execution_history: bool = False
    """May read the execution histories (``states:GetExecutionHistory``) of the state machines that invoke it."""
    secrets: tuple[str, ...] = ()
    """Keys of ``EngineConfig.secrets`` this function may read (its env gets ``SPE_<KEY>_SECRET_ID``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", tuple(self.secrets))
        if not 128 <= self.memory_mb <= 10240:
            raise ConfigError(f"memoryMb={self.memory_mb} is outside Lambda's 128..10240 MB")
        if not 1 <= self.timeout_seconds <= 900:
            raise ConfigError(f"timeoutSeconds={self.timeout_seconds} is outside Lambda's 1..900 s")
        if not 512 <= self.ephemeral_storage_mb <= 10240:
            raise ConfigError(f"ephemeralStorageMb={self.ephemeral_storage_mb} is outside 512..10240 MB")
        for key, value, allowed in (
            ("lakeAccess", self.lake_access, ("none", "read", "read_write")),
            ("packaging", self.packaging, ("image", "zip")),
            ("store", self.store, ("none", "read", "write")),
            ("alerts", self.alerts, ("none", "publish", "subscribe")),
        ):
            if value not in allowed:
                raise ConfigError(f"{key}={value!r}; use one of {', '.join(repr(a) for a in allowed)}")
        for key, flag in (("idempotency", self.idempotency), ("executionHistory", self.execution_history)):
            if not isinstance(flag, bool):
                raise ConfigError(f"{key}={flag!r}; use true or false")


@dataclass(frozen=True)
class ScheduleSettings:
    """An EventBridge rule: a cron/rate expression (UTC) and exactly one target, with its input.

    In ``input``, a string value starting with ``$.`` is a JSON path into the EventBridge event
    (``"$.id"`` gives each scheduled run a unique id). A state machine's input also gets
    ``"trigger": "schedule"`` and ``"scheduled_for": "$.time"`` (the fire time), as ``spe schedule``
    (``portfolio_engine.local.scheduler``) adds them locally.
    """

    name: str
    expression: str
    function: str | None = None
    state_machine: str | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"schedule name {self.name!r} must be lower-case letters, digits and '-'")
        if (self.function is None) == (self.state_machine is None):
            raise ConfigError(f"schedule {self.name!r} needs exactly one of 'function' or 'stateMachine'")
        if not re.match(
            r"^(cron\(([^ ]+ ){5}[^ ]+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\))$", self.expression
        ):
            raise ConfigError(
                f"schedule {self.name!r}: {self.expression!r} is not an EventBridge expression; "
                "use cron(min hour day-of-month month day-of-week year) or rate(N unit)"
            )


@dataclass(frozen=True)
class EngineConfig:
    """Everything that differs between stages, in one place."""

    stage: str
    region: str | None = None
    account: str | None = None
    lake_prefix: str = "lake"
    log_retention_days: int = 30
    log_level: str = "INFO"
    metrics_namespace: str = "StochasticPortfolioEngine"
    validation_policy: str = "forward_fill"
    noncurrent_version_days: int = 90
    access_log_days: int = 365
    function_defaults: FunctionSettings = field(default_factory=FunctionSettings)
    functions: Mapping[str, FunctionSettings] = field(default_factory=dict)
    """Folder name under ``functions/`` -> settings (the quant image, or a zip with the light layer)."""
    state_machines: Mapping[str, str] = field(default_factory=dict)
    """State machine name -> definition file under ``state_machines/``."""
    schedules: tuple[ScheduleSettings, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Secret key (``alpha_vantage``) -> Secrets Manager name; ``{stage}`` is replaced."""

    def __post_init__(self) -> None:
        if not _STAGE.match(self.stage):
            raise ConfigError(f"stage {self.stage!r} must be 1-16 lower-case letters, digits or '-'")
        for name, settings in self.functions.items():
            if not _FUNCTION.match(name):
                raise ConfigError(f"function {name!r} must be a snake_case folder name under functions/")
            missing = sorted(set(settings.secrets) - set(self.secrets))
            if missing:
                raise ConfigError(f"function {name!r} reads secrets {missing} that spe.secrets does not define")
        for schedule in self.schedules:
            if schedule.function and schedule.function not in self.functions:
                raise ConfigError(f"schedule {schedule.name!r} targets unknown function {schedule.function!r}")
            if schedule.state_machine and schedule.state_machine not in self.state_machines:
                raise ConfigError(
                    f"schedule {schedule.name!r} targets unknown state machine {schedule.state_machine!r}"
                )

    @property
    def prefix(self) -> str:
        """Physical-name prefix of every named resource of this stage (``spe-dev``)."""
        return f"spe-{self.stage}"

    def state_machine_name(self, name: str) -> str:
        """Physical name of state machine ``name`` (``rebalance`` -> ``spe-dev-rebalance``).

        Known before the machine exists, so an ARN built from it references no resource: a machine that
        starts another, or a function that reads the executions of the machine that invokes it, makes no
        dependency cycle.
        """
        return f"{self.prefix}-{name}"

    def secret_name(self, key: str) -> str:
        return self.secrets[key].format(stage=self.stage)

    @classmethod
    def from_context(cls, raw: Mapping[str, Any], stage: str | None = None) -> EngineConfig:
        """Build the configuration of ``stage`` from the ``spe`` context object.

        Raises
        ------
        ConfigError
            On unknown keys, missing references or values outside AWS limits; the message names the key.
        """
        raw = dict(raw)
        stages = raw.pop("stages", {}) or {}
        stage = stage or raw.pop("stage", None) or "dev"
        raw.pop("stage", None)
        for key, value in (stages.get(stage) or {}).items():
            base = raw.get(key)
            raw[key] = {**base, **value} if isinstance(base, Mapping) and isinstance(value, Mapping) else value

        defaults = _build(FunctionSettings, raw.pop("functionDefaults", {}), "spe.functionDefaults")
        functions = {}
        for name, overrides in (raw.pop("functions", {}) or {}).items():
            merged = {_camel(f.name): getattr(defaults, f.name) for f in fields(FunctionSettings)}
            merged.update(overrides or {})
            functions[name] = _build(FunctionSettings, merged, f"spe.functions.{name}")
        schedules = tuple(
            _build(ScheduleSettings, body, f"spe.schedules.{name}", name=name)
            for name, body in (raw.pop("schedules", {}) or {}).items()
        )
        return _build(
            cls,
            raw,
            "spe",
            stage=stage,
            function_defaults=defaults,
            functions=functions,
            schedules=schedules,
        )
