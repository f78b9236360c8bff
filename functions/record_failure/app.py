"""RecordFailure: record a failed run (error, cause, failed state, timings) and alert; change nothing else."""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.executions import build_history
from portfolio_engine.adapters.notifiers import build_alert_dispatcher
from portfolio_engine.adapters.store import build_store
from portfolio_engine.contracts.runs import RecordFailureInput
from portfolio_engine.pipeline.alerts import alert_run_failure
from portfolio_engine.pipeline.runs import record_failure
from portfolio_engine.settings import Settings

SETTINGS = Settings()
STORE = build_store(SETTINGS)
HISTORY = build_history(SETTINGS)
NOTIFY = partial(alert_run_failure, build_alert_dispatcher(SETTINGS, store=STORE))
logger = Logger(service="spe-record-failure")
tracer = Tracer(service="spe-record-failure")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-record-failure")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=RecordFailureInput)
def lambda_handler(event: RecordFailureInput, context: LambdaContext) -> dict[str, Any]:
    output = record_failure(event, store=STORE, steps=HISTORY.steps, notify=NOTIFY)
    metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1 if output.recorded else 0)
    return output.model_dump(mode="json")
