"""Checks on a request before any route sees it: its size, its encoding, its content type.

Powertools' resolvers fail on some bodies with exceptions no handler is registered for (found by fuzzing,
powertools 3.37): a multipart body without a boundary raises ``ValueError``, and the local resolver decodes
bodies and headers as UTF-8 without catching ``UnicodeDecodeError``. Screening first turns each into a 400
(or 413 for a body over ``SPE_API_MAX_BODY_BYTES``) with the API's one error shape, on Lambda and locally.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from typing import Any

from portfolio_engine.api.errors import ApiError, BadRequestError, PayloadTooLargeError, error_body

__all__ = ["screen", "screen_event"]

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def screen(method: str, headers: Mapping[str, str], body: bytes, *, max_bytes: int) -> ApiError | None:
    """The error a request must be answered with before routing, or None. ``headers`` has lower-case names."""
    if len(body) > max_bytes:
        return PayloadTooLargeError(
            f"The body has {len(body):,} bytes; the API accepts at most {max_bytes:,}.",
            hint="Send less (a smaller spec or universe), or raise SPE_API_MAX_BODY_BYTES.",
        )
    if not body:
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return BadRequestError("The body is not UTF-8.")
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if method.upper() in _BODY_METHODS and content_type and content_type != "application/json":
        return BadRequestError(f"Content type {content_type!r} is not accepted; send application/json.")
    return None


def screen_event(event: Mapping[str, Any], *, max_bytes: int) -> dict[str, Any] | None:
    """The API Gateway (HTTP API, payload 2.0) response for an event that fails :func:`screen`, or None."""
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode("utf-8")
    except (binascii.Error, ValueError):
        body = b"\xff"  # not base64 after all: refuse it as undecodable
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "GET"))
    problem = screen(method, headers, body, max_bytes=max_bytes)
    if problem is None:
        return None
    request_id = str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex)
    status, document = error_body(problem, request_id)
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "X-Request-Id": request_id},
        "body": json.dumps(document),
        "isBase64Encoded": False,
    }
