"""ListPortfolios: the active portfolios of the store and one deterministic child run for each (rebalance-all)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.store import build_store
from portfolio_engine.contracts.runs import ListPortfoliosInput
from portfolio_engine.pipeline.runs import list_portfolios
from portfolio_engine.settings import Settings

SETTINGS = Settings()
STORE = build_store(SETTINGS)
logger = Logger(service="spe-list-portfolios")
tracer = Tracer(service="spe-list-portfolios")


@logger.inject_lambda_context(correlation_id_path="batch_id")
@tracer.capture_lambda_handler
@event_parser(model=ListPortfoliosInput)
def lambda_handler(event: ListPortfoliosInput, context: LambdaContext) -> dict[str, Any]:
    output = list_portfolios(event, store=STORE)
    logger.info("batch planned", extra={"portfolios": output.portfolios})
    return output.model_dump(mode="json")
