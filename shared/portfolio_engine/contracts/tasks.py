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


class RunRequest(_Contract):
    """What starts a rebalance run: the state machine's input. Every field has a default.

    ``symbols`` None means the bundled 20-stock universe. ``benchmarks`` are ingested and validated
    with the universe; the first is the index for beta and correlation features.
    """

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
