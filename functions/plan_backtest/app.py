"""PlanBacktest: the backtest's returns and settings stored once, its decisions split into windows for the Map."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.backtest import PlanBacktestInput
from portfolio_engine.pipeline.backtest import plan_backtest
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-plan-backtest")
tracer = Tracer(service="spe-plan-backtest")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-plan-backtest")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=PlanBacktestInput)
def lambda_handler(event: PlanBacktestInput, context: LambdaContext) -> dict[str, Any]:
    output = plan_backtest(event, lake=LAKE)
    metrics.add_metric(name="BacktestWindows", unit=MetricUnit.Count, value=len(output.windows))
    return output.model_dump(mode="json")
