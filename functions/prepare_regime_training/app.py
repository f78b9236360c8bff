"""PrepareRegimeTraining: write a SageMaker training job's channel to the lake and name the job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.training import PrepareRegimeTrainingInput
from portfolio_engine.pipeline.regime import prepare_regime_training
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-prepare-regime-training")
tracer = Tracer(service="spe-prepare-regime-training")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-prepare-regime-training")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=PrepareRegimeTrainingInput)
def lambda_handler(event: PrepareRegimeTrainingInput, context: LambdaContext) -> dict[str, Any]:
    output = prepare_regime_training(event, lake=LAKE)
    metrics.add_metric(name="RegimeTrainingRows", unit=MetricUnit.Count, value=output.rows)
    logger.info("training channel", extra={"job_name": output.job_name, "channel_uri": output.channel_uri})
    return output.model_dump(mode="json")
