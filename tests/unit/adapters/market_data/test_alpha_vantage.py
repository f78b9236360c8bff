"""AlphaVantageSource against recorded Alpha Vantage answers served by ``responses``."""

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
from portfolio_engine.adapters.market_data.alpha_vantage import BASE_URL, PREMIUM_ADJUSTED_HINT, AlphaVantageSource
from portfolio_engine.adapters.market_data.nasdaq_data_link import NasdaqDataLinkSource
from portfolio_engine.adapters.market_data.resilience import ResiliencePolicy, retry_after_seconds
from portfolio_engine.adapters.market_data.yahoo import YahooSource
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

KEY = "AVKEY0123456789"
START, END = date(2024, 1, 2), date(2024, 1, 8)

EXPECTED_AAPL = pd.DataFrame(
    {
        "date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]),
        "symbol": ["AAPL"] * 5,
        "open": [187.15, 184.22, 182.15, 181.99, 182.09],
        "high": [188.44, 185.88, 183.0872, 182.76, 185.6],
        "low": [183.885, 183.43, 180.88, 180.17, 181.5],
        "close": [185.64, 184.25, 181.91, 181.18, 185.56],
        "adj_close": [184.532, 183.15, 180.824, 180.098, 184.452],
        "volume": [82488700.0, 58414500.0, 71983600.0, 62303300.0, 59144500.0],
    }
)


def _source(policy: ResiliencePolicy, **kwargs: object) -> AlphaVantageSource:
    return AlphaVantageSource(KEY, policy=policy, today=lambda: date(2024, 1, 9), **kwargs)


def _ok(payload_name: str = "alpha_vantage_daily_adjusted_AAPL.json") -> dict[str, Any]:
    return {"method": responses.GET, "url": BASE_URL, "json": load_fixture(payload_name)}


def test_source_satisfies_the_port() -> None:
    assert isinstance(AlphaVantageSource(KEY), MarketDataSource)


@responses.activate
def test_good_response_is_parsed_exactly(fast_policy: ResiliencePolicy) -> None:
    # Given the recorded TIME_SERIES_DAILY_ADJUSTED answer, matched on its exact query
    query = {
        "function": "TIME_SERIES_DAILY_ADJUSTED",
        "symbol": "AAPL",
        "outputsize": "compact",
        "datatype": "json",
        "apikey": KEY,
    }
    responses.add(**_ok(), match=[matchers.query_param_matcher(query)])

    # When fetching a recent week (so outputsize "auto" asks for the compact series)
    bars = _source(fast_policy).fetch(["AAPL"], START, END)

    # Then the bars equal the recording, oldest first
    pd.testing.assert_frame_equal(bars, EXPECTED_AAPL, check_dtype=False)


@responses.activate
def test_dates_are_filtered_inclusively(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok())
    bars = _source(fast_policy).fetch(["AAPL"], date(2024, 1, 3), date(2024, 1, 5))
    assert list(bars["date"].dt.strftime("%Y-%m-%d")) == ["2024-01-03", "2024-01-04", "2024-01-05"]


@pytest.mark.parametrize(
    ("start", "today", "expected"),
    [
        (date(2024, 1, 2), date(2024, 1, 9), "compact"),
        (date(2024, 1, 2), date(2024, 12, 31), "full"),
        (None, date(2024, 1, 9), "full"),
    ],
)
@responses.activate
def test_auto_outputsize_asks_for_full_only_when_compact_is_too_short(
    fast_policy: ResiliencePolicy, start: date | None, today: date, expected: str
) -> None:
    # Given only the expected outputsize is answered
    responses.add(**_ok(), match=[matchers.query_param_matcher({"outputsize": expected}, strict_match=False)])

    # When fetching from ``start`` with the given "today", then the request matched
    bars = AlphaVantageSource(KEY, policy=fast_policy, today=lambda: today).fetch(["AAPL"], start, END)
    assert len(bars) == 5


@responses.activate
def test_unadjusted_series_sets_adj_close_to_close(fast_policy: ResiliencePolicy) -> None:
    # Given the free TIME_SERIES_DAILY answer, which has no adjusted close
    responses.add(
        **_ok("alpha_vantage_daily_AAPL.json"),
        match=[matchers.query_param_matcher({"function": "TIME_SERIES_DAILY"}, strict_match=False)],
    )

    # When fetched with adjusted=False
    bars = _source(fast_policy, adjusted=False).fetch(["AAPL"], START, END)

    # Then adj_close is the raw close on every bar: validation sees a single-series source
    assert bars["close"].tolist() == EXPECTED_AAPL["close"].tolist()
    assert (bars["adj_close"] == bars["close"]).all()
    assert bars["volume"].tolist() == EXPECTED_AAPL["volume"].tolist()


@responses.activate
def test_timeouts_until_exhaustion_raise_source_unavailable_without_leaking_the_key(
    fast_policy: ResiliencePolicy,
) -> None:
    # Given every request times out, with the key in the underlying error text
    responses.add(responses.GET, BASE_URL, body=requests.ReadTimeout(f"Read timed out: /query?apikey={KEY}"))

    # When fetching
    with pytest.raises(SourceUnavailableError, match="did not answer") as caught:
        _source(fast_policy).fetch(["AAPL"], START, END)

    # Then all attempts were made and neither our error nor its cause shows the key
    assert len(responses.calls) == fast_policy.max_attempts
    assert KEY not in str(caught.value)
    assert KEY not in str(caught.value.__cause__)


@responses.activate
def test_http_429_is_retried_then_succeeds(fast_policy: ResiliencePolicy) -> None:
    responses.add(responses.GET, BASE_URL, status=429, body="Too Many Requests")
    responses.add(**_ok())
    bars = _source(fast_policy).fetch(["AAPL"], START, END)
    assert len(bars) == 5
    assert len(responses.calls) == 2


@responses.activate
def test_http_429_until_exhaustion_raises_rate_limited(fast_policy: ResiliencePolicy) -> None:
    responses.add(responses.GET, BASE_URL, status=429, body="Too Many Requests", headers={"Retry-After": "12"})
    with pytest.raises(RateLimitedError) as caught:
        _source(fast_policy).fetch(["AAPL"], START, END)
    assert len(responses.calls) == fast_policy.max_attempts
    assert retry_after_seconds(caught.value) == 12.0


@responses.activate
def test_http_5xx_is_retried_then_until_exhaustion(fast_policy: ResiliencePolicy) -> None:
    # Given one 503 then the series: the retry succeeds
    responses.add(responses.GET, BASE_URL, status=503, body="<html>Service Unavailable</html>")
    responses.add(**_ok())
    assert len(_source(fast_policy).fetch(["AAPL"], START, END)) == 5

    # Given only 500s: SourceUnavailableError after max_attempts
    responses.reset()
    responses.add(responses.GET, BASE_URL, status=500, body="Internal Server Error")
    with pytest.raises(SourceUnavailableError, match="HTTP 500"):
        _source(fast_policy).fetch(["AAPL"], START, END)
    assert len(responses.calls) == fast_policy.max_attempts


@responses.activate
def test_call_frequency_note_is_a_rate_limit_and_is_retried(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok("alpha_vantage_note_call_frequency.json"))
    responses.add(**_ok())
    assert len(_source(fast_policy).fetch(["AAPL"], START, END)) == 5
    assert len(responses.calls) == 2


@responses.activate
def test_daily_limit_information_raises_rate_limited(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok("alpha_vantage_information_daily_limit.json"))
    with pytest.raises(RateLimitedError, match="25 requests per day"):
        _source(fast_policy).fetch(["AAPL"], START, END)


@responses.activate
def test_premium_notice_for_the_adjusted_series_says_to_use_adjusted_false(fast_policy: ResiliencePolicy) -> None:
    # Given a free key: TIME_SERIES_DAILY_ADJUSTED is answered with the premium-endpoint notice
    responses.add(**_ok("alpha_vantage_information_premium.json"))

    # When fetching the adjusted series
    with pytest.raises(AuthenticationError, match="premium endpoint") as caught:
        _source(fast_policy).fetch(["AAPL"], START, END)

    # Then the error says how to fix it, and the request was not retried
    assert caught.value.hint == (
        "TIME_SERIES_DAILY_ADJUSTED is a premium endpoint: use adjusted=False (SPE_ALPHA_VANTAGE_ADJUSTED=false) "
        "with a free key."
    )
    assert caught.value.hint == PREMIUM_ADJUSTED_HINT
    assert str(caught.value).endswith(f"Hint: {PREMIUM_ADJUSTED_HINT}")
    assert len(responses.calls) == 1


@responses.activate
def test_premium_notice_for_the_unadjusted_series_does_not_blame_adjusted(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok("alpha_vantage_information_premium.json"))
    with pytest.raises(AuthenticationError, match="TIME_SERIES_DAILY request") as caught:
        _source(fast_policy, adjusted=False).fetch(["AAPL"], date(2000, 1, 3), END)
    assert "adjusted=False" not in caught.value.hint
    assert "outputsize='compact'" in caught.value.hint


@responses.activate
def test_unknown_ticker_raises_unknown_symbol(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok("alpha_vantage_error_invalid_call.json"))
    with pytest.raises(UnknownSymbolError, match="NOSUCHTICKER"):
        _source(fast_policy).fetch(["NOSUCHTICKER"], START, END)
    assert len(responses.calls) == 1


@responses.activate
def test_rejected_key_raises_authentication_error(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok("alpha_vantage_error_apikey.json"))
    with pytest.raises(AuthenticationError, match="apikey"):
        _source(fast_policy).fetch(["AAPL"], START, END)


@pytest.mark.parametrize("key", [None, "", "   "])
@responses.activate
def test_missing_key_raises_authentication_error_before_any_request(key: str | None) -> None:
    with pytest.raises(AuthenticationError, match="No Alpha Vantage API key") as caught:
        AlphaVantageSource(key).fetch(["AAPL"], START, END)
    assert "SPE_ALPHA_VANTAGE_API_KEY" in caught.value.hint
    assert len(responses.calls) == 0


@responses.activate
def test_empty_series_raises_empty_data(fast_policy: ResiliencePolicy) -> None:
    payload = load_fixture("alpha_vantage_daily_adjusted_AAPL.json")
    payload["Time Series (Daily)"] = {}
    responses.add(responses.GET, BASE_URL, json=payload)
    with pytest.raises(EmptyDataError):
        _source(fast_policy).fetch(["AAPL"], START, END)


@responses.activate
def test_range_without_bars_raises_empty_data(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok())
    with pytest.raises(EmptyDataError):
        _source(fast_policy).fetch(["AAPL"], date(2024, 1, 6), date(2024, 1, 7))


@pytest.mark.parametrize(
    "body",
    [
        "<html><body>502 Bad Gateway</body></html>",
        '{"Meta Data": {"2. Symbol": "AAPL"}}',
        '{"Time Series (Daily)": {"2024-01-02": {"1. open": "187.15"}}}',
        '{"Time Series (Daily)": {"2024-01-02": {"4. close": "n/a"}}}',
        "[]",
    ],
    ids=["not-json", "no-series", "no-close", "non-numeric", "a-list"],
)
@responses.activate
def test_malformed_payload_raises_malformed_without_retry(fast_policy: ResiliencePolicy, body: str) -> None:
    responses.add(responses.GET, BASE_URL, body=body, status=200)
    with pytest.raises(MalformedResponseError):
        _source(fast_policy).fetch(["AAPL"], START, END)
    assert len(responses.calls) == 1


@responses.activate
def test_circuit_breaker_opens_then_fails_fast_without_a_request(fast_policy: ResiliencePolicy) -> None:
    # Given a source that always answers 503 and a breaker opening after 3 failed attempts
    responses.add(responses.GET, BASE_URL, status=503)
    source = _source(replace(fast_policy, max_attempts=1, failure_threshold=3))

    # When fetching repeatedly
    for _ in range(2):
        with pytest.raises(SourceUnavailableError):
            source.fetch(["AAPL"], START, END)
    with pytest.raises(CircuitOpenError):
        source.fetch(["AAPL"], START, END)
    assert len(responses.calls) == 3
    with pytest.raises(CircuitOpenError) as caught:
        source.fetch(["AAPL"], START, END)

    # Then the fourth call sent nothing and says how to proceed
    assert len(responses.calls) == 3
    assert "reset_timeout_seconds" in caught.value.hint


@responses.activate
def test_memory_cache_hit_makes_no_request_and_serves_other_ranges(fast_policy: ResiliencePolicy) -> None:
    responses.add(**_ok())
    source = _source(fast_policy, cache=MemoryCache())
    first = source.fetch(["AAPL"], START, END)
    # The cached entry is the whole series: a narrower range is also served from it
    narrower = source.fetch(["AAPL"], date(2024, 1, 4), END)
    again = source.fetch(["AAPL"], START, END)
    assert len(responses.calls) == 1
    pd.testing.assert_frame_equal(first, again)
    assert len(narrower) == 3


@responses.activate
def test_whole_series_is_cached_for_the_short_ttl_even_for_a_past_range(fast_policy: ResiliencePolicy) -> None:
    # Given a cache TTL of 600 s, 60 s for open-ended requests, and a memory cache on a hand-moved clock
    responses.add(**_ok())
    now = [0.0]
    policy = replace(fast_policy, cache_ttl_seconds=600, open_range_ttl_seconds=60)
    source = _source(policy, cache=MemoryCache(timer=lambda: now[0]))

    # When a past week is fetched, again 59 s later, and again 61 s after the first
    source.fetch(["AAPL"], START, END)
    now[0] = 59
    source.fetch(["AAPL"], START, END)
    calls_within_ttl = len(responses.calls)
    now[0] = 61
    source.fetch(["AAPL"], START, END)

    # Then the cached entry, a whole series that gains today's bar, lived 60 s, not 600 s
    assert (calls_within_ttl, len(responses.calls)) == (1, 2)


def test_each_source_declares_its_own_default_policy() -> None:
    assert AlphaVantageSource.DEFAULT_POLICY.requests_per_minute == 5
    assert AlphaVantageSource(KEY).policy is AlphaVantageSource.DEFAULT_POLICY
    assert NasdaqDataLinkSource.DEFAULT_POLICY.requests_per_minute == 120
    assert YahooSource.DEFAULT_POLICY.requests_per_minute == 60
    # An entry point keeps the source's rate and applies only what was configured
    merged = AlphaVantageSource.DEFAULT_POLICY.merged({"timeout_seconds": 30.0})
    assert (merged.requests_per_minute, merged.timeout_seconds) == (5, 30.0)


@responses.activate
def test_redis_cache_hit_makes_no_request(fast_policy: ResiliencePolicy, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    responses.add(**_ok())
    first = _source(fast_policy, cache=RedisCache(redis_url)).fetch(["AAPL"], START, END)
    second = _source(fast_policy, cache=RedisCache(redis_url)).fetch(["AAPL"], START, END)
    assert len(responses.calls) == 1
    pd.testing.assert_frame_equal(first, second)
    keys = [
        k.decode() if isinstance(k, bytes) else k
        for k in redis.Redis.from_url(redis_url).keys("spe:cache:alpha_vantage:*")
    ]
    assert len(keys) == 1


def test_non_daily_interval_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="daily bars only"):
        AlphaVantageSource(KEY).fetch(["AAPL"], START, END, interval="1wk")


def test_repr_does_not_show_the_key() -> None:
    assert KEY not in repr(AlphaVantageSource(KEY))
