"""Inputs and outputs of the risk steps of the rebalance machine.

Monte Carlo fan-out, aggregation, stress, limits, hedge proposals and alerts. Every payload stays small:
shards and reports live in the lake.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from portfolio_engine.contracts.tasks import (
    DetectRegimeOutput,
    Interval,
    OptimizeOutput,
    RunId,
    SourceName,
    _Contract,
)


class RiskSettings(_Contract):
    """How much Monte Carlo a run does and how it fans out."""

    n_paths: int = Field(default=200_000, ge=1_000, le=10_000_000)
    horizon_days: int = Field(default=21, ge=1, le=252)
    levels: list[float] = Field(default_factory=lambda: [0.95, 0.99])
    shards: int = Field(default=4, ge=1, le=1000, description="Map items: each simulates a contiguous set of blocks.")
    block_size: int = Field(default=2**14, ge=256, le=2**20)
    innovations: Literal["normal", "student_t"] = "student_t"
    dof: float | None = Field(default=5.0, gt=2, description="Student-t degrees of freedom.")
    seed: int | None = Field(default=None, ge=0, description="Default: derived from the run id (reproducible).")


class PlanRiskInput(_Contract):
    run_id: RunId
    source: SourceName
    interval: Interval = "1d"
    index_symbol: str | None = None
    feature_key: str | None = None
    regime: DetectRegimeOutput | None = None
    portfolio: OptimizeOutput
    settings: RiskSettings = Field(default_factory=RiskSettings)


class ShardTask(_Contract):
    """One Map item: simulate blocks ``first_block .. first_block + n_blocks - 1`` of the run's plan."""

    run_id: str
    model_key: str
    shard: int
    first_block: int
    n_blocks: int


class PlanRiskOutput(_Contract):
    run_id: str
    model_key: str = Field(description="Lake key of the simulation model, plan and weights.")
    n_paths: int
    horizon_days: int
    seed: int
    n_blocks: int
    states: list[str] = Field(description="Regimes of the simulation (one 'all' state without a regime model).")
    shards: list[ShardTask]


class ShardOutput(_Contract):
    run_id: str
    shard: int
    key: str
    n_paths: int


class AggregateRiskInput(_Contract):
    run_id: RunId
    source: SourceName
    interval: Interval = "1d"
    index_symbol: str | None = None
    model_key: str
    shards: list[ShardOutput] = Field(min_length=1)
    portfolio: OptimizeOutput


class AggregateRiskOutput(_Contract):
    run_id: str
    portfolio: str
    n_paths: int
    horizon_days: int
    monte_carlo: dict[str, float] = Field(description="VaR/CVaR per level, drawdown probabilities, mean, std.")
    historical: dict[str, float] = Field(description="1-day VaR/CVaR per level and method, volatility, drawdown.")
    report_key: str


class StressInput(_Contract):
    run_id: RunId
    source: SourceName
    interval: Interval = "1d"
    index_symbol: str | None = None
    portfolio: OptimizeOutput


class StressOutput(_Contract):
    run_id: str
    worst_scenario: str | None
    worst_loss: float
    scenarios: list[dict[str, Any]]
    shocks: list[dict[str, Any]]
    reverse: dict[str, Any] | None
    report_key: str


class CheckLimitsInput(_Contract):
    run_id: RunId
    source: SourceName
    interval: Interval = "1d"
    index_symbol: str | None = None
    portfolio: OptimizeOutput
    risk: AggregateRiskOutput
    stress: StressOutput | None = None


class CheckLimitsOutput(_Contract):
    run_id: str
    portfolio: str
    limits: dict[str, float]
    measured: dict[str, float]
    unmeasured: dict[str, str] = Field(default_factory=dict, description="Limits the run's data cannot measure.")
    breaches: list[dict[str, Any]] = Field(description="Warnings included; severity in each.")
    any_breach: bool = Field(description="True when a limit is exceeded (severity breach or critical).")
    worst_severity: str | None


class ProposeHedgeInput(_Contract):
    run_id: RunId
    source: SourceName
    interval: Interval = "1d"
    index_symbol: str | None = None
    portfolio: OptimizeOutput
    limits: CheckLimitsOutput


class ProposeHedgeOutput(_Contract):
    run_id: str
    executed: bool = Field(default=False, description="Hedges are proposals; nothing is traded.")
    chosen: dict[str, Any] | None
    proposals: list[dict[str, Any]]
    message: str
    report_key: str


class AlertInput(_Contract):
    run_id: RunId
    limits: CheckLimitsOutput
    hedge: ProposeHedgeOutput | None = None


class AlertOutput(_Contract):
    run_id: str
    sent: int
    suppressed: int
    failed: int
    outcomes: list[dict[str, Any]]
