"""DetectRegime: current regime probabilities of a portfolio from the champion regime model."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store import build_store
from portfolio_engine.adapters.training_job import LocalTrainingJob
from portfolio_engine.contracts import DetectRegimeInput
from portfolio_engine.pipeline.regime import detect_regime
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
REGISTRY = StoreModelRegistry(LAKE, build_store(SETTINGS))
JOBS = LocalTrainingJob(in_process=True)
logger = Logger(service="spe-detect-regime")
tracer = Tracer(service="spe-detect-regime")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-detect-regime")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=DetectRegimeInput)
def lambda_handler(event: DetectRegimeInput, context: LambdaContext) -> dict[str, Any]:
    output = detect_regime(event, lake=LAKE, registry=REGISTRY, jobs=JOBS)
    for state, probability in output.probabilities.items():
        metrics.add_metric(name=f"RegimeProbability_{state}", unit=MetricUnit.NoUnit, value=probability)
    logger.info("regime", extra={"regime": output.regime, "probabilities": output.probabilities})
    return output.model_dump(mode="json")
