"""The HTTP API behind API Gateway (HTTP API, payload 2.0): powertools' resolver over the store and Step Functions.

Routes, roles and errors live in ``portfolio_engine.api``; this module only wires them. The import stays light
(no pandas, numpy, scipy, cvxpy or scikit-learn): the routes that need the lake import it on first use.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.api.app import build_app
from portfolio_engine.api.screening import screen_event
from portfolio_engine.api.wiring import build_services
from portfolio_engine.settings import Settings

SETTINGS = Settings()
APP = build_app(build_services(SETTINGS, local=False))
logger = Logger(service="spe-api")
tracer = Tracer(service="spe-api")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return screen_event(event, max_bytes=SETTINGS.api_max_body_bytes) or APP.resolve(event, context)
