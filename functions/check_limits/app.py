"""CheckLimits: the spec's limits measured and graded."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.risk import CheckLimitsInput
from portfolio_engine.pipeline.risk_checks import check_limits
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-check-limits")
tracer = Tracer(service="spe-check-limits")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-check-limits")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=CheckLimitsInput)
def lambda_handler(event: CheckLimitsInput, context: LambdaContext) -> dict[str, Any]:
    output = check_limits(event, lake=LAKE)
    metrics.add_metric(name="LimitBreaches", unit=MetricUnit.Count, value=len(output.breaches))
    return output.model_dump(mode="json")
