"""The API in-process: real services over a temporary data directory, a launcher that records starts only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from portfolio_engine.exceptions import DuplicateError
from portfolio_engine.ports import LaunchStatus


@dataclass
class RecordingLauncher:
    """A ``RunLauncher`` that starts nothing: it remembers each start, and keeps Step Functions' rule
    (the same name and input again is a no-op; the same name with another input is a duplicate)."""

    started: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, tuple[LaunchStatus, str | None]] = field(default_factory=dict)

    def start(self, machine: str, run_id: str, request: dict[str, Any]) -> None:
        known = self.started.get(run_id)
        if known is not None:
            if known != (machine, request):
                raise DuplicateError(f"Run {run_id!r} was started with another input.")
            return
        self.started[run_id] = (machine, json.loads(json.dumps(request)))
        self.statuses[run_id] = ("QUEUED", None)

    def status(self, machine: str, run_id: str) -> tuple[LaunchStatus, str | None] | None:
        known = self.started.get(run_id)
        return self.statuses[run_id] if known is not None and known[0] == machine else None


@dataclass
class Api:
    """The app, its services and a way to send it API Gateway HTTP API (payload 2.0) events."""

    app: Any
    services: Any
    launcher: RecordingLauncher
    data_dir: Path
    last_request_id: str = ""

    def token(self, role: str, subject: str | None = None) -> str:
        from portfolio_engine.api.devkeys import ensure_dev_issuer

        issuer = ensure_dev_issuer(self.data_dir)
        return issuer.mint(role=role, issuer="spe-local", audience="spe-api", subject=subject)

    def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, dict[str, str], Any]:
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        if role is not None:
            sent["authorization"] = f"Bearer {self.token(role)}"
        if body is not None:
            sent.setdefault("content-type", "application/json")
        self.last_request_id = uuid.uuid4().hex
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
            "headers": sent,
            "queryStringParameters": query,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.test",
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": "pytest",
                },
                "requestId": self.last_request_id,
                "routeKey": "$default",
                "stage": "$default",
                "time": "07/Dec/2026:00:00:00 +0000",
                "timeEpoch": 1796601600000,
            },
            "body": None if body is None else (body if isinstance(body, str) else json.dumps(body)),
            "isBase64Encoded": False,
        }
        response = self.app.resolve(event, None)
        text = response.get("body") or ""
        try:
            parsed = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        return response["statusCode"], {k.lower(): v for k, v in (response.get("headers") or {}).items()}, parsed


@pytest.fixture(scope="session")
def issuer_pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One development issuer key for the session (an RSA key takes a while to generate)."""
    from portfolio_engine.api.devkeys import ensure_dev_issuer

    folder = tmp_path_factory.mktemp("issuer")
    ensure_dev_issuer(folder)
    return (folder / "api" / "issuer.pem").read_bytes()


@pytest.fixture
def make_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, issuer_pem: bytes) -> Iterator[Any]:
    from portfolio_engine.api.app import build_app
    from portfolio_engine.api.wiring import build_services
    from portfolio_engine.settings import Settings

    for name in ("SPE_API_JWKS", "SPE_STORE_URI", "SPE_LAKE_URI", "REDIS_URL", "SPE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    def make(**settings: Any) -> Api:
        data_dir = tmp_path / "spe-data"
        (data_dir / "api").mkdir(parents=True, exist_ok=True)
        (data_dir / "api" / "issuer.pem").write_bytes(issuer_pem)  # build_services writes its JWKS
        launcher = RecordingLauncher()
        services = build_services(Settings(data_dir=data_dir, **settings), local=True, launcher=launcher)
        return Api(build_app(services), services, launcher, data_dir)

    yield make


@pytest.fixture
def api(make_api: Any) -> Api:
    return make_api()
