"""RegisterRegimeModel: store the model a SageMaker training job wrote and decide whether it beats the champion.

The decision is a proposal: the machine's CommitRun records it and promotes the model (conditionally).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store import build_store
from portfolio_engine.contracts.training import RegisterRegimeModelInput
from portfolio_engine.pipeline.regime import register_regime_model
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
REGISTRY = StoreModelRegistry(LAKE, build_store(SETTINGS))
logger = Logger(service="spe-register-regime-model")
tracer = Tracer(service="spe-register-regime-model")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-register-regime-model")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=RegisterRegimeModelInput)
def lambda_handler(event: RegisterRegimeModelInput, context: LambdaContext) -> dict[str, Any]:
    output = register_regime_model(event, lake=LAKE, registry=REGISTRY)
    metrics.add_metric(name="RegimeModelProposed", unit=MetricUnit.Count, value=int(output.promoted))
    logger.info("regime model", extra={"version": output.version, "promoted": output.promoted, "reason": output.reason})
    return output.model_dump(mode="json")
