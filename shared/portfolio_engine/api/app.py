"""Assemble the API: the route modules, the guard (credentials, role, rate), the errors, the OpenAPI document.

``build_app(services)`` returns the ``APIGatewayHttpResolver`` of the Lambda function behind API Gateway's HTTP
API; ``spe api`` serves the very same resolver under uvicorn (``api.asgi`` turns each request into the HTTP
API's event). Routes are declared once, on routers, one module per resource.

Order of checks on a request: the body's size and encoding (``api.asgi`` locally, API Gateway and
``screen_event`` on Lambda), the route (404), the credentials (401) and role (403), the caller's rate (429),
then the parameters and body (422). Powertools validates before any middleware runs, so a request that fails
validation is checked for credentials and role first, in the error handler: a caller without the role never
learns what a valid request looks like.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

from portfolio_engine.api import routing
from portfolio_engine.api.auth import Principal, authenticate, authorize
from portfolio_engine.api.errors import NotFoundError, error_response
from portfolio_engine.api.routes import ROUTERS
from portfolio_engine.pipeline.api_keys import verify_api_key

logger = logging.getLogger(__name__)

__all__ = ["build_app", "openapi_document"]

TITLE = "Stochastic Portfolio Engine API"
#: The contract's version: a breaking change to a route or schema raises the major.
API_VERSION = "1.0.0"
DESCRIPTION = (
    "Portfolios, runs, results, backtests, regimes and alerts of the Stochastic Portfolio Engine. "
    "Every route but /health and /version needs `Authorization: Bearer <JWT>` or `X-API-Key`; the role each "
    "needs is its `x-required-role` (viewer < manager < admin). Long work answers 202 with the run's Location."
)
SECURITY_SCHEMES = {
    "bearerAuth": HTTPBearer(bearerFormat="JWT", description="A JWT from the configured issuer (RS256, ES256...)."),
    "apiKey": APIKey(name="X-API-Key", in_=APIKeyIn.header, description="A key from POST /api-keys (admin)."),
}


def request_id(app: ApiGatewayResolver) -> str:
    """The request's id: API Gateway's (the local server makes one the same way), else a new one."""
    known = app.context.get("request_id")
    if known:
        return str(known)
    found = (app.current_event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex
    app.append_context(request_id=found)
    return str(found)


def _required_role(app: ApiGatewayResolver) -> str:
    route = app.context.get("_route")
    if getattr(getattr(route, "func", None), "__name__", "") == "not_found_handler":
        return routing.PUBLIC  # powertools' route for an unknown path: a 404 for everyone
    extensions = getattr(route, "openapi_extensions", None) or {}
    return str(extensions.get("x-required-role", "admin"))  # a route that forgot its role is admin-only


def _check_caller(app: ApiGatewayResolver) -> Principal | None:
    """Authenticate and authorize the caller of a protected route (None on a public one)."""
    role = _required_role(app)
    if role == routing.PUBLIC:
        return None
    services = routing.services()
    found = authenticate(
        app.current_event.headers,
        verifier=services.verifier,
        api_key=lambda key: verify_api_key(services.store, key),
    )
    authorize(found, role)  # type: ignore[arg-type]
    app.append_context(principal=found)
    return found


def guard(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response:
    """Every request: credentials, role and rate before the handler; the request id on the response."""
    rid = request_id(app)
    caller = _check_caller(app)
    if caller is not None:
        routing.services().limiter.check(caller.subject)
    response = next_middleware(app)
    response.headers["X-Request-Id"] = rid
    return response


def _on_error(app: ApiGatewayResolver, exc: Exception) -> Response:
    rid = request_id(app)
    if isinstance(exc, RequestValidationError) and "principal" not in app.context:
        try:
            caller = _check_caller(app)
            if caller is not None:  # the guard never ran: count the request as it would have
                routing.services().limiter.check(caller.subject)
        except Exception as denied:
            return error_response(denied, rid)
    return error_response(exc, rid)


def build_app(services: routing.Services | None) -> ApiGatewayResolver:
    """The API's resolver with every route, the guard and the error handlers, bound to ``services``.

    ``None`` builds it for its OpenAPI document only (``spe openapi``): its handlers have nothing to call.
    """
    if services is not None:
        routing.install(services)
    app = APIGatewayHttpResolver(enable_validation=True)
    for router in ROUTERS:
        app.include_router(router)
    app.use([guard])
    app.exception_handler(Exception)(lambda exc: _on_error(app, exc))

    @app.not_found
    def _not_found(_exc: Exception) -> Response:
        event = app.current_event
        method = ((event.get("requestContext") or {}).get("http") or {}).get("method")
        return error_response(NotFoundError(f"No route {method} {event.path}."), request_id(app))

    _add_documents(app)
    return app


def openapi_document(app: ApiGatewayResolver) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``, with the one error schema for validation errors too.

    Powertools declares its own 422 schema (``HTTPValidationError``, whose ``msg`` is required but never sent);
    the API answers every error with ``ErrorBody``, so the document says so.
    """
    document = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=API_VERSION,
            description=DESCRIPTION,
            security_schemes=SECURITY_SCHEMES,  # type: ignore[arg-type]
        )
    )
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for item in document.get("paths", {}).values():
        for operation in item.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response["content"] = {"application/json": {"schema": error_ref}}
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    _add_spec_schema(schemas)
    return document


def _add_spec_schema(schemas: dict[str, Any]) -> None:
    """Describe the ``spec`` bodies with PortfolioSpec's own schema.

    Kept out of the handlers' signatures: it imports the optimizers, which the read routes must not load.
    """
    from portfolio_engine.optimization import PortfolioSpec

    spec = PortfolioSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(spec.pop("$defs", {}))
    schemas["PortfolioSpec"] = spec
    for model in ("PortfolioCreate", "PortfolioUpdate", "WhatIfRequest"):
        field = schemas.get(model, {}).get("properties", {}).get("spec")
        if field is not None:
            description = field.get("description")
            optional = any(kind.get("type") == "null" for kind in field.get("anyOf", []))  # WhatIfRequest's
            field.clear()
            ref = {"$ref": "#/components/schemas/PortfolioSpec"}
            field.update({"anyOf": [ref, {"type": "null"}], "default": None} if optional else ref)
            field["description"] = description


def _add_documents(app: ApiGatewayResolver) -> None:
    built: list[str] = []  # the document, made on the first request that needs it

    def document() -> str:
        if not built:
            built.append(json.dumps(openapi_document(app)))
        return built[0]

    @app.get("/openapi.json", include_in_schema=False, openapi_extensions={"x-required-role": routing.PUBLIC})
    def _openapi():  # no return annotation: powertools would make it a schema
        return Response(status_code=200, content_type="application/json", body=document())

    @app.get("/docs", include_in_schema=False, openapi_extensions={"x-required-role": routing.PUBLIC})
    def _docs():
        from pathlib import Path

        from aws_lambda_powertools.event_handler.openapi import swagger_ui
        from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

        folder = Path(swagger_ui.__file__).parent
        html = generate_swagger_html(
            document().replace("</", "<\\/"),
            (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
            (folder / "swagger-ui.min.css").read_text(encoding="utf-8"),
            swagger_base_url="",
            oauth2_config=None,
        )
        return Response(status_code=200, content_type="text/html; charset=utf-8", body=html)
