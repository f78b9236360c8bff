"""``spe api``: the Lambda function's resolver served on this machine by uvicorn (ASGI), over the local store.

Each HTTP request becomes the event API Gateway's HTTP API would send (payload 2.0) and goes through the same
``APIGatewayHttpResolver`` as on Lambda, one at a time in a worker thread: powertools keeps the current event
on the resolver's class, as a Lambda process (one request at a time) allows. Powertools' own ``HttpResolverLocal``
was tried first and dropped: it runs each synchronous middleware in a thread of asyncio's default pool that
waits for the next one, so three concurrent requests take the six threads a 2-core machine has and the server
hangs for good (found by ``benchmarks/bench_api.py``, powertools 3.37).

``ScreenedApp`` reads the body (refusing it past the size limit as it arrives), screens it (``api.screening``),
refuses headers and query strings that are not UTF-8, and gives each request its id (``X-Request-Id``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from portfolio_engine.api.errors import ApiError, BadRequestError, PayloadTooLargeError, error_body
from portfolio_engine.api.screening import screen

__all__ = ["ScreenedApp", "build_local_app", "http_api_event"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _LocalContext:
    """The Lambda context the resolver and the logger read."""

    function_name = "spe-api-local"
    memory_limit_in_mb = 0
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:spe-api-local"
    aws_request_id = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_api_event(scope: Scope, body: bytes, request_id: str) -> dict[str, Any]:
    """The API Gateway HTTP API (payload 2.0) event of an ASGI HTTP request whose body has been read."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("utf-8")
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    query = scope.get("query_string", b"").decode("utf-8")
    parameters: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parameters[key] = f"{parameters[key]},{value}" if key in parameters else value  # as API Gateway joins them
    client = scope.get("client") or ("127.0.0.1", 0)
    path = scope["path"]
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": cookies or None,
        "headers": headers,
        "queryStringParameters": parameters or None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "http": {
                "method": scope["method"],
                "path": path,
                "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
                "sourceIp": client[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": body.decode("utf-8") if body else None,
        "isBase64Encoded": False,
    }


class LambdaBridge:
    """Serve a Lambda resolver as ASGI: one request at a time through ``resolver.resolve(event, context)``."""

    def __init__(self, resolver: Any) -> None:
        self.resolver = resolver
        self._lock = threading.Lock()

    def _resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return dict(self.resolver.resolve(event, _LocalContext()))

    async def respond(self, scope: Scope, body: bytes, request_id: str, send: Send) -> None:
        response = await asyncio.to_thread(self._resolve, http_api_event(scope, body, request_id))
        headers = [(str(k).lower().encode(), str(v).encode()) for k, v in (response.get("headers") or {}).items()]
        headers += [(b"set-cookie", str(c).encode()) for c in response.get("cookies") or []]
        payload = response.get("body") or ""
        if response.get("isBase64Encoded"):
            import base64

            data = base64.b64decode(payload)
        else:
            data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        await send({"type": "http.response.start", "status": int(response["statusCode"]), "headers": headers})
        await send({"type": "http.response.body", "body": data})


class ScreenedApp:
    """An ASGI app that screens each HTTP request, then answers it through the bridge."""

    def __init__(self, bridge: LambdaBridge, *, max_bytes: int, on_close: Callable[[], None] | None = None) -> None:
        self.bridge = bridge
        self.max_bytes = max_bytes
        self.on_close = on_close

    def close(self) -> None:
        """Stop what the server started (the local launcher's queued and running runs)."""
        if self.on_close is not None:
            self.on_close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        request_id = uuid.uuid4().hex
        try:
            headers = {k.decode("latin-1").lower(): v.decode("utf-8") for k, v in scope.get("headers", [])}
            scope.get("query_string", b"").decode("utf-8")
        except UnicodeDecodeError:
            await _answer(send, BadRequestError("A header or the query string is not UTF-8."), request_id)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            too_large = f"The body has {int(declared):,} bytes; the API accepts at most {self.max_bytes:,}."
            await _answer(send, PayloadTooLargeError(too_large), request_id)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_bytes or not message.get("more_body", False):
                break
        problem = screen(scope["method"], headers, body, max_bytes=self.max_bytes)
        if problem is not None:
            await _answer(send, problem, request_id)
            return
        await self.bridge.respond(scope, body, request_id, send)


async def _answer(send: Send, problem: ApiError, request_id: str) -> None:
    status, document = error_body(problem, request_id)
    payload = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def build_local_app(settings: Any) -> ScreenedApp:
    """The local API over the settings' store, with the local launcher and the development issuer."""
    from portfolio_engine.api.app import build_app
    from portfolio_engine.api.wiring import build_services

    services = build_services(settings, local=True)
    close = getattr(services.launcher, "close", None)
    return ScreenedApp(LambdaBridge(build_app(services)), max_bytes=settings.api_max_body_bytes, on_close=close)
