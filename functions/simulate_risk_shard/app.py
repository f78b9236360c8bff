"""SimulateRiskShard: one Map item of the Monte Carlo, its blocks simulated and stored."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.risk import ShardTask
from portfolio_engine.pipeline.risk import simulate_risk_shard
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-simulate-risk-shard")
tracer = Tracer(service="spe-simulate-risk-shard")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-simulate-risk-shard")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=ShardTask)
def lambda_handler(event: ShardTask, context: LambdaContext) -> dict[str, Any]:
    output = simulate_risk_shard(event, lake=LAKE)
    metrics.add_metric(name="MonteCarloPaths", unit=MetricUnit.Count, value=output.n_paths)
    return output.model_dump(mode="json")
