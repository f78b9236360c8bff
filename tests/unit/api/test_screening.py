"""Screening a request before routing: size, encoding, content type, and the one error shape."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from portfolio_engine.api.errors import BadRequestError, PayloadTooLargeError
from portfolio_engine.api.screening import screen, screen_event

JSON = {"content-type": "application/json"}


def test_a_body_over_the_limit_is_too_large() -> None:
    problem = screen("POST", JSON, b"x" * 1025, max_bytes=1024)
    assert isinstance(problem, PayloadTooLargeError) and problem.status == 413
    assert "1,025 bytes" in problem.message and "1,024" in problem.message
    assert screen("POST", JSON, b"{" + b" " * 1022 + b"}", max_bytes=1024) is None  # exactly the limit


@pytest.mark.parametrize(
    ("method", "headers", "body", "match"),
    [
        ("POST", JSON, b'{"a": "\xff\xfe"}', "not UTF-8"),
        ("GET", {}, b"\xc3\x28", "not UTF-8"),
        ("POST", {"content-type": "multipart/form-data"}, b"--x\r\n", "multipart/form-data"),
        ("PUT", {"content-type": "text/plain; charset=utf-8"}, b"hello", "text/plain"),
    ],
    ids=["invalid-utf8", "invalid-utf8-get", "multipart-without-boundary", "text-plain"],
)
def test_an_unreadable_body_is_a_bad_request(method: str, headers: dict[str, str], body: bytes, match: str) -> None:
    problem = screen(method, headers, body, max_bytes=1024)
    assert isinstance(problem, BadRequestError) and problem.status == 400
    assert match in problem.message


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        ("POST", JSON, b'{"name": "core"}'),
        ("POST", {"content-type": "Application/JSON; charset=utf-8"}, b"{}"),
        ("POST", {}, b"{}"),  # no content type: powertools reads it as JSON
        ("GET", {"content-type": "text/plain"}, b"ignored"),  # only bodies of POST/PUT/PATCH are typed
        ("POST", {"content-type": "text/plain"}, b""),  # no body, nothing to read
    ],
)
def test_a_readable_request_passes(method: str, headers: dict[str, str], body: bytes) -> None:
    assert screen(method, headers, body, max_bytes=1024) is None


def _event(body: str | None, *, b64: bool = False, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": "/portfolios",
        "headers": headers if headers is not None else {"Content-Type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/portfolios"}, "requestId": "req-123"},
        "body": body,
        "isBase64Encoded": b64,
    }


def test_an_event_failing_screening_gets_the_error_shape() -> None:
    # Given an HTTP API event whose body is over the limit
    response = screen_event(_event("x" * 2000), max_bytes=1024)
    # Then it is answered 413 with the API's error body and the request id
    assert response is not None
    assert response["statusCode"] == 413
    assert response["headers"] == {"Content-Type": "application/json", "X-Request-Id": "req-123"}
    body = json.loads(response["body"])
    assert set(body) == {"error", "message", "hint", "request_id"}
    assert body["error"] == "PayloadTooLargeError" and body["request_id"] == "req-123"
    assert "SPE_API_MAX_BODY_BYTES" in body["hint"]


def test_a_base64_body_is_decoded_before_screening() -> None:
    # Given the same bytes, base64-encoded as API Gateway sends binary bodies
    good = base64.b64encode(b'{"spec": {}}').decode()
    bad = base64.b64encode(b"\xff\xfe\xfd").decode()
    # Then the good JSON passes and the non-UTF-8 bytes are refused (the base64 text itself is ASCII)
    assert screen_event(_event(good, b64=True), max_bytes=1024) is None
    refused = screen_event(_event(bad, b64=True), max_bytes=1024)
    assert refused is not None and refused["statusCode"] == 400
    assert json.loads(refused["body"])["error"] == "BadRequestError"
    # And the size limit applies to the decoded bytes: 900 bytes are 1,200 in base64
    assert screen_event(_event(base64.b64encode(b" " * 900).decode(), b64=True), max_bytes=1024) is None


def test_an_event_with_a_body_that_is_not_base64_is_refused() -> None:
    response = screen_event(_event("not base64!", b64=True), max_bytes=1024)
    assert response is not None and response["statusCode"] == 400


def test_event_headers_are_matched_whatever_their_case() -> None:
    response = screen_event(_event("hi", headers={"CONTENT-TYPE": "text/plain"}), max_bytes=1024)
    assert response is not None and json.loads(response["body"])["message"].startswith("Content type 'text/plain'")


def test_an_event_without_a_request_id_gets_one() -> None:
    event = _event("x" * 2000)
    del event["requestContext"]["requestId"]
    response = screen_event(event, max_bytes=1024)
    assert response is not None
    rid = response["headers"]["X-Request-Id"]
    assert len(rid) == 32 and json.loads(response["body"])["request_id"] == rid


def test_a_good_event_passes() -> None:
    assert screen_event(_event('{"spec": {}}'), max_bytes=1024) is None
    assert screen_event(_event(None), max_bytes=1024) is None
