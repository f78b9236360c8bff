"""Reusable constructs of the engine's infrastructure."""

from spe_infra.constructs.api import HttpApiEndpoint
from spe_infra.constructs.engine_function import EngineFunction, FunctionResources, QuantImage, handler_for
from spe_infra.constructs.engine_state_machine import (
    EngineStateMachine,
    function_arn_placeholder,
    placeholders,
    state_machine_arn_placeholder,
)
from spe_infra.constructs.identity import ApiUserPool, TokenIssuer, token_issuer
from spe_infra.constructs.lake_bucket import LakeBucket
from spe_infra.constructs.tables import IdempotencyTable, StoreTable
from spe_infra.constructs.training_job import SageMakerTraining
from spe_infra.constructs.zip_function import LightLayer

__all__ = [
    "ApiUserPool",
    "EngineFunction",
    "EngineStateMachine",
    "FunctionResources",
    "HttpApiEndpoint",
    "IdempotencyTable",
    "LakeBucket",
    "LightLayer",
    "QuantImage",
    "SageMakerTraining",
    "StoreTable",
    "TokenIssuer",
    "function_arn_placeholder",
    "handler_for",
    "placeholders",
    "state_machine_arn_placeholder",
    "token_issuer",
]
