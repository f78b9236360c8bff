"""The committed OpenAPI document is the contract: it matches the code, and the live server enforces its roles.

Given the committed ``openapi.json``, when ``spe openapi`` regenerates it, then nothing drifted; and for every
operation that needs a role, when it is called without credentials, with bad ones, or with the role below, then
the server answers 401 or 403 with the one error shape.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from portfolio_engine.cli import app
from portfolio_engine.cli.api import OPENAPI_PATH

from .conftest import LiveApi

METHODS = ("get", "put", "post", "delete", "patch")
ROLES = ("viewer", "manager", "admin")
PUBLIC_PATHS = {"/health", "/version"}
#: Plausible values of the path parameters (they must pass the routes' patterns).
PATH_VALUES = {"name": "default", "run_id": "first", "key_id": "0123456789abcdef"}
#: Bodies the required fields alone do not make plausible.
BODIES: dict[str, dict[str, Any]] = {
    "PortfolioCreate": {"spec": {"name": "default", "universe": ["AAPL", "JPM"], "method": "min_variance"}},
    "PortfolioUpdate": {
        "spec": {"name": "default", "universe": ["AAPL", "JPM"], "method": "min_variance"},
        "expected_spec_version": 1,
    },
}
ERROR_KEYS = {"error", "message", "hint", "request_id"}


def _document() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text())


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in sorted(document["paths"].items()):
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def _differences(left: Any, right: Any, where: str = "") -> list[str]:
    """Where two JSON documents differ, as JSON-pointer-like paths."""
    if isinstance(left, dict) and isinstance(right, dict):
        found: list[str] = []
        for key in sorted(set(left) | set(right), key=str):
            if key not in left or key not in right:
                found.append(f"{where}/{key} ({'added' if key not in left else 'removed'})")
            else:
                found += _differences(left[key], right[key], f"{where}/{key}")
        return found
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [d for i, (a, b) in enumerate(zip(left, right, strict=True)) for d in _differences(a, b, f"{where}/{i}")]
    return [] if left == right else [f"{where or '/'} (changed)"]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _minimal(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A minimal instance: the required fields only, each the simplest value of its type."""
    schema = _resolve(document, schema)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _minimal(document, next(s for s in schema["anyOf"] if s.get("type") != "null"))
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _minimal(document, properties.get(name, {})) for name in schema.get("required", [])}
    simple = {"string": "default", "integer": max(1, schema.get("minimum", 1)), "number": 0.0, "boolean": True}
    return [] if kind == "array" else simple[kind]


def _body(document: dict[str, Any], operation: dict[str, Any]) -> bytes | None:
    if "requestBody" not in operation:
        return None
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    name = schema.get("$ref", "").rsplit("/", 1)[-1]
    return json.dumps(BODIES.get(name) or _minimal(document, schema)).encode()


def _call(api: LiveApi, method: str, path: str, operation: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    url = api.url + path.format(**PATH_VALUES)
    body = _body(_document(), operation)
    sent = {**headers, **({"Content-Type": "application/json"} if body is not None else {})}
    request = urllib.request.Request(url, data=body, method=method.upper(), headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"null")


def _bad_tokens(api: LiveApi) -> dict[str, str]:
    """Tokens the server must refuse with 401, each for one reason."""
    from portfolio_engine.api.devkeys import ensure_dev_issuer

    issuer = ensure_dev_issuer(api.data_dir)
    now = int(time.time())
    claims = {"iss": "spe-local", "aud": "spe-api", "sub": "intruder", "roles": ["admin"], "iat": now, "exp": now + 600}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "garbage": "not-a-jwt",
        "expired": issuer.mint(role="admin", issuer="spe-local", audience="spe-api", ttl_seconds=-3600),
        "wrong audience": issuer.mint(role="admin", issuer="spe-local", audience="another-api"),
        "wrong issuer": issuer.mint(role="admin", issuer="elsewhere", audience="spe-api"),
        "another key": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": issuer.kid}),
        "unsigned": jwt.encode(claims, key=None, algorithm="none"),  # type: ignore[arg-type]
    }


def _assert_error(status: int, body: Any, expected: int, what: str) -> None:
    assert status == expected, f"{what}: {status} {body}"
    assert isinstance(body, dict) and set(body) >= ERROR_KEYS, f"{what}: not an ErrorBody: {body}"
    assert isinstance(body["error"], str) and body["error"], what
    assert isinstance(body["message"], str) and body["message"], what
    assert isinstance(body["request_id"], str) and body["request_id"], what
    assert body["hint"] is None or isinstance(body["hint"], str), what


def test_committed_document_matches_the_code() -> None:
    """Given the routes, when `spe openapi --check` runs, then the committed document is what they generate."""
    from portfolio_engine.api.app import build_app, openapi_document

    generated = json.loads(json.dumps(openapi_document(build_app(None)), sort_keys=True))
    drift = _differences(_document(), generated)
    assert not drift, f"openapi.json drifted (run `spe openapi`): {drift[:20]}"
    result = CliRunner().invoke(app, ["openapi", "--check"])
    assert result.exit_code == 0, result.output


def test_every_operation_declares_its_role_and_security() -> None:
    """Only /health and /version are public; every other route needs a role and names both schemes."""
    document = _document()
    public: set[str] = set()
    for method, path, operation in _operations(document):
        role = operation.get("x-required-role")
        assert role in ("public", *ROLES), f"{method.upper()} {path} declares role {role!r}"
        if role == "public":
            public.add(path)
            continue
        assert operation.get("security") == [{"bearerAuth": []}, {"apiKey": []}], f"{method.upper()} {path}"
        for status in ("401", "403"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, f"{method.upper()} {path} {status}"
    assert public == PUBLIC_PATHS


PROTECTED = [
    pytest.param(method, path, operation, id=f"{method.upper()} {path}")
    for method, path, operation in _operations(_document())
    if operation.get("x-required-role") != "public"
]


@pytest.mark.parametrize(("method", "path", "operation"), PROTECTED)
def test_protected_operation_refuses_callers_without_the_role(
    module_api: LiveApi, method: str, path: str, operation: dict[str, Any]
) -> None:
    """Given a protected operation, when called without the role it declares, then 401 or 403 with an ErrorBody."""
    what = f"{method.upper()} {path}"
    status, body = _call(module_api, method, path, operation, {})
    _assert_error(status, body, 401, f"{what} without credentials")

    for reason, bad in _bad_tokens(module_api).items():
        status, body = _call(module_api, method, path, operation, {"Authorization": f"Bearer {bad}"})
        _assert_error(status, body, 401, f"{what} with a {reason} token")
    status, body = _call(module_api, method, path, operation, {"X-API-Key": "spe_not-a-real-key"})
    _assert_error(status, body, 401, f"{what} with an unknown API key")

    needed = operation["x-required-role"]
    if needed == "viewer":
        status, body = _call(module_api, method, path, operation, module_api.headers("auditor"))
        _assert_error(status, body, 403, f"{what} with a token of no known role")
    else:
        below = ROLES[ROLES.index(needed) - 1]
        status, body = _call(module_api, method, path, operation, module_api.headers(below))
        _assert_error(status, body, 403, f"{what} with a {below} token")
        assert needed in body["message"], body
