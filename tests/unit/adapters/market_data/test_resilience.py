"""ResilientCaller: cache, rate limiter, retries (with Retry-After) and circuit breaker, one at a time."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest
import requests
import responses

from portfolio_engine.adapters.cache import MemoryCache
from portfolio_engine.adapters.market_data._http import http_get
from portfolio_engine.adapters.market_data.resilience import (
    ResiliencePolicy,
    ResilientCaller,
    bars_from_bytes,
    bars_to_bytes,
    cache_key,
    is_transient,
    parse_retry_after,
)
from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    MalformedResponseError,
    RateLimitedError,
    SourceUnavailableError,
    ThrottledError,
    UnknownSymbolError,
)

URL = "https://api.example.test/bars"
BARS = conform_bars(
    pd.DataFrame({"date": pd.to_datetime(["2024-01-02", "2024-01-03"]), "symbol": "AAPL", "close": [185.64, 184.25]})
)


class Script:
    """A fetch function that raises the given errors in turn, then returns BARS; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return BARS


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_policy_rejects_unusable_values() -> None:
    with pytest.raises(ConfigurationError, match="max_attempts"):
        ResiliencePolicy(max_attempts=0)
    with pytest.raises(ConfigurationError, match="base_wait_seconds"):
        ResiliencePolicy(base_wait_seconds=-1)
    with pytest.raises(ConfigurationError, match="timeout_seconds"):
        ResiliencePolicy(timeout_seconds=0)
    with pytest.raises(ConfigurationError, match="open_range_ttl_seconds"):
        ResiliencePolicy(open_range_ttl_seconds=-1)


def test_merged_replaces_only_the_configured_fields() -> None:
    # Given a source's own policy (5 requests per minute, a 2-minute open-range TTL)
    own = ResiliencePolicy(requests_per_minute=5, open_range_ttl_seconds=120)

    # When an entry point overrides the timeout and leaves the rate unset (None)
    merged = own.merged({"timeout_seconds": 20.0, "requests_per_minute": None})

    # Then only the timeout changed, in a new policy
    assert merged == replace(own, timeout_seconds=20.0)
    assert own.timeout_seconds == 10.0
    assert merged.merged({}) == merged


def test_merged_rejects_unknown_fields_and_bad_values() -> None:
    with pytest.raises(ConfigurationError, match="no field") as caught:
        ResiliencePolicy().merged({"rate_per_minute": 5})
    assert "requests_per_minute" in caught.value.hint
    with pytest.raises(ConfigurationError, match="max_attempts"):
        ResiliencePolicy().merged({"max_attempts": 0})


@pytest.mark.parametrize(
    ("cache_ttl", "open_ttl", "closed_expected", "open_expected"),
    [(3600, 60, 3600, 60), (30, 60, 30, 30), (3600, 0, 3600, 0), (0, 60, 0, 0)],
    ids=["defaults", "cache-ttl-caps", "open-uncached", "cache-off"],
)
def test_ttl_of_closed_and_open_ended_requests(
    cache_ttl: int, open_ttl: int, closed_expected: int, open_expected: int
) -> None:
    policy = ResiliencePolicy(cache_ttl_seconds=cache_ttl, open_range_ttl_seconds=open_ttl)
    assert policy.ttl_seconds(open_ended=False) == closed_expected
    assert policy.ttl_seconds(open_ended=True) == open_expected


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (SourceUnavailableError("down"), True),
        (RateLimitedError("429"), True),
        (CircuitOpenError("open"), False),
        (ThrottledError("budget"), False),
        (UnknownSymbolError("nope"), False),
        (MalformedResponseError("junk"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_source_outages_and_rate_limits_are_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_retry_after_header_forms() -> None:
    now = datetime(2024, 1, 8, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Mon, 08 Jan 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 08 Jan 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_cache_key_ignores_parameter_order_and_separates_sources() -> None:
    a = cache_key("yahoo", {"symbol": "AAPL", "interval": "1d"})
    assert a == cache_key("yahoo", {"interval": "1d", "symbol": "AAPL"})
    assert a != cache_key("alpha_vantage", {"symbol": "AAPL", "interval": "1d"})
    assert a.startswith("yahoo:")


def test_bars_round_trip_through_parquet_bytes() -> None:
    pd.testing.assert_frame_equal(bars_from_bytes(bars_to_bytes(BARS)), BARS)


@responses.activate
def test_retry_after_from_the_http_answer_sets_the_wait(fast_policy: ResiliencePolicy) -> None:
    # Given a server that answers 429 with Retry-After: 7, then 200
    responses.add(responses.GET, URL, status=429, headers={"Retry-After": "7"})
    responses.add(responses.GET, URL, json={"ok": True})
    sleep = RecordingSleep()
    caller = ResilientCaller("example", replace(fast_policy, max_wait_seconds=30), sleep=sleep)
    session = requests.Session()

    def fetch() -> pd.DataFrame:
        http_get(session, URL, params={}, timeout=1, source="example")
        return BARS

    # When the caller runs the request
    caller.call({"symbol": "AAPL"}, fetch)

    # Then it waited exactly what the server asked
    assert sleep.waits == [7.0]


def test_retry_after_is_capped_by_max_wait(fast_policy: ResiliencePolicy) -> None:
    response = requests.Response()
    response.status_code, response.headers["Retry-After"] = 429, "3600"
    error = RateLimitedError("429")
    error.__cause__ = requests.HTTPError(response=response)
    sleep = RecordingSleep()
    caller = ResilientCaller("example", replace(fast_policy, max_wait_seconds=5), sleep=sleep)
    caller.call({}, Script(error))
    assert sleep.waits == [5.0]


def test_backoff_grows_exponentially_with_jitter_under_the_cap(fast_policy: ResiliencePolicy) -> None:
    # Given waits of base 1 s, capped at 3 s, and four failures before success
    sleep = RecordingSleep()
    policy = replace(fast_policy, max_attempts=5, base_wait_seconds=1, max_wait_seconds=3)
    caller = ResilientCaller("example", policy, sleep=sleep)
    caller.call({}, Script(*(SourceUnavailableError("down") for _ in range(4))))

    # Then each wait lies in [0, min(3, 2**(n-1))]
    assert len(sleep.waits) == 4
    for n, wait in enumerate(sleep.waits, start=1):
        assert 0 <= wait <= min(3, 2 ** (n - 1))


def test_errors_about_the_request_are_not_retried(fast_policy: ResiliencePolicy) -> None:
    fetch = Script(UnknownSymbolError("no such symbol"))
    with pytest.raises(UnknownSymbolError):
        ResilientCaller("example", fast_policy).call({}, fetch)
    assert fetch.calls == 1


def test_rate_limiter_throttles_without_calling_the_source(fast_policy: ResiliencePolicy) -> None:
    # Given 2 requests per minute and no willingness to wait for a token
    caller = ResilientCaller("example", replace(fast_policy, requests_per_minute=2, max_rate_wait_seconds=0))
    fetch = Script()
    caller.call({"n": 1}, fetch)
    caller.call({"n": 2}, fetch)

    # When a third request comes within the minute, then ThrottledError and no call
    with pytest.raises(ThrottledError) as caught:
        caller.call({"n": 3}, fetch)
    assert fetch.calls == 2
    assert "requests_per_minute" in caught.value.hint
    # And the breaker did not count it as a source failure
    assert caller.breaker_state == "closed"


def test_breaker_opens_fails_fast_and_recovers_after_the_reset_timeout(fast_policy: ResiliencePolicy) -> None:
    # Given a breaker opening after 2 failed attempts and resetting after 0.2 s
    policy = replace(fast_policy, max_attempts=1, failure_threshold=2, reset_timeout_seconds=0.2)
    caller = ResilientCaller("example", policy)
    failing = Script(*(SourceUnavailableError("down") for _ in range(2)))

    # When two calls fail, the second opens it
    with pytest.raises(SourceUnavailableError):
        caller.call({}, failing)
    with pytest.raises(CircuitOpenError) as tripped:
        caller.call({}, failing)
    assert isinstance(tripped.value.__cause__.__context__, SourceUnavailableError)
    assert caller.breaker_state == "open"

    # Then calls fail fast without running the fetch
    with pytest.raises(CircuitOpenError, match="failing fast"):
        caller.call({}, failing)
    assert failing.calls == 2

    # And after the reset timeout one trial call goes through and closes it
    time.sleep(0.25)
    assert len(caller.call({}, failing)) == 2
    assert caller.breaker_state == "closed"


def test_errors_about_the_request_do_not_open_the_breaker(fast_policy: ResiliencePolicy) -> None:
    caller = ResilientCaller("example", replace(fast_policy, failure_threshold=1))
    for _ in range(3):
        with pytest.raises(UnknownSymbolError):
            caller.call({}, Script(UnknownSymbolError("nope")))
    assert caller.breaker_state == "closed"


def test_successes_are_cached_and_errors_are_not(fast_policy: ResiliencePolicy) -> None:
    caller = ResilientCaller("example", replace(fast_policy, max_attempts=1), MemoryCache())
    with pytest.raises(SourceUnavailableError):
        caller.call({"symbol": "AAPL"}, Script(SourceUnavailableError("down")))
    fetch = Script()
    first = caller.call({"symbol": "AAPL"}, fetch)
    second = caller.call({"symbol": "AAPL"}, fetch)
    assert fetch.calls == 1
    pd.testing.assert_frame_equal(first, second)


class RecordingCache(MemoryCache):
    """A MemoryCache on a hand-moved clock that records the TTL of every write."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(timer=lambda: self.now)
        self.ttls: list[int] = []

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self.ttls.append(ttl_seconds)
        super().set(key, value, ttl_seconds)


def test_open_ended_answers_are_cached_briefly_and_refetched_after_the_short_ttl(
    fast_policy: ResiliencePolicy,
) -> None:
    # Given a 600 s cache TTL and a 60 s TTL for open-ended requests
    cache = RecordingCache()
    caller = ResilientCaller("example", replace(fast_policy, cache_ttl_seconds=600, open_range_ttl_seconds=60), cache)
    fetch = Script()

    # When an open-ended request is repeated within 60 s, then it is served from the cache
    caller.call({"symbol": "AAPL", "end": None}, fetch, open_ended=True)
    cache.now = 59
    caller.call({"symbol": "AAPL", "end": None}, fetch, open_ended=True)
    assert (fetch.calls, cache.ttls) == (1, [60])

    # When it is repeated after 60 s, then it is fetched again (and cached again for 60 s)
    cache.now = 61
    caller.call({"symbol": "AAPL", "end": None}, fetch, open_ended=True)
    assert (fetch.calls, cache.ttls) == (2, [60, 60])


def test_closed_ranges_keep_the_long_ttl(fast_policy: ResiliencePolicy) -> None:
    # Given the same TTLs and a closed historical range
    cache = RecordingCache()
    caller = ResilientCaller("example", replace(fast_policy, cache_ttl_seconds=600, open_range_ttl_seconds=60), cache)
    fetch = Script()
    request = {"symbol": "AAPL", "start": "2024-01-02", "end": "2024-01-08"}

    # When it is repeated after 61 s and after 599 s, then the first answer still serves it
    caller.call(request, fetch, open_ended=False)
    for now in (61, 599):
        cache.now = now
        caller.call(request, fetch, open_ended=False)
    assert (fetch.calls, cache.ttls) == (1, [600])

    # And it expires after 600 s
    cache.now = 601
    caller.call(request, fetch, open_ended=False)
    assert fetch.calls == 2


def test_requests_are_open_ended_unless_declared_closed(fast_policy: ResiliencePolicy) -> None:
    cache = RecordingCache()
    ResilientCaller("example", replace(fast_policy, open_range_ttl_seconds=45), cache).call({}, Script())
    assert cache.ttls == [45]


def test_zero_open_range_ttl_leaves_open_ended_answers_uncached(fast_policy: ResiliencePolicy) -> None:
    # Given open-ended answers are not to be cached at all
    cache = RecordingCache()
    caller = ResilientCaller("example", replace(fast_policy, open_range_ttl_seconds=0), cache)
    fetch = Script()

    # When an open-ended request is made twice, then both went to the source and nothing was stored
    caller.call({"end": None}, fetch, open_ended=True)
    caller.call({"end": None}, fetch, open_ended=True)
    assert (fetch.calls, len(cache)) == (2, 0)

    # And a closed range is still cached
    caller.call({"end": "2024-01-08"}, fetch, open_ended=False)
    caller.call({"end": "2024-01-08"}, fetch, open_ended=False)
    assert (fetch.calls, cache.ttls) == (3, [fast_policy.cache_ttl_seconds])


def test_zero_ttl_disables_the_cache(fast_policy: ResiliencePolicy) -> None:
    cache = MemoryCache()
    caller = ResilientCaller("example", replace(fast_policy, cache_ttl_seconds=0), cache)
    fetch = Script()
    caller.call({}, fetch, open_ended=False)
    caller.call({}, fetch, open_ended=False)
    caller.call({}, fetch, open_ended=True)
    assert fetch.calls == 3
    assert len(cache) == 0


def test_unreadable_cache_entry_is_a_miss(fast_policy: ResiliencePolicy, caplog: pytest.LogCaptureFixture) -> None:
    cache = MemoryCache()
    cache.set(cache_key("example", {}), b"not parquet", 60)
    fetch = Script()
    bars = ResilientCaller("example", fast_policy, cache).call({}, fetch)
    assert fetch.calls == 1
    assert len(bars) == 2
    assert "unreadable cache entry" in caplog.text
