"""ProposeHedge: hedges that bring a breaching portfolio back within its limits (proposed, never traded)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.risk import ProposeHedgeInput
from portfolio_engine.pipeline.risk_checks import hedge
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-propose-hedge")
tracer = Tracer(service="spe-propose-hedge")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-propose-hedge")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=ProposeHedgeInput)
def lambda_handler(event: ProposeHedgeInput, context: LambdaContext) -> dict[str, Any]:
    output = hedge(event, lake=LAKE)
    return output.model_dump(mode="json")
