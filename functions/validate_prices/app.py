"""ValidatePrices: check the raw bars, apply the policy, write the curated zone and the report."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake, validation_policy
from portfolio_engine.contracts import ValidateInput
from portfolio_engine.pipeline.validate import validate_prices
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-validate-prices")
tracer = Tracer(service="spe-validate-prices")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-validate-prices")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=ValidateInput)
def lambda_handler(event: ValidateInput, context: LambdaContext) -> dict[str, Any]:
    output = validate_prices(event, lake=LAKE, policy=validation_policy(SETTINGS, event.validation_policy))
    metrics.add_metric(name="ValidationErrors", unit=MetricUnit.Count, value=output.errors)
    metrics.add_metric(name="SymbolsQuarantined", unit=MetricUnit.Count, value=len(output.quarantined))
    return output.model_dump(mode="json")
