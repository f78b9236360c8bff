"""Inputs and outputs of the run lifecycle tasks every state machine shares: StartRun, CommitRun, RecordFailure.

A machine's first task records the run (``RunStarted``) and resolves what it works on; its steps only propose
(artefacts keyed by the run id); its last task commits everything in one transaction; every ``Catch`` goes to
RecordFailure, which records the failed run and changes nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from portfolio_engine.contracts.risk import (
    AggregateRiskOutput,
    AlertOutput,
    CheckLimitsOutput,
    PlanRiskOutput,
    ProposeHedgeOutput,
    StressOutput,
)
from portfolio_engine.contracts.tasks import (
    DetectRegimeOutput,
    FeaturesOutput,
    IngestOutput,
    OptimizeOutput,
    RunId,
    ValidateOutput,
    _Contract,
)

Machine = Literal["rebalance", "retrain-regime", "backtest"]


class StartRunInput(_Contract):
    """StartRun's input: the execution's name, start time and input (the machine's request)."""

    run_id: RunId
    machine: Machine
    started_at: datetime | None = Field(default=None, description="$$.Execution.StartTime.")
    request: dict[str, Any] = Field(default_factory=dict)


class StartRunOutput(_Contract):
    """The run as recorded, and the request the machine's steps use (a portfolio's universe filled in)."""

    run_id: str
    machine: Machine
    stream: str
    subject: str = Field(description="The portfolio, model or spec the run works on.")
    spec_version: int | None = None
    request: dict[str, Any]


class _State(BaseModel):
    # A machine's whole state ($) carries the execution input's fields beside the steps' outputs.
    model_config = ConfigDict(extra="ignore", frozen=True)


class RebalanceState(_State):
    """What the rebalance machine's steps produced, as CommitRun receives it (``$``)."""

    run: StartRunOutput
    ingest: IngestOutput
    validation: ValidateOutput
    features: FeaturesOutput
    regime: DetectRegimeOutput
    portfolio: OptimizeOutput
    risk_plan: PlanRiskOutput
    risk: AggregateRiskOutput
    stress: StressOutput
    limits: CheckLimitsOutput
    hedge: ProposeHedgeOutput | None = None
    alerts: AlertOutput | None = None


class CommitRebalanceInput(_Contract):
    run_id: RunId
    execution: str | None = Field(default=None, description="$$.Execution.Id, for the per-state timings.")
    state: RebalanceState


class CommitOutcome(_Contract):
    """What the commit changed: the stream's version after it, whether the holdings moved, the timings."""

    run_id: str
    status: Literal["SUCCEEDED"] = "SUCCEEDED"
    stream: str
    version: int
    committed_at: datetime
    holdings_moved: bool = False
    holdings: dict[str, float] | None = None
    champion_promoted: str | None = Field(default=None, description="A regime model the run promoted.")
    steps: list[dict[str, Any]] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict, description="What the run consumed (for spe replay).")


class RebalanceRunOutput(_Contract):
    """The rebalance machine's output: every step's summary and the commit."""

    run_id: str
    status: Literal["SUCCEEDED"] = "SUCCEEDED"
    ingest: IngestOutput
    validation: ValidateOutput
    features: FeaturesOutput
    regime: DetectRegimeOutput
    portfolio: OptimizeOutput
    risk: AggregateRiskOutput
    stress: StressOutput
    limits: CheckLimitsOutput
    hedge: ProposeHedgeOutput | None = None
    alerts: AlertOutput | None = None
    commit: CommitOutcome


class RecordFailureInput(_Contract):
    """RecordFailure's input: the run, the caught error (``$.error``) and the machine's state at the time."""

    run_id: RunId
    machine: Machine
    execution: str | None = None
    started_at: datetime | None = None
    error: dict[str, Any] = Field(description="Step Functions' caught error: {Error, Cause}.")
    state: dict[str, Any] = Field(default_factory=dict, description="The machine's state ($) when it failed.")


class RecordFailureOutput(_Contract):
    run_id: str
    recorded: bool = Field(description="False when the run had already ended (a retried RecordFailure).")
    stream: str
    error: str
    cause: str
    failed_state: str | None
    alert: dict[str, Any] | None = None
