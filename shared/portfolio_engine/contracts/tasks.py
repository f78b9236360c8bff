"""Inputs and outputs of every pipeline task.

State machines pass these as JSON between states: references (run id, lake keys) and small
summaries, never the data itself (Step Functions caps a state's payload at 256 KiB). The run id is
the state machine execution's name, so logs, lake keys and executions share one id.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from portfolio_engine.regime.definition import RegimeModelSpec

SourceName = Literal["bundled", "yahoo", "alpha_vantage", "nasdaq_data_link", "file"]
ValidationMode = Literal["reject", "forward_fill", "quarantine"]
Interval = Literal["1d", "1h", "30m", "15m", "5m", "1m"]
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9^][A-Za-z0-9^./=_-]{0,31}$")


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_symbols(value: list[str]) -> list[str]:
    bad = [s for s in value if not _SYMBOL.match(s)]
    if bad:
        raise ValueError(f"not ticker symbols: {bad}")
    if len(set(value)) != len(value):
        raise ValueError(f"symbols are repeated: {sorted({s for s in value if value.count(s) > 1})}")
    return value


def _check_run_id(value: str) -> str:
    if not _RUN_ID.match(value):
        raise ValueError(f"run_id {value!r} must be 1-80 characters of letters, digits, '-', '_' or '.'")
    return value


RunId = Annotated[str, AfterValidator(_check_run_id)]
Symbols = Annotated[list[str], AfterValidator(_check_symbols)]


Trigger = Literal["cli", "schedule", "api", "event", "replay"]
PortfolioName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class TriggerFields(BaseModel):
    """Who started a run, and the key that makes starting it twice start it once (every machine's input has them)."""

    trigger: Trigger = Field(default="cli", description="cli, schedule, api, event (an SNS/SQS message), replay.")
    idempotency_key: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", description="Same key, same run."
    )
    scheduled_for: datetime | None = Field(default=None, description="The schedule's fire time, for scheduled runs.")


class RunRequest(TriggerFields, _Contract):
    """What starts a rebalance run: the state machine's input. Every field has a default.

    ``portfolio`` names the stored portfolio to rebalance (``default`` is created from the bundled spec on
    the first run). ``symbols`` None means the portfolio's own universe (its spec's ``universe``).
    ``benchmarks`` are ingested and validated with the universe; the first is the index for beta and
    correlation features.
    """

    portfolio: PortfolioName = "default"
    source: SourceName = "bundled"
    symbols: Symbols | None = None
    benchmarks: Symbols = Field(description="Default: ['^GSPC'], or none for a user file.")
    start: date | None = None
    end: date | None = None
    file_uri: str | None = Field(default=None, description="For source='file': the CSV/Parquet to load.")
    interval: Interval = "1d"
    validation_policy: ValidationMode | None = Field(default=None, description="None: the configured default.")

    @model_validator(mode="before")
    @classmethod
    def _default_benchmarks(cls, data: Any) -> Any:
        # A user file rarely holds the index; every other source serves ^GSPC.
        if isinstance(data, dict) and data.get("benchmarks") is None:
            return {**data, "benchmarks": [] if data.get("source") == "file" else ["^GSPC"]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RunRequest:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        if self.source == "file" and not self.file_uri:
            raise ValueError("source='file' needs file_uri (a CSV or Parquet path or s3:// URI)")
        if self.symbols == []:
            raise ValueError("symbols is empty; omit it for the default universe")
        return self


def _scheduled_run_id() -> str:
    return f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


class IngestInput(_Contract):
    """IngestPrices' input: the run id (the execution name) and the run request.

    A scheduled invocation (EventBridge, no execution) may omit the run id: one is made from the time.
    """

    run_id: RunId = Field(default_factory=_scheduled_run_id)
    request: RunRequest = Field(default_factory=lambda: RunRequest.model_validate({}))


class IngestOutput(_Contract):
    """What IngestPrices wrote to the raw zone, and what the next steps need to know."""

    run_id: str
    source: str
    interval: Interval
    symbols: list[str] = Field(description="Universe and benchmarks, all ingested.")
    index_symbol: str | None
    validation_policy: ValidationMode
    rows_fetched: int
    rows_new: int
    rows_updated: int
    rows_unchanged: int
    first_date: date | None
    last_date: date | None
    up_to_date: list[str] = Field(default_factory=list, description="Symbols that had no bar newer than the lake's.")
    restated: list[str] = Field(default_factory=list, description="Symbols whose history the source restated.")
    reference_tables: list[str] = Field(default_factory=list)
    rows_superseded: int = Field(0, description="Earlier raw values this ingest replaced, kept as history.")
    rows_quarantined: int = Field(
        0,
        description="Fetched bars not stored: a NaN, zero or negative price replacing a valid stored one "
        "(kept at quarantine_key, listed in the report).",
    )
    rows_dropped: int = Field(
        0, description="Rows of the source's data that were not bars (no date, no symbol, a blank price cell)."
    )
    quarantine_key: str | None = Field(None, description="Lake key of the quarantined bars, if any.")
    report_key: str | None = Field(None, description="Lake key of the ingest report (counts, every row refused).")


class ValidateInput(_Contract):
    run_id: RunId
    source: SourceName
    symbols: Symbols
    interval: Interval = "1d"
    validation_policy: ValidationMode | None = None


class ValidateOutput(_Contract):
    """The validation verdict; the report itself is in the lake at ``report_key``."""

    run_id: str
    source: str
    policy: ValidationMode
    passed: bool
    symbols: list[str] = Field(description="Symbols cleared for use (written to the curated zone).")
    quarantined: list[str]
    errors: int
    warnings: int
    forward_filled: int
    report_key: str


class FeaturesInput(_Contract):
    run_id: RunId
    source: SourceName
    symbols: Symbols
    interval: Interval = "1d"
    index_symbol: str | None = "^GSPC"


class FeaturesOutput(_Contract):
    """Where the feature set landed."""

    run_id: str
    feature_version: str
    feature_key: str
    symbols: list[str]
    index_symbol: str | None = Field(description="None when the index was not among the validated symbols.")
    columns: list[str]
    rows: int
    first_date: date
    last_date: date


def _feature_key(value: str) -> str:
    if not re.fullmatch(r"features/version=[0-9a-f]+/dataset=[0-9a-f]+", value):
        raise ValueError(f"not a feature set key (features/version=<v>/dataset=<d>): {value!r}")
    return value


FeatureKey = Annotated[str, AfterValidator(_feature_key)]


class TrainRegimeInput(_Contract):
    """Train a challenger regime model on a stored feature set and apply the promotion rule."""

    run_id: RunId = Field(default_factory=lambda: f"train-{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
    feature_key: FeatureKey
    model: RegimeModelSpec = Field(default_factory=RegimeModelSpec)


class TrainRegimeOutput(_Contract):
    """The challenger's version, its metrics and the promotion decision."""

    run_id: str
    name: str
    version: str
    promoted: bool
    reason: str
    champion: str | None = Field(description="The champion after the decision.")
    champion_before: str | None = Field(default=None, description="The champion the decision was made against.")
    challenger_metric: float
    champion_metric: float | None
    scores: dict[str, float | None] = Field(default_factory=dict, description="Penalties and penalised scores.")
    created_at: str | None = None
    metrics: dict[str, float]
    n_obs: int
    first_date: date
    last_date: date


class DetectRegimeInput(_Contract):
    """Current regime probabilities of a portfolio's regime model on the run's feature set."""

    run_id: RunId
    feature_key: FeatureKey
    portfolio: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    index_symbol: str | None = Field(default=None, description="The run's index; the model's symbol when None.")
    model: RegimeModelSpec = Field(default_factory=RegimeModelSpec)
    model_version: str | None = Field(
        default=None, description="Use this stored version instead of the champion (a replay of a past run)."
    )
    train_if_missing: bool = Field(
        default=True, description="Train a first model when none fits (the run's commit promotes it)."
    )


class DetectRegimeOutput(_Contract):
    """Filtered (data up to the last date only) regime probabilities and the model that gave them."""

    run_id: str
    portfolio: str
    available: bool = Field(description="False when the run's data cannot carry the model (reason says why).")
    reason: str | None = None
    model_name: str
    model_version: str | None = None
    trained_now: bool = False
    symbol: str
    as_of: date | None = None
    state_names: list[str] = Field(default_factory=list)
    probabilities: dict[str, float] = Field(default_factory=dict, description="P(state at as_of | data to as_of).")
    regime: str | None = Field(default=None, description="The most probable state at as_of.")
    next_probabilities: dict[str, float] = Field(default_factory=dict, description="P(state at as_of + 1 period).")
    transition_matrix: list[list[float]] = Field(default_factory=list)
    expected_durations: dict[str, float] = Field(default_factory=dict, description="In periods (trading days).")
    proposal: TrainRegimeOutput | None = Field(
        default=None, description="A model trained by this run and its promotion decision, committed with the run."
    )


class OptimizeInput(_Contract):
    """Target weights for a portfolio from the run's curated prices and (when regime-aware) its regime."""

    run_id: RunId
    source: SourceName
    symbols: Symbols = Field(description="The run's validated symbols; the universe defaults to these minus the index.")
    index_symbol: str | None = None
    interval: Interval = "1d"
    portfolio: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    spec: dict[str, Any] | None = Field(
        default=None,
        description="A PortfolioSpec inline; default: the lake's portfolios/<name>/spec.json, or the bundled one.",
    )
    feature_key: FeatureKey | None = Field(default=None, description="The run's feature set (for the regime model).")
    regime: DetectRegimeOutput | None = Field(default=None, description="DetectRegime's output for this run.")
    spec_version: int | None = Field(default=None, description="The stored spec's version the run started with.")
    method: str | None = Field(
        default=None, description="A what-if: this method instead of the spec's (the spec is resolved as usual)."
    )


class RebalanceOutcome(_Contract):
    """Whether the portfolio trades to its new target, and why."""

    rebalance: bool
    reason: str
    drift: float
    turnover: float
    cost: float
    benefit: float


class OptimizeOutput(_Contract):
    """The target, the holdings after the rebalancing decision, and where the full result is stored."""

    run_id: str
    portfolio: str
    method: str = Field(description="The method in force (a regime policy may replace the spec's).")
    regime: str | None
    regime_role: str | None = Field(
        default=None, description="The regime's role by volatility rank: calm (lowest), normal, turbulent (highest)."
    )
    policy: str | None = Field(
        default=None, description="The regime_policies key in force (a role or a state name); None: the spec's own."
    )
    adaptations: list[str] = Field(
        default_factory=list,
        description="Changes made to the bundled default spec for this run's universe (narrowed universe, wider caps).",
    )
    regime_aware: bool
    as_of: date
    target_weights: dict[str, float]
    holdings: dict[str, float] = Field(description="Weights held after the decision (the target if it rebalanced).")
    expected_return: float
    volatility: float
    sharpe: float
    risk_contributions: dict[str, float]
    decision: RebalanceOutcome
    solver: str
    result_key: str
    spec_version: int | None = Field(default=None, description="The stored spec's version (None: inline).")
    holdings_before: dict[str, Any] | None = Field(
        default=None, description="The stored holdings the decision started from: weights, as_of, regime."
    )
    holdings_version: int | None = Field(
        default=None, description="The portfolio stream's version that set them; the commit checks it is unchanged."
    )
