"""AggregateRisk: the shards merged exactly, and the historical and parametric measures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.risk import AggregateRiskInput
from portfolio_engine.pipeline.risk import aggregate_risk
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-aggregate-risk")
tracer = Tracer(service="spe-aggregate-risk")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-aggregate-risk")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=AggregateRiskInput)
def lambda_handler(event: AggregateRiskInput, context: LambdaContext) -> dict[str, Any]:
    output = aggregate_risk(event, lake=LAKE)
    return output.model_dump(mode="json")
