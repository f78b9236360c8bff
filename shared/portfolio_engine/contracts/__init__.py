"""Pydantic models of every task's input and output."""

from portfolio_engine.contracts.tasks import (
    FeaturesInput,
    FeaturesOutput,
    IngestInput,
    IngestOutput,
    RunRequest,
    ValidateInput,
    ValidateOutput,
)

__all__ = [
    "FeaturesInput",
    "FeaturesOutput",
    "IngestInput",
    "IngestOutput",
    "RunRequest",
    "ValidateInput",
    "ValidateOutput",
]
