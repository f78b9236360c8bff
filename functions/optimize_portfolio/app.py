"""Optimize: target weights for the run's portfolio (regime-aware by default) and the rebalancing decision.

It reads the spec and the holdings from the store of record and writes only its proposal: the commit moves them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store import build_store
from portfolio_engine.contracts import OptimizeInput
from portfolio_engine.pipeline.optimize import optimize_portfolio
from portfolio_engine.pipeline.portfolios import read_book
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
STORE = build_store(SETTINGS)
REGISTRY = StoreModelRegistry(LAKE, STORE)
logger = Logger(service="spe-optimize-portfolio")
tracer = Tracer(service="spe-optimize-portfolio")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-optimize-portfolio")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=OptimizeInput)
def lambda_handler(event: OptimizeInput, context: LambdaContext) -> dict[str, Any]:
    book = read_book(STORE, event.portfolio, event.spec_version)
    output = optimize_portfolio(event, lake=LAKE, registry=REGISTRY, book=book)
    metrics.add_metric(name="ExpectedVolatility", unit=MetricUnit.NoUnit, value=output.volatility)
    metrics.add_metric(name="Turnover", unit=MetricUnit.NoUnit, value=output.decision.turnover)
    logger.info("target weights", extra={"method": output.method, "regime": output.regime})
    return output.model_dump(mode="json")
