"""AggregateBacktest: the windows merged, the benchmarks run and the metrics table stored."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.backtest import AggregateBacktestInput
from portfolio_engine.pipeline.backtest import aggregate_backtest
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-aggregate-backtest")
tracer = Tracer(service="spe-aggregate-backtest")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-aggregate-backtest")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=AggregateBacktestInput)
def lambda_handler(event: AggregateBacktestInput, context: LambdaContext) -> dict[str, Any]:
    output = aggregate_backtest(event, lake=LAKE)
    metrics.add_metric(name="BacktestDays", unit=MetricUnit.Count, value=output.n_days)
    return output.model_dump(mode="json")
