"""BuildFeatures: compute the versioned feature set from curated bars and store it in the lake."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.factory import build_lake
from portfolio_engine.contracts import FeaturesInput
from portfolio_engine.features import DEFAULT_FEATURE_SPEC
from portfolio_engine.pipeline.features import build_features
from portfolio_engine.settings import Settings

SETTINGS = Settings()
LAKE = build_lake(SETTINGS)
logger = Logger(service="spe-build-features")
tracer = Tracer(service="spe-build-features")
metrics = Metrics(namespace="StochasticPortfolioEngine", service="spe-build-features")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=FeaturesInput)
def lambda_handler(event: FeaturesInput, context: LambdaContext) -> dict[str, Any]:
    output = build_features(event, lake=LAKE, spec=DEFAULT_FEATURE_SPEC)
    metrics.add_metric(name="FeatureRows", unit=MetricUnit.Count, value=output.rows)
    return output.model_dump(mode="json")
