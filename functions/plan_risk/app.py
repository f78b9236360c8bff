"""PlanRisk: the Monte Carlo model and plan of the target weights, split into shards for the Map."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store import build_store
from portfolio_engine.contracts.risk import PlanRiskInput
from portfolio_engine.pipeline.risk import plan_risk
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
REGISTRY = StoreModelRegistry(LAKE, build_store(SETTINGS))
logger = Logger(service="spe-plan-risk")
tracer = Tracer(service="spe-plan-risk")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-plan-risk")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=PlanRiskInput)
def lambda_handler(event: PlanRiskInput, context: LambdaContext) -> dict[str, Any]:
    output = plan_risk(event, lake=LAKE, registry=REGISTRY)
    metrics.add_metric(name="MonteCarloShards", unit=MetricUnit.Count, value=len(output.shards))
    return output.model_dump(mode="json")
