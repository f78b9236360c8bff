"""NasdaqDataLinkSource against recorded Nasdaq Data Link answers served by ``responses``."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd
import pytest
import redis
import requests
import responses
from responses import matchers

from portfolio_engine.adapters.cache import MemoryCache, RedisCache
from portfolio_engine.adapters.market_data.nasdaq_data_link import BASE_URL, NasdaqDataLinkSource, parse_dataset_data
from portfolio_engine.adapters.market_data.resilience import ResiliencePolicy
from portfolio_engine.exceptions import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    EmptyDataError,
    MalformedResponseError,
    RateLimitedError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from portfolio_engine.ports import MarketDataSource

from .conftest import load_fixture

KEY = "NDLKEY-abcdef123456"
WIKI_AAPL = f"{BASE_URL}/datasets/WIKI/AAPL/data.json"
START, END = date(2018, 3, 1), date(2018, 3, 7)

EXPECTED_WIKI_AAPL = pd.DataFrame(
    {
        "date": pd.to_datetime(["2018-03-01", "2018-03-02", "2018-03-05", "2018-03-06", "2018-03-07"]),
        "symbol": ["WIKI/AAPL"] * 5,
        "open": [178.54, 172.8, 175.21, 177.91, 174.94],
        "high": [179.775, 176.3, 177.74, 178.25, 175.85],
        "low": [172.66, 172.45, 174.52, 176.13, 174.27],
        "close": [175.0, 176.21, 176.82, 176.67, 175.03],
        "adj_close": [175.0, 176.21, 176.82, 176.67, 175.03],
        "volume": [48801970.0, 38453950.0, 28401366.0, 23788506.0, 31703462.0],
    }
)


def _source(policy: ResiliencePolicy, **kwargs: object) -> NasdaqDataLinkSource:
    return NasdaqDataLinkSource(KEY, policy=policy, **kwargs)


def _ok(**kwargs: Any) -> dict[str, Any]:
    return {
        "method": responses.GET,
        "url": WIKI_AAPL,
        "json": load_fixture("nasdaq_data_link_WIKI_AAPL_2018-03-01_2018-03-07.json"),
        **kwargs,
    }


def _error(code: str, status: int) -> dict[str, Any]:
    return {
        "method": responses.GET,
        "url": WIKI_AAPL,
        "json": load_fixture(f"nasdaq_data_link_error_{code}.json"),
        "status": status,
    }


def test_source_satisfies_the_port() -> None:
    assert isinstance(NasdaqDataLinkSource(KEY), MarketDataSource)


@responses.activate
def test_good_response_is_parsed_exactly(fast_policy: ResiliencePolicy) -> None:
    # Given the recorded WIKI/AAPL answer, matched on its exact query
    query = {"api_key": KEY, "order": "asc", "start_date": "2018-03-01", "end_date": "2018-03-07"}
    responses.add(**_ok(match=[matchers.query_param_matcher(query)]))

    # When fetching the first week of March 2018
    bars = _source(fast_policy).fetch(["WIKI/AAPL"], START, END)

    # Then Date/Open/High/Low/Close/Volume/Adj. Close map onto the canonical columns
    pd.testing.assert_frame_equal(bars, EXPECTED_WIKI_AAPL, check_dtype=False)


def test_lower_case_and_underscore_columns_are_recognised() -> None:
    # Given an EOD-style dataset with Adj_Close and lower-case names
    payload = {
        "dataset_data": {
            "column_names": ["date", "open", "high", "low", "close", "volume", "Adj_Close"],
            "data": [["2018-03-01", 178.54, 179.775, 172.66, 175.0, 48801970.0, 171.2]],
        }
    }
    bars = parse_dataset_data(payload, "EOD/AAPL")
    assert bars.loc[0, ["close", "adj_close", "volume"]].tolist() == [175.0, 171.2, 48801970.0]
    assert bars.loc[0, "symbol"] == "EOD/AAPL"


@responses.activate
def test_weekly_interval_asks_the_api_to_collapse(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok(match=[matchers.query_param_matcher({"collapse": "weekly"}, strict_match=False)]))
    assert len(_source(fast_policy).fetch(["WIKI/AAPL"], START, END, interval="1wk")) == 5


@responses.activate
def test_timeouts_until_exhaustion_raise_source_unavailable(fast_policy: ResiliencePolicy) -> None:
    responses.add(responses.GET, WIKI_AAPL, body=requests.ConnectTimeout(f"timed out: ?api_key={KEY}"))
    with pytest.raises(SourceUnavailableError) as caught:
        _source(fast_policy).fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == fast_policy.max_attempts
    assert KEY not in str(caught.value.__cause__)


@responses.activate
def test_connection_error_is_retried_then_succeeds(fast_policy: ResiliencePolicy) -> None:
    responses.add(responses.GET, WIKI_AAPL, body=requests.ConnectionError("Connection reset by peer"))
    responses.add(**_ok())
    assert len(_source(fast_policy).fetch(["WIKI/AAPL"], START, END)) == 5


@responses.activate
def test_http_429_is_retried_then_succeeds(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_error("QELx01", 429))
    responses.add(**_ok())
    bars = _source(fast_policy).fetch(["WIKI/AAPL"], START, END)
    pd.testing.assert_frame_equal(bars, EXPECTED_WIKI_AAPL, check_dtype=False)
    assert len(responses.calls) == 2


@responses.activate
def test_http_429_until_exhaustion_raises_rate_limited(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_error("QELx01", 429))
    with pytest.raises(RateLimitedError):
        _source(fast_policy).fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == fast_policy.max_attempts


@responses.activate
def test_http_5xx_is_retried_then_until_exhaustion(fast_policy: ResiliencePolicy) -> None:
    responses.add(responses.GET, WIKI_AAPL, status=502, body="Bad Gateway")
    responses.add(**_ok())
    assert len(_source(fast_policy).fetch(["WIKI/AAPL"], START, END)) == 5

    responses.reset()
    responses.add(responses.GET, WIKI_AAPL, status=503, body="Service Unavailable")
    with pytest.raises(SourceUnavailableError, match="HTTP 503"):
        _source(fast_policy).fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == fast_policy.max_attempts


@responses.activate
def test_unknown_dataset_raises_unknown_symbol_without_retry(fast_policy: ResiliencePolicy) -> None:
    url = f"{BASE_URL}/datasets/WIKI/NOSUCHTICKER/data.json"
    responses.add(responses.GET, url, json=load_fixture("nasdaq_data_link_error_QECx02.json"), status=404)
    with pytest.raises(UnknownSymbolError, match="QECx02"):
        _source(fast_policy).fetch(["WIKI/NOSUCHTICKER"], START, END)
    assert len(responses.calls) == 1


@responses.activate
def test_symbol_without_database_is_rejected_before_any_request(fast_policy: ResiliencePolicy) -> None:
    with pytest.raises(UnknownSymbolError, match="DATABASE/CODE"):
        _source(fast_policy).fetch(["AAPL"], START, END)
    assert len(responses.calls) == 0


@responses.activate
def test_rejected_key_raises_authentication_error(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_error("QEAx01", 400))
    with pytest.raises(AuthenticationError, match="QEAx01"):
        _source(fast_policy).fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == 1


@responses.activate
def test_missing_key_raises_authentication_error_before_any_request() -> None:
    with pytest.raises(AuthenticationError) as caught:
        NasdaqDataLinkSource(None).fetch(["WIKI/AAPL"], START, END)
    assert "SPE_NASDAQ_DATA_LINK_API_KEY" in caught.value.hint
    assert len(responses.calls) == 0


@responses.activate
def test_empty_payload_raises_empty_data(fast_policy: ResiliencePolicy) -> None:
    responses.add(responses.GET, WIKI_AAPL, json=load_fixture("nasdaq_data_link_WIKI_AAPL_no_rows.json"))
    with pytest.raises(EmptyDataError):
        _source(fast_policy).fetch(["WIKI/AAPL"], date(2018, 3, 31), date(2018, 4, 1))


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        '{"dataset": {}}',
        '{"dataset_data": {"column_names": ["Date", "Close"]}}',
        '{"dataset_data": {"column_names": ["Date", "Value"], "data": [["2018-03-01", 1.0]]}}',
        '{"dataset_data": {"column_names": ["Date", "Close"], "data": [["2018-03-01"]]}}',
        '{"dataset_data": {"column_names": ["Date", "Close"], "data": [["2018-03-01", "n/a"]]}}',
    ],
    ids=["not-json", "no-dataset-data", "no-data", "no-close", "ragged-row", "non-numeric"],
)
@responses.activate
def test_malformed_payload_raises_malformed_without_retry(fast_policy: ResiliencePolicy, body: str) -> None:
    responses.add(responses.GET, WIKI_AAPL, body=body)
    with pytest.raises(MalformedResponseError):
        _source(fast_policy).fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == 1


@responses.activate
def test_circuit_breaker_opens_then_fails_fast_without_a_request(fast_policy: ResiliencePolicy) -> None:
    responses.add(responses.GET, WIKI_AAPL, status=500)
    source = _source(replace(fast_policy, max_attempts=2, failure_threshold=2))
    with pytest.raises(CircuitOpenError, match="after"):
        source.fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == 2
    with pytest.raises(CircuitOpenError, match="failing fast"):
        source.fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == 2


@responses.activate
def test_memory_cache_hit_makes_no_request(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok())
    source = _source(fast_policy, cache=MemoryCache())
    first = source.fetch(["WIKI/AAPL"], START, END)
    second = source.fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == 1
    pd.testing.assert_frame_equal(first, second)


@responses.activate
def test_redis_cache_hit_makes_no_request(fast_policy: ResiliencePolicy, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    responses.add(**_ok())
    first = _source(fast_policy, cache=RedisCache(redis_url)).fetch(["WIKI/AAPL"], START, END)
    second = _source(fast_policy, cache=RedisCache(redis_url)).fetch(["WIKI/AAPL"], START, END)
    assert len(responses.calls) == 1
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize(
    ("end", "ttl_range"),
    [(None, (1, 60)), (END, (61, 600))],
    ids=["open-ended: open_range_ttl_seconds", "past range: cache_ttl_seconds"],
)
@responses.activate
def test_redis_entry_lives_as_long_as_the_range_allows(
    fast_policy: ResiliencePolicy, redis_url: str, end: date | None, ttl_range: tuple[int, int]
) -> None:
    # Given a cache TTL of 600 s and 60 s for open-ended requests
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    responses.add(**_ok())
    policy = replace(fast_policy, cache_ttl_seconds=600, open_range_ttl_seconds=60)

    # When a range is fetched through the Redis cache
    _source(policy, cache=RedisCache(redis_url)).fetch(["WIKI/AAPL"], START, end)

    # Then Redis expires its one entry after the TTL that fits the range
    (key,) = client.keys("spe:cache:nasdaq_data_link:*")
    low, high = ttl_range
    assert low <= client.ttl(key) <= high


@responses.activate
def test_open_ended_request_is_refetched_after_the_short_ttl(fast_policy: ResiliencePolicy) -> None:
    # Given a memory cache on a hand-moved clock, 60 s for open-ended requests
    responses.add(**_ok())
    now = [0.0]
    source = _source(replace(fast_policy, open_range_ttl_seconds=60), cache=MemoryCache(timer=lambda: now[0]))

    # When a request through "now" (no end) is repeated 59 s and then 61 s after the first
    source.fetch(["WIKI/AAPL"], START)
    now[0] = 59
    source.fetch(["WIKI/AAPL"], START)
    calls_within_ttl = len(responses.calls)
    now[0] = 61
    source.fetch(["WIKI/AAPL"], START)

    # Then the cache answered the second and the third went to the API
    assert (calls_within_ttl, len(responses.calls)) == (1, 2)
    assert "end_date" not in responses.calls[-1].request.url


def test_unsupported_interval_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        NasdaqDataLinkSource(KEY).fetch(["WIKI/AAPL"], START, END, interval="1h")
