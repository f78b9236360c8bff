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
class ApiSettings:
    """The HTTP API (API Gateway v2) in front of the ``api`` function, with the ``api_authorizer`` function.

    Tokens come from the stack's Cognito user pool (ID tokens: ``aud`` is the app client's id) unless
    ``issuer``, ``audience`` and ``jwksUrl`` name an external OIDC issuer (all three, or none).
    """

    function: str = "api"
    """Folder under ``functions/`` serving every route (an entry of ``spe.functions``)."""
    authorizer: str = "api_authorizer"
    """Folder under ``functions/`` of the Lambda authorizer (an entry of ``spe.functions``)."""
    state_machines: tuple[str, ...] = ("rebalance", "backtest")
    """Machines the API starts and describes (``SPE_STATE_MACHINE_ARNS``); nothing else."""
    throttle_burst_limit: int = 100
    """Stage-wide burst (requests in flight) before API Gateway answers 429."""
    throttle_rate_limit: float = 50.0
    """Stage-wide steady requests per second before API Gateway answers 429."""
    rate_per_minute: int = 600
    """Per-caller limit enforced by the function itself (``SPE_API_RATE_PER_MINUTE``)."""
    max_body_bytes: int = 256 * 1024
    """Largest request body the function accepts (``SPE_API_MAX_BODY_BYTES``)."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed by CORS; empty (the default) leaves CORS off."""
    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_machines", tuple(self.state_machines))
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        if not 0 <= self.throttle_burst_limit <= 5000:
            raise ConfigError(f"api.throttleBurstLimit={self.throttle_burst_limit} is outside 0..5000 (account quota)")
        if not 0 < self.throttle_rate_limit <= 10000:
            raise ConfigError(f"api.throttleRateLimit={self.throttle_rate_limit} is outside 0..10000 requests/s")
        if not 1024 <= self.max_body_bytes <= 10 * 1024 * 1024:
            raise ConfigError(f"api.maxBodyBytes={self.max_body_bytes} is outside 1 KiB..10 MiB (HTTP API's limit)")
        if self.rate_per_minute < 1:
            raise ConfigError(f"api.ratePerMinute={self.rate_per_minute} must be at least 1")
        external = (self.issuer, self.audience, self.jwks_url)
        if any(external) and not all(external):
            raise ConfigError(
                "api.issuer, api.audience and api.jwksUrl name an external token issuer together: set all three, "
                "or none for the stack's Cognito user pool"
            )
        if self.jwks_url and not self.jwks_url.startswith("https://"):
            raise ConfigError(f"api.jwksUrl={self.jwks_url!r} must be an https URL")

    @property
    def external_issuer(self) -> bool:
        """Whether tokens come from an issuer named in the configuration instead of the stack's user pool."""
        return self.issuer is not None


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
    api: ApiSettings | None = None
    """The HTTP API; ``None`` (no ``spe.api``) deploys none."""

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
        if self.api is not None:
            for key, name in (("function", self.api.function), ("authorizer", self.api.authorizer)):
                if name not in self.functions:
                    raise ConfigError(f"api.{key}={name!r} is not an entry of spe.functions; add it there")
            unknown = sorted(set(self.api.state_machines) - set(self.state_machines))
            if unknown:
                raise ConfigError(f"api.stateMachines names {unknown}, which spe.stateMachines does not define")

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
        api = raw.pop("api", None)
        return _build(
            cls,
            raw,
            "spe",
            stage=stage,
            function_defaults=defaults,
            functions=functions,
            schedules=schedules,
            api=None if api is None else _build(ApiSettings, api, "spe.api"),
        )
