"""IngestPrices: fetch new bars into the lake's raw zone (rebalance state machine, and on a schedule).

* Idempotent on ``run_id`` when ``SPE_IDEMPOTENCY_TABLE`` is set (powertools idempotency, DynamoDB persistence,
  key ``spe-ingest-prices#<md5 of the run id>``): EventBridge delivers a scheduled event at least once (its
  ``run_id`` is the event id, ``$.id``), and a state machine retries a step under the same execution name, so
  a second delivery of a run id returns the first one's output without fetching again. A request that differs
  under the same run id is refused (``IdempotencyValidationError``); an event without ``run_id`` too
  (``IdempotencyKeyError``). A failed attempt leaves no record: its retry ingests.
* Without ``SPE_IDEMPOTENCY_TABLE`` (a laptop, no DynamoDB) every delivery ingests, and a warning says so at
  cold start; ingest is an upsert of the bars the source serves, so a repeat changes nothing it stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.adapters.idempotency import idempotency_persistence
from portfolio_engine.adapters.sources import build_source, default_universe, reference_tables
from portfolio_engine.contracts import IngestInput
from portfolio_engine.pipeline.ingest import ingest_prices
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-ingest-prices")
tracer = Tracer(service="spe-ingest-prices")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-ingest-prices")
# Records live 7 days: past EventBridge's and Lambda's retry windows (2 and 6 hours), and past a long weekend
# of `spe schedule --once` calls that find the same Friday fire time due.
IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="run_id",
    payload_validation_jmespath="request",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=7 * 24 * 3600,
)
PERSISTENCE = idempotency_persistence(SETTINGS)
if PERSISTENCE is None:
    logger.warning("SPE_IDEMPOTENCY_TABLE is not set: every delivery of an event ingests, duplicates included")


def once_per_run_id(handler: Callable[[dict[str, Any], LambdaContext], Any]) -> Callable[..., Any]:
    """The handler, idempotent on the event's ``run_id`` when an idempotency table is configured."""
    if PERSISTENCE is None:
        return handler
    # `idempotent` registers the Lambda context itself, so an in-progress record expires with the invocation.
    return idempotent(persistence_store=PERSISTENCE, config=IDEMPOTENCY, key_prefix="spe-ingest-prices")(handler)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@once_per_run_id
@event_parser(model=IngestInput)
def lambda_handler(event: IngestInput, context: LambdaContext) -> dict[str, Any]:
    request = event.request
    source = build_source(request.source, SETTINGS, file_uri=request.file_uri)
    output = ingest_prices(
        event,
        source=source,
        lake=LAKE,
        default_universe=default_universe(SETTINGS, source),
        default_policy=SETTINGS.validation_policy,
        reference_tables=reference_tables() if request.source == "bundled" else None,
    )
    metrics.add_metric(name="RowsNew", unit=MetricUnit.Count, value=output.rows_new)
    metrics.add_metric(name="RowsUpdated", unit=MetricUnit.Count, value=output.rows_updated)
    metrics.add_metric(name="RowsQuarantined", unit=MetricUnit.Count, value=output.rows_quarantined)
    metrics.add_metric(name="RowsDropped", unit=MetricUnit.Count, value=output.rows_dropped)
    return output.model_dump(mode="json")
