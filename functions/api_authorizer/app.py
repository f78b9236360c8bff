"""API Gateway Lambda authorizer (HTTP API, simple responses): the API's own token and API-key verification.

In front of the API function, for bearer tokens and API keys alike (API Gateway's JWT authorizer knows no API
keys); the function checks the same credentials again with the route's role. The authorizer has no identity
source (API Gateway would refuse a request lacking any listed header without calling it), so its answers are
not cached: a revoked key stops at once.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.store import build_store
from portfolio_engine.api.auth import TokenVerifier, authenticate
from portfolio_engine.api.errors import ApiError
from portfolio_engine.pipeline.api_keys import verify_api_key
from portfolio_engine.settings import Settings

SETTINGS = Settings()
STORE = build_store(SETTINGS)
VERIFIER = TokenVerifier(
    SETTINGS.resolved_api_jwks(),
    issuer=SETTINGS.api_issuer,
    audience=SETTINGS.api_audience,
    role_claims=SETTINGS.api_role_claims,
)
logger = Logger(service="spe-api-authorizer")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        caller = authenticate(headers, verifier=VERIFIER, api_key=lambda key: verify_api_key(STORE, key))
    except ApiError as exc:
        logger.info("denied", extra={"reason": exc.message, "route": event.get("routeKey")})
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"subject": caller.subject, "role": caller.role, "via": caller.via}}
