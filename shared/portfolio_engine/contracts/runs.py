"""Inputs and outputs of the run lifecycle tasks every state machine shares: StartRun, CommitRun, RecordFailure.

A machine's first task records the run (``RunStarted``) and resolves what it works on; its steps only propose
(artefacts keyed by the run id); its last task commits everything in one transaction; every ``Catch`` goes to
RecordFailure, which records the failed run and changes nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from portfolio_engine.contracts.backtest import AggregateBacktestOutput, BacktestWindowOutput, PlanBacktestOutput
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
    PortfolioName,
    RunId,
    SourceName,
    TrainRegimeOutput,
    TriggerFields,
    ValidateOutput,
    _Contract,
)
from portfolio_engine.contracts.training import PrepareRegimeTrainingOutput, RegisterRegimeModelOutput

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
    optimize: OptimizeOutput = Field(description="Optimize's output ($.optimize: $.portfolio is the input's name).")
    risk_plan: PlanRiskOutput
    risk: AggregateRiskOutput
    stress: StressOutput
    limits: CheckLimitsOutput
    hedge: ProposeHedgeOutput | None = None
    alerts: AlertOutput | None = None


class RetrainState(_State):
    """What the retrain-regime machine's steps produced, as CommitRun receives it."""

    run: StartRunOutput
    prepare: PrepareRegimeTrainingOutput
    registration: RegisterRegimeModelOutput


class BacktestState(_State):
    """What the backtest machine's steps produced, as CommitRun receives it."""

    run: StartRunOutput
    plan: PlanBacktestOutput
    windows: list[BacktestWindowOutput]
    result: AggregateBacktestOutput


class CommitRunInput(_Contract):
    """CommitRun's input: the run, the machine (which says how to read ``state``) and the machine's state."""

    run_id: RunId
    machine: Machine
    execution: str | None = Field(default=None, description="$$.Execution.Id, for the per-state timings.")
    state: dict[str, Any]


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


class RetrainRunOutput(_Contract):
    """The retrain-regime machine's output: the training job and the decision as committed."""

    run_id: str
    status: Literal["SUCCEEDED"] = "SUCCEEDED"
    feature_key: str
    job_name: str
    model_artifacts_uri: str
    decision: TrainRegimeOutput
    commit: CommitOutcome


class BacktestRunOutput(_Contract):
    """The backtest machine's output: the plan, the aggregated result and the commit."""

    run_id: str
    status: Literal["SUCCEEDED"] = "SUCCEEDED"
    plan: PlanBacktestOutput
    windows: list[BacktestWindowOutput]
    result: AggregateBacktestOutput
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


class RebalanceAllRequest(TriggerFields, _Contract):
    """What starts a rebalance of every active portfolio (the rebalance-all machine's input)."""

    portfolios: list[PortfolioName] | None = Field(default=None, description="A subset; default: every active one.")
    source: SourceName = "bundled"


class ListPortfoliosInput(_Contract):
    batch_id: RunId = Field(description="The batch's execution name.")
    request: RebalanceAllRequest = Field(default_factory=RebalanceAllRequest)


class ChildRun(_Contract):
    """One portfolio's rebalance: its deterministic run id and the rebalance machine's input."""

    run_id: RunId
    input: dict[str, Any]


class ListPortfoliosOutput(_Contract):
    batch_id: str
    portfolios: list[str]
    runs: list[ChildRun]
