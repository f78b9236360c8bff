"""One error shape and one status per error type, mapped here and nowhere else.

Every error the API returns is ``{"error", "message", "hint", "request_id"}`` (plus ``details`` for a request
that failed validation): ``error`` names the type (the engine's exception class, as the CLI and the state
machines name it), ``hint`` says how to fix it. A 500 is a bug: its message says only that, with the request
id to find the traceback in the logs.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from portfolio_engine.exceptions import (
    ConcurrencyError,
    DuplicateError,
    InvalidCursorError,
    InvalidTransitionError,
    LakeError,
    ModelNotFoundError,
    PortfolioEngineError,
    RecordNotFoundError,
    StoreError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ApiError",
    "BadRequestError",
    "ErrorBody",
    "ForbiddenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "error_body",
    "status_for",
]


class ApiError(PortfolioEngineError):
    """An error of the HTTP exchange itself (authentication, size, rate), with its status."""

    status: ClassVar[int] = 400


class BadRequestError(ApiError):
    """The request cannot be read: malformed JSON, a body that is not UTF-8, an unsupported content type."""

    default_hint = "Send a UTF-8 JSON body with `Content-Type: application/json`."


class UnauthorizedError(ApiError):
    """No credentials, or credentials that do not verify (bad signature, expired, wrong issuer or audience)."""

    status = 401
    default_hint = (
        "Send `Authorization: Bearer <token>` (locally: `spe token --role viewer`) or `X-API-Key: <key>` "
        "(`spe api-key create`)."
    )


class ForbiddenError(ApiError):
    """Verified credentials whose role is below the one the route needs."""

    status = 403


class NotFoundError(ApiError):
    """No route at that path and method."""

    status = 404
    default_hint = "See /openapi.json (or /docs) for the routes."


class PayloadTooLargeError(ApiError):
    """A body larger than ``SPE_API_MAX_BODY_BYTES``, or a what-if beyond its asset or history limits."""

    status = 413


class TooManyRequestsError(ApiError):
    """The caller spent its requests of the current minute (``SPE_API_RATE_PER_MINUTE``)."""

    status = 429

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, hint=hint or f"Retry after {retry_after} s.")


#: Engine errors by status, most specific first (``status_for`` takes the first that matches).
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidCursorError, 400),
    (RecordNotFoundError, 404),
    (ModelNotFoundError, 404),
    (ConcurrencyError, 409),  # a version conflict (StaleHoldingsError too)
    (DuplicateError, 409),
    (InvalidTransitionError, 409),
    (StoreError, 503),  # the store cannot be reached: not the caller's fault, not a bug
    (LakeError, 503),
    (PortfolioEngineError, 422),  # a well-formed request the engine cannot carry out (a bad spec, too little data)
    (PydanticValidationError, 422),
    (RequestValidationError, 422),
)


class ErrorDetail(BaseModel):
    """One problem of a request that failed validation."""

    loc: list[str | int] = Field(description="Where: body, query, path or header, then the field's path.")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error response's body."""

    error: str = Field(description="The error's type, e.g. RecordNotFoundError, UnauthorizedError.")
    message: str
    hint: str | None = Field(default=None, description="How to fix it.")
    request_id: str = Field(description="Quote it when reporting a problem: the logs are indexed by it.")
    details: list[ErrorDetail] | None = None


def status_for(exc: BaseException) -> int:
    """The HTTP status of an exception (500 for anything not mapped: a bug)."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, RequestValidationError) and _is_response(exc):
        return 500  # a handler returned what its own schema refuses: a bug
    if isinstance(exc, RequestValidationError) and _is_malformed(exc):
        return 400
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


def _is_response(exc: RequestValidationError) -> bool:
    return any(tuple(e.get("loc", ()))[:1] == ("response",) for e in exc.errors())


def _is_malformed(exc: RequestValidationError) -> bool:
    return any(e.get("type") in ("json_invalid", "unsupported_content_type", "multipart_invalid") for e in exc.errors())


def _details(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg") or e.get("type", "invalid")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]


def _validation(exc: RequestValidationError | PydanticValidationError, malformed: bool) -> dict[str, Any]:
    details = _details(list(exc.errors()))
    listed = "; ".join(f"{'.'.join(map(str, d['loc'])) or 'request'}: {d['msg']}" for d in details[:3])
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    if malformed:
        return {"error": "BadRequestError", "message": f"The request cannot be read: {listed}.",
                "hint": BadRequestError.default_hint, "details": details}  # fmt: skip
    return {
        "error": "ValidationError",
        "message": f"Invalid request: {listed}{more}.",
        "hint": "See the operation's schema at /openapi.json (or /docs).",
        "details": details,
    }


def error_body(exc: BaseException, request_id: str) -> tuple[int, dict[str, Any]]:
    """The status and body of an exception's response."""
    status = status_for(exc)
    if status != 500 and isinstance(exc, RequestValidationError | PydanticValidationError):
        body = _validation(exc, status == 400)
    elif isinstance(exc, PortfolioEngineError):
        body = {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint or None}
    else:
        logger.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
        body = {
            "error": "InternalError",
            "message": "The server failed on this request; it is a bug.",
            "hint": f"Report it with the request id {request_id}.",
        }
    return status, {**body, "request_id": request_id}


def error_response(exc: BaseException, request_id: str) -> Response:
    """The powertools response of an exception."""
    status, body = error_body(exc, request_id)
    headers: dict[str, str] = {"X-Request-Id": request_id}
    if isinstance(exc, TooManyRequestsError):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="spe-api"'
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers)
