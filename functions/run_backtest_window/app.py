"""RunBacktestWindow: one Map item of the walk-forward backtest, its daily marks and decisions stored."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts.backtest import BacktestWindowTask
from portfolio_engine.pipeline.backtest import run_backtest_window
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-run-backtest-window")
tracer = Tracer(service="spe-run-backtest-window")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-run-backtest-window")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=BacktestWindowTask)
def lambda_handler(event: BacktestWindowTask, context: LambdaContext) -> dict[str, Any]:
    output = run_backtest_window(event, lake=LAKE)
    metrics.add_metric(name="BacktestDecisions", unit=MetricUnit.Count, value=output.n_decisions)
    return output.model_dump(mode="json")
