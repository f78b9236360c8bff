"""IngestPrices: fetch new bars into the lake's raw zone (rebalance state machine, and on a schedule)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.adapters.sources import build_source, default_universe, reference_tables
from portfolio_engine.contracts import IngestInput
from portfolio_engine.pipeline.ingest import ingest_prices
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-ingest-prices")
tracer = Tracer(service="spe-ingest-prices")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-ingest-prices")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
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
