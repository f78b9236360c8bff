"""YahooSource: yfinance's real fetching and parsing code, served recorded v8 chart answers at curl_cffi's edge."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from curl_cffi import requests as curl_requests
from curl_cffi.const import CurlECode
from yfinance import cache as yf_cache
from yfinance import data as yf_data

from portfolio_engine.adapters.cache import MemoryCache, RedisCache
from portfolio_engine.adapters.market_data.resilience import ResiliencePolicy, retry_after_seconds
from portfolio_engine.adapters.market_data.yahoo import YahooSession, YahooSource, is_settled
from portfolio_engine.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    EmptyDataError,
    MalformedResponseError,
    RateLimitedError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from portfolio_engine.ports import MarketDataSource

from .conftest import Answer, YahooRecorder, load_fixture

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

START, END = date(2024, 1, 2), date(2024, 1, 8)
TZ_PROBE = "yahoo_chart_AAPL_range_1d.json"
HISTORY = "yahoo_chart_AAPL_2024-01-02_2024-01-08.json"

# The recorded bars, typed out independently of any parser.
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


def _serve_aapl(http: YahooRecorder, *history: Answer) -> None:
    http.on_chart("AAPL", "tz", Answer.json(load_fixture(TZ_PROBE)))
    http.on_chart("AAPL", "history", *(history or (Answer.json(load_fixture(HISTORY)),)))


def _timeout() -> Answer:
    return Answer(
        error=curl_requests.exceptions.Timeout(
            "Operation timed out after 5001 milliseconds", CurlECode.OPERATION_TIMEDOUT
        )
    )


def test_source_satisfies_the_port(yahoo_http: YahooRecorder) -> None:
    assert isinstance(YahooSource(), MarketDataSource)


def test_good_response_is_parsed_exactly(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given recorded tz-probe and history answers for AAPL
    _serve_aapl(yahoo_http)

    # When the source fetches the first week of January 2024
    bars = YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)

    # Then every value matches the recording, dated by the exchange's calendar day
    pd.testing.assert_frame_equal(bars, EXPECTED_AAPL, check_dtype=False)
    assert bars["date"].dt.tz is None
    assert str(bars["symbol"].dtype) == "string"
    # And yfinance asked for the inclusive range (its end is exclusive) with a crumb
    history = [c for c in yahoo_http.chart_calls("AAPL") if "period1" in c.params]
    assert len(history) == 1
    assert history[0].params["interval"] == "1d"
    assert history[0].params["crumb"] == YahooRecorder.crumb
    assert pd.Timestamp(int(history[0].params["period2"]), unit="s", tz="America/New_York").date() == date(2024, 1, 9)


def test_a_single_string_is_one_symbol(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    _serve_aapl(yahoo_http)
    bars = YahooSource(policy=fast_policy).fetch("AAPL", START, END)
    assert set(bars["symbol"]) == {"AAPL"}


def test_timeout_is_retried_then_succeeds(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given a history request that times out once
    _serve_aapl(yahoo_http, _timeout(), Answer.json(load_fixture(HISTORY)))

    # When fetching
    bars = YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)

    # Then the second attempt's bars come back
    assert len(bars) == 5
    assert len([c for c in yahoo_http.chart_calls("AAPL") if "period1" in c.params]) == 2


def test_timeouts_until_exhaustion_raise_source_unavailable(
    yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy
) -> None:
    # Given a history request that always times out
    _serve_aapl(yahoo_http, _timeout())

    # When fetching, then SourceUnavailableError after max_attempts history requests
    with pytest.raises(SourceUnavailableError, match="did not answer in time") as caught:
        YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)
    assert isinstance(caught.value.__cause__, curl_requests.exceptions.Timeout)
    assert len([c for c in yahoo_http.chart_calls("AAPL") if "period1" in c.params]) == fast_policy.max_attempts


def test_http_429_is_retried_then_succeeds(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given Yahoo answers 429 once, then the bars
    too_many = Answer.json({"finance": {"error": "Too Many Requests"}}, 429)
    _serve_aapl(yahoo_http, too_many, Answer.json(load_fixture(HISTORY)))

    # When fetching, then the retry returns the bars
    bars = YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)
    pd.testing.assert_frame_equal(bars, EXPECTED_AAPL, check_dtype=False)


def test_http_429_until_exhaustion_raises_rate_limited_with_retry_after(
    yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy
) -> None:
    # Given Yahoo always answers 429 with Retry-After: 7
    _serve_aapl(yahoo_http, Answer(429, b"Too Many Requests", {"Retry-After": "7"}))

    # When fetching
    with pytest.raises(RateLimitedError) as caught:
        YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)

    # Then every attempt was made, and the server's Retry-After is visible to the retry wait
    assert len([c for c in yahoo_http.chart_calls("AAPL") if "period1" in c.params]) == fast_policy.max_attempts
    assert retry_after_seconds(caught.value) == 7.0


def test_http_5xx_is_retried_then_succeeds(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    _serve_aapl(yahoo_http, Answer(502, b"<html>Bad Gateway</html>"), Answer.json(load_fixture(HISTORY)))
    bars = YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)
    assert len(bars) == 5


def test_http_5xx_until_exhaustion_raises_source_unavailable(
    yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy
) -> None:
    # Given the time-zone probe itself fails with 503
    yahoo_http.on_chart("AAPL", "tz", Answer(503, b"Service Unavailable"))

    # When fetching, then SourceUnavailableError names the status
    with pytest.raises(SourceUnavailableError, match="HTTP 503"):
        YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)
    assert len(yahoo_http.chart_calls("AAPL")) == fast_policy.max_attempts


def test_no_bars_in_range_raises_empty_data(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given Yahoo answers a result with no timestamps (a range without trading days)
    _serve_aapl(yahoo_http, Answer.json(load_fixture("yahoo_chart_AAPL_no_bars.json")))

    # When fetching a weekend, then EmptyDataError, without retrying
    with pytest.raises(EmptyDataError):
        YahooSource(policy=fast_policy).fetch(["AAPL"], date(2024, 1, 6), date(2024, 1, 7))
    assert len([c for c in yahoo_http.chart_calls("AAPL") if "period1" in c.params]) == 1


def test_symbols_without_bars_are_left_out_of_a_multi_symbol_fetch(
    yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy
) -> None:
    # Given AAPL has bars and MSFT (known to Yahoo) has none in the range
    _serve_aapl(yahoo_http)
    msft_tz = load_fixture(TZ_PROBE)
    msft_tz["chart"]["result"][0]["meta"]["symbol"] = "MSFT"
    yahoo_http.on_chart("MSFT", "tz", Answer.json(msft_tz))
    yahoo_http.on_chart("MSFT", "history", Answer.json(load_fixture("yahoo_chart_AAPL_no_bars.json")))

    # When fetching both, then only AAPL's bars come back
    bars = YahooSource(policy=fast_policy).fetch(["AAPL", "MSFT"], START, END)
    assert set(bars["symbol"]) == {"AAPL"}


def test_body_that_is_not_json_raises_malformed(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    _serve_aapl(yahoo_http, Answer(200, b"<html><body>Oops</body></html>", {"Content-Type": "text/html"}))
    with pytest.raises(MalformedResponseError):
        YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)
    # A malformed answer is not transient: no retry
    assert len([c for c in yahoo_http.chart_calls("AAPL") if "period1" in c.params]) == 1


def test_unexpected_shape_raises_malformed(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given a chart result whose indicators lack the "quote" list
    payload = load_fixture(HISTORY)
    payload["chart"]["result"][0]["indicators"] = {"adjclose": [{"adjclose": [184.532]}]}
    _serve_aapl(yahoo_http, Answer.json(payload))

    with pytest.raises(MalformedResponseError, match="unexpected payload"):
        YahooSource(policy=fast_policy).fetch(["AAPL"], START, END)


def test_unknown_ticker_raises_unknown_symbol(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given Yahoo's real "not found" answers for the chart and the quoteSummary fallback
    yahoo_http.on_chart("NOSUCHTICKER", "tz", Answer.json(load_fixture("yahoo_chart_not_found.json"), 404))
    yahoo_http.on_quote_summary("NOSUCHTICKER", Answer.json(load_fixture("yahoo_quote_summary_not_found.json"), 404))

    # When fetching it, then UnknownSymbolError, not retried
    with pytest.raises(UnknownSymbolError, match="NOSUCHTICKER"):
        YahooSource(policy=fast_policy).fetch(["NOSUCHTICKER"], START, END)
    assert not any("period1" in c.params for c in yahoo_http.chart_calls())
    assert any(c.path.startswith("/v10/finance/quoteSummary/NOSUCHTICKER") for c in yahoo_http.calls)


def test_unknown_ticker_after_yfinance_stops_asking_quote_summary(
    yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given yfinance has used up its two quoteSummary fallbacks in this process
    from yfinance import base as yf_base

    monkeypatch.setattr(yf_base, "_tz_info_fetch_ctr", 2)
    yahoo_http.on_chart("NOSUCHTICKER", "tz", Answer.json(load_fixture("yahoo_chart_not_found.json"), 404))

    # When fetching, then yfinance's YFTzMissingError becomes UnknownSymbolError
    with pytest.raises(UnknownSymbolError, match="no timezone found"):
        YahooSource(policy=fast_policy).fetch(["NOSUCHTICKER"], START, END)
    assert not any(c.path.startswith("/v10/finance/quoteSummary/") for c in yahoo_http.calls)


def test_circuit_breaker_opens_then_fails_fast_without_a_request(
    yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy
) -> None:
    # Given Yahoo keeps answering 503 and a breaker that opens after 2 failures, one attempt per call
    yahoo_http.on_chart("AAPL", "tz", Answer(503, b"Service Unavailable"))
    source = YahooSource(policy=replace(fast_policy, max_attempts=1, failure_threshold=2))

    # When fetching three times
    with pytest.raises(SourceUnavailableError) as first:
        source.fetch(["AAPL"], START, END)
    with pytest.raises(CircuitOpenError):
        source.fetch(["AAPL"], START, END)
    requests_so_far = len(yahoo_http.calls)
    with pytest.raises(CircuitOpenError, match="failing fast"):
        source.fetch(["AAPL"], START, END)

    # Then the first failure is the 503, the second opens the breaker, the third sends nothing
    assert not isinstance(first.value, CircuitOpenError)
    assert len(yahoo_http.calls) == requests_so_far


def test_memory_cache_hit_makes_no_request(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given a source with an in-process cache that has fetched AAPL once
    _serve_aapl(yahoo_http)
    source = YahooSource(policy=fast_policy, cache=MemoryCache())
    first = source.fetch(["AAPL"], START, END)
    requests_after_first = len(yahoo_http.calls)

    # When fetching the same request again
    second = source.fetch(["AAPL"], START, END)

    # Then nothing is sent and the bars are identical
    assert len(yahoo_http.calls) == requests_after_first
    pd.testing.assert_frame_equal(first, second)


def test_redis_cache_hit_makes_no_request(
    yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy, redis_url: str
) -> None:
    # Given two sources (two processes, say) sharing a real Redis server
    redis.Redis.from_url(redis_url).flushdb()
    _serve_aapl(yahoo_http)
    first = YahooSource(policy=fast_policy, cache=RedisCache(redis_url)).fetch(["AAPL"], START, END)
    requests_after_first = len(yahoo_http.calls)

    # When the second source fetches the same request
    second = YahooSource(policy=fast_policy, cache=RedisCache(redis_url)).fetch(["AAPL"], START, END)

    # Then it is served from Redis, under the engine's namespace
    assert len(yahoo_http.calls) == requests_after_first
    pd.testing.assert_frame_equal(first, second)
    keys = [k.decode() if isinstance(k, bytes) else k for k in redis.Redis.from_url(redis_url).keys("*")]
    assert len(keys) == 1
    assert keys[0].startswith("spe:cache:yahoo:")


def _until_friday() -> dict[str, Any]:
    """The recorded history without its last bar (Monday 8 January): what Yahoo served a poll on Friday."""
    until_friday = load_fixture(HISTORY)
    result = until_friday["chart"]["result"][0]
    result["timestamp"] = result["timestamp"][:4]
    for series in (*result["indicators"]["quote"][0].values(), result["indicators"]["adjclose"][0]["adjclose"]):
        del series[4:]
    return dict(until_friday)


def _history_calls(http: YahooRecorder) -> int:
    return len([c for c in http.chart_calls("AAPL") if "period1" in c.params])


def test_an_open_range_is_never_served_from_the_cache(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given a cached source that keeps no open-ended answer (open_range_ttl_seconds=0), whose history
    # answer gains a bar between two polls through "now"
    _serve_aapl(yahoo_http, Answer.json(_until_friday()), Answer.json(load_fixture(HISTORY)))
    cache = MemoryCache()
    source = YahooSource(policy=replace(fast_policy, open_range_ttl_seconds=0), cache=cache)

    # When the same open-ended request (no end) is made twice
    first = source.fetch(["AAPL"], START)
    second = source.fetch(["AAPL"], START)

    # Then both went to Yahoo, the second sees the new bar, and nothing was cached
    assert (len(first), len(second)) == (4, 5)
    assert _history_calls(yahoo_http) == 2
    assert len(cache) == 0


class Clock:
    """Monotonic seconds moved by hand, for ``MemoryCache(timer=...)``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_open_range_is_refetched_after_the_short_ttl(
    yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy
) -> None:
    # Given a cache TTL of 600 s, 60 s for open-ended requests, and a history that gains a bar later
    _serve_aapl(yahoo_http, Answer.json(_until_friday()), Answer.json(load_fixture(HISTORY)))
    clock = Clock()
    policy = replace(fast_policy, cache_ttl_seconds=600, open_range_ttl_seconds=60)
    source = YahooSource(policy=policy, cache=MemoryCache(timer=clock))

    # When a poll through "now" (no end) is repeated 59 s later, then the cache answers it
    first = source.fetch(["AAPL"], START)
    clock.now = 59
    again = source.fetch(["AAPL"], START)
    assert (len(first), len(again), _history_calls(yahoo_http)) == (4, 4, 1)

    # When it is repeated 61 s after the first, then Yahoo is asked again and the new bar shows
    clock.now = 61
    later = source.fetch(["AAPL"], START)
    assert (len(later), _history_calls(yahoo_http)) == (5, 2)
    pd.testing.assert_frame_equal(later, EXPECTED_AAPL, check_dtype=False)


def test_a_past_range_keeps_the_long_ttl(yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy) -> None:
    # Given the same TTLs, and a Yahoo that would answer differently if asked again
    _serve_aapl(yahoo_http, Answer.json(load_fixture(HISTORY)), Answer.json(_until_friday()))
    clock = Clock()
    policy = replace(fast_policy, cache_ttl_seconds=600, open_range_ttl_seconds=60)
    source = YahooSource(policy=policy, cache=MemoryCache(timer=clock))

    # When the closed range of January 2024 is fetched, then again 599 s later
    first = source.fetch(["AAPL"], START, END)
    clock.now = 599
    again = source.fetch(["AAPL"], START, END)

    # Then the second came from the cache
    assert _history_calls(yahoo_http) == 1
    pd.testing.assert_frame_equal(first, again)

    # And after 600 s the entry is gone (yfinance's own LRU of past ranges, cleared here, would answer next)
    clock.now = 601
    yf_data.YfData.cache_get.cache_clear()
    source.fetch(["AAPL"], START, END)
    assert _history_calls(yahoo_http) == 2


@pytest.fixture
def yf_disk_caches(yahoo_http: YahooRecorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """yfinance's real on-disk time-zone and cookie caches instead of the recorder's dummies; all restored after."""
    managers = (yf_cache._TzDBManager, yf_cache._CookieDBManager, yf_cache._ISINDBManager)
    for manager in managers:
        monkeypatch.setattr(manager, "_cache_dir", manager._cache_dir)
        monkeypatch.setattr(manager, "_db", None)
    monkeypatch.setattr(yf_cache._TzCacheManager, "_tz_cache", None)
    monkeypatch.setattr(yf_cache._CookieCacheManager, "_Cookie_cache", None)
    yield
    for manager in managers:
        manager.close_db()


def test_cache_dir_holds_yfinances_disk_caches(
    yf_disk_caches: None, yahoo_http: YahooRecorder, fast_policy: ResiliencePolicy, tmp_path: Path
) -> None:
    # Given a source told to keep yfinance's caches in a folder that does not exist yet (as on Lambda)
    _serve_aapl(yahoo_http)
    folder = tmp_path / "spe" / "yfinance"
    source = YahooSource(policy=fast_policy, cache_dir=folder)

    # Then the folder exists and yfinance's time-zone, cookie and ISIN caches point at it
    assert source.cache_dir == folder and folder.is_dir()
    managers = (yf_cache._TzDBManager, yf_cache._CookieDBManager, yf_cache._ISINDBManager)
    assert {manager.get_location() for manager in managers} == {str(folder)}

    # When it fetches, then yfinance stored AAPL's exchange time zone there, not under ~/.cache
    source.fetch(["AAPL"], START, END)
    with sqlite3.connect(folder / "tkr-tz.db") as db:
        assert db.execute("SELECT key, value FROM _tz_kv").fetchall() == [("AAPL", "America/New_York")]
    assert (folder / "cookies.db").is_file()


def test_unusable_cache_dir_is_a_configuration_error(yahoo_http: YahooRecorder, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match="yfinance's cache folder") as caught:
        YahooSource(cache_dir=blocker / "yfinance")
    assert "/tmp" in caught.value.hint


@pytest.mark.parametrize(
    ("end", "settled"),
    [
        (None, False),  # through now
        (date(2024, 3, 11), False),  # today
        (date(2024, 3, 10), False),  # yesterday: still going on west of UTC when the UTC day turns
        (date(2024, 3, 9), True),
        (date(2024, 1, 8), True),
    ],
)
def test_only_ranges_over_in_every_time_zone_are_settled(end: date | None, settled: bool) -> None:
    assert is_settled(end, today=date(2024, 3, 11)) is settled


def test_unsupported_interval_is_a_configuration_error(yahoo_http: YahooRecorder) -> None:
    with pytest.raises(ConfigurationError, match="interval"):
        YahooSource().fetch(["AAPL"], START, END, interval="2d")
    assert yahoo_http.calls == []


def test_yahoo_session_raises_for_chart_429_and_5xx_only(yahoo_http: YahooRecorder) -> None:
    # Given a chart 429, a chart 404 and a crumb answer
    yahoo_http.on_chart("AAPL", "history", Answer(429, b"Too Many Requests", {"Retry-After": "3"}))
    yahoo_http.on_chart("ZZZZ", "history", Answer.json(load_fixture("yahoo_chart_not_found.json"), 404))
    session = YahooSession()

    # Then only the chart 429 raises, carrying its response
    with pytest.raises(curl_requests.exceptions.HTTPError) as caught:
        session.get("https://query2.finance.yahoo.com/v8/finance/chart/AAPL", params={"period1": "1"})
    assert caught.value.response.headers["Retry-After"] == "3"
    not_found = session.get("https://query2.finance.yahoo.com/v8/finance/chart/ZZZZ", params={"period1": "1"})
    assert not_found.status_code == 404
    assert session.get("https://query1.finance.yahoo.com/v1/test/getcrumb").text == YahooRecorder.crumb
