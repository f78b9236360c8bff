"""CommitRun: record a finished run in one transaction (results, holdings or champion, events, read models)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.executions import build_history
from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store import build_store
from portfolio_engine.contracts.runs import CommitRunInput
from portfolio_engine.pipeline.commit import commit_run
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
STORE = build_store(SETTINGS)
REGISTRY = StoreModelRegistry(LAKE, STORE)
HISTORY = build_history(SETTINGS)
logger = Logger(service="spe-commit-run")
tracer = Tracer(service="spe-commit-run")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-commit-run")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=CommitRunInput)
def lambda_handler(event: CommitRunInput, context: LambdaContext) -> dict[str, Any]:
    output = commit_run(event, store=STORE, lake=LAKE, registry=REGISTRY, steps=HISTORY.steps)
    metrics.add_metric(name="RunsCommitted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="HoldingsMoved", unit=MetricUnit.Count, value=int(output.commit.holdings_moved))
    logger.append_keys(machine=event.machine)
    logger.info("run committed", extra={"stream": output.commit.stream, "version": output.commit.version})
    return output.model_dump(mode="json")
