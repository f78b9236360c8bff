"""Alert: warnings and breaches published to SNS and kept in the local log, de-duplicated with a cool-down.

Slack is not called from here: ``notify_slack`` is subscribed to the topic. The cool-down state is in the
store of record (``SPE_STORE_URI``: SQLite under the data directory by default, ``dynamodb://<table>`` on AWS).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.notifiers import build_alert_dispatcher
from portfolio_engine.adapters.store import build_store
from portfolio_engine.contracts.risk import AlertInput
from portfolio_engine.pipeline.alerts import send_alerts
from portfolio_engine.settings import Settings

SETTINGS = Settings()
DISPATCHER = build_alert_dispatcher(SETTINGS, store=build_store(SETTINGS))
logger = Logger(service="spe-send-alerts")
tracer = Tracer(service="spe-send-alerts")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-send-alerts")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=AlertInput)
def lambda_handler(event: AlertInput, context: LambdaContext) -> dict[str, Any]:
    output = send_alerts(event, dispatcher=DISPATCHER)
    metrics.add_metric(name="AlertsSent", unit=MetricUnit.Count, value=output.sent)
    metrics.add_metric(name="AlertsFailed", unit=MetricUnit.Count, value=output.failed)
    return output.model_dump(mode="json")
