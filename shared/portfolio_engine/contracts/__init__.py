"""Pydantic models of every task's input and output."""

from portfolio_engine.contracts.tasks import (
    DetectRegimeInput,
    DetectRegimeOutput,
    FeaturesInput,
    FeaturesOutput,
    IngestInput,
    IngestOutput,
    OptimizeInput,
    OptimizeOutput,
    RebalanceOutcome,
    RunRequest,
    TrainRegimeInput,
    TrainRegimeOutput,
    ValidateInput,
    ValidateOutput,
)

__all__ = [
    "DetectRegimeInput",
    "DetectRegimeOutput",
    "FeaturesInput",
    "FeaturesOutput",
    "IngestInput",
    "IngestOutput",
    "OptimizeInput",
    "OptimizeOutput",
    "RebalanceOutcome",
    "RunRequest",
    "TrainRegimeInput",
    "TrainRegimeOutput",
    "ValidateInput",
    "ValidateOutput",
]
