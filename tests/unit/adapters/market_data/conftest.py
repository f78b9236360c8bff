"""Fixtures for the market-data adapters: recorded HTTP answers, a real Redis server, fast policies.

Nothing here reaches the network: ``requests`` is served by ``responses`` (an unregistered URL raises
``ConnectionError``), ``curl_cffi`` (yfinance's transport) by ``YahooRecorder``, which fails the test on
any URL it was not told about, and an autouse guard refuses socket connections to anything but
localhost and Unix sockets (the Redis server).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from curl_cffi import requests as curl_requests
from curl_cffi.requests.headers import Headers
from yfinance import base as yf_base
from yfinance import cache as yf_cache
from yfinance import data as yf_data

from portfolio_engine.adapters.market_data.resilience import ResiliencePolicy

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "market_data"


def load_fixture(name: str) -> Any:
    """Decoded JSON of a recorded response under ``tests/fixtures/market_data``."""
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fixture_json() -> Callable[[str], Any]:
    return load_fixture


def refuse_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make socket connections to anything but localhost and Unix sockets fail the test."""
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        if sock.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1")):
            return real_connect(sock, address)
        raise AssertionError(f"test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse socket connections to anything but localhost and Unix sockets."""
    refuse_network(monkeypatch)


@pytest.fixture
def fast_policy() -> ResiliencePolicy:
    """Retries without waiting, a generous rate limit and a breaker that stays closed."""
    return ResiliencePolicy(
        requests_per_minute=10_000,
        max_rate_wait_seconds=0,
        max_attempts=3,
        base_wait_seconds=0,
        max_wait_seconds=0,
        failure_threshold=100,
        reset_timeout_seconds=60,
        timeout_seconds=5,
        cache_ttl_seconds=600,
    )


# --- Yahoo: recorded answers at curl_cffi's transport ------------------------------------------------


@dataclass
class Answer:
    """One recorded HTTP answer, or an exception the transport raises instead."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: Exception | None = None

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


@dataclass
class Call:
    method: str
    url: str
    params: dict[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


class YahooRecorder:
    """Stands in for ``curl_cffi.requests.Session.request``: serves recorded answers by URL.

    Cookie and crumb endpoints answer as Yahoo does for an anonymous client (``fc.yahoo.com`` 404, a
    crumb string, a consent page without a form). Chart answers are registered per symbol and kind:
    ``"tz"`` for yfinance's time-zone probe (``range=1d``) and ``"history"`` for the bars request. A
    queue of answers is served in order, its last answer repeating. Any other URL fails the test.
    """

    crumb = "Vn2dJ7r9xLq"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.unexpected: list[str] = []
        self._routes: dict[tuple[str, str], list[Answer]] = {}

    def on_chart(self, symbol: str, kind: str, *answers: Answer) -> None:
        self._routes[("chart", f"{symbol}:{kind}")] = list(answers)

    def on_quote_summary(self, symbol: str, *answers: Answer) -> None:
        self._routes[("quoteSummary", symbol)] = list(answers)

    def chart_calls(self, symbol: str | None = None) -> list[Call]:
        prefix = "/v8/finance/chart/" + (symbol or "")
        return [c for c in self.calls if c.path.startswith(prefix)]

    def _route(self, call: Call) -> Answer | None:
        host, path = urlsplit(call.url).hostname or "", call.path
        if host == "fc.yahoo.com":
            return Answer(404, b"<html><body>404 Not Found</body></html>", {"Content-Type": "text/html"})
        if path == "/v1/test/getcrumb":
            return Answer(200, self.crumb.encode(), {"Content-Type": "text/plain"})
        if host == "guce.yahoo.com":
            return Answer(200, b"<html><body>consent</body></html>", {"Content-Type": "text/html"})
        if path.startswith("/v8/finance/chart/"):
            symbol = path.rsplit("/", 1)[-1]
            kind = "tz" if call.params.get("range") == "1d" and "period1" not in call.params else "history"
            return self._next(("chart", f"{symbol}:{kind}"))
        if path.startswith("/v10/finance/quoteSummary/"):
            return self._next(("quoteSummary", path.rsplit("/", 1)[-1]))
        return None

    def _next(self, key: tuple[str, str]) -> Answer | None:
        queue = self._routes.get(key)
        if not queue:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def request(self, method: str, url: str, params: dict[str, Any] | None = None) -> curl_requests.Response:
        query = {k: str(v) for k, v in (params or {}).items()}
        query.update(dict(parse_qsl(urlsplit(url).query)))
        call = Call(method, url.split("?", 1)[0], query)
        self.calls.append(call)
        answer = self._route(call)
        if answer is None:
            self.unexpected.append(f"{method} {url} {query}")
            raise AssertionError(f"unexpected request to {method} {url} {query}")
        if answer.error is not None:
            raise answer.error
        response = curl_requests.Response()
        response.url = f"{call.url}?{urlencode(query)}" if query else call.url
        response.status_code = answer.status
        response.ok = 200 <= answer.status < 400
        response.reason = HTTPStatus(answer.status).phrase
        response.headers = Headers(answer.headers)
        response.content = answer.body
        return response


@contextmanager
def serving_yahoo(monkeypatch: pytest.MonkeyPatch, recorder: YahooRecorder) -> Iterator[YahooRecorder]:
    """Serve Yahoo from ``recorder`` through yfinance's real code, with yfinance's global state reset.

    yfinance keeps process-wide state: a singleton holding the session, cookie and crumb; an LRU
    cache of past-range answers; on-disk time-zone and cookie caches under ``~/.cache``; a counter of
    quoteSummary fallbacks. Inside the block there is a fresh singleton, empty LRU, no disk caches and
    counter 0; on leaving it, any request the recorder could not answer fails the test.
    """

    def fake_request(_session: Any, method: str, url: str, params: Any = None, **_kwargs: Any) -> Any:
        return recorder.request(method, url, params)

    monkeypatch.setattr(curl_requests.Session, "request", fake_request)
    monkeypatch.setattr(yf_data.SingletonMeta, "_instances", {})
    monkeypatch.setattr(yf_cache._TzCacheManager, "_tz_cache", yf_cache._TzCacheDummy())
    monkeypatch.setattr(yf_cache._CookieCacheManager, "_Cookie_cache", yf_cache._CookieCacheDummy())
    monkeypatch.setattr(yf_base, "_tz_info_fetch_ctr", 0)
    yf_data.YfData.cache_get.cache_clear()
    yield recorder
    yf_data.YfData.cache_get.cache_clear()
    assert recorder.unexpected == [], f"requests outside the recording: {recorder.unexpected}"


@pytest.fixture
def yahoo_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[YahooRecorder]:
    """A ``YahooRecorder`` serving yfinance for the test (see ``serving_yahoo``)."""
    with serving_yahoo(monkeypatch, YahooRecorder()) as recorder:
        yield recorder
