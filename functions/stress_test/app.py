"""StressTest: historical replays, hypothetical shocks and a reverse stress of the target weights."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.risk import StressInput
from portfolio_engine.pipeline.risk_checks import stress_test
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-stress-test")
tracer = Tracer(service="spe-stress-test")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-stress-test")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=StressInput)
def lambda_handler(event: StressInput, context: LambdaContext) -> dict[str, Any]:
    output = stress_test(event, lake=LAKE)
    return output.model_dump(mode="json")
