"""Reusable constructs of the engine's infrastructure."""

from spe_infra.constructs.engine_function import EngineFunction, QuantImage, handler_for
from spe_infra.constructs.engine_state_machine import EngineStateMachine, function_arn_placeholder, placeholders
from spe_infra.constructs.lake_bucket import LakeBucket
from spe_infra.constructs.training_job import SageMakerTraining

__all__ = [
    "EngineFunction",
    "EngineStateMachine",
    "LakeBucket",
    "QuantImage",
    "SageMakerTraining",
    "function_arn_placeholder",
    "handler_for",
    "placeholders",
]
