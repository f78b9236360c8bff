"""MemoryCache and RedisCache (against a real redis-server), and the cache factory."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import redis

from portfolio_engine.adapters.cache import REDIS_KEY_PREFIX, MemoryCache, RedisCache, cache_from_url
from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.ports import ResponseCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return client


def test_both_caches_satisfy_the_port(redis_url: str) -> None:
    assert isinstance(MemoryCache(), ResponseCache)
    assert isinstance(RedisCache(redis_url), ResponseCache)


def test_memory_cache_returns_what_was_set_until_its_own_ttl_expires() -> None:
    # Given entries with different lifetimes
    clock = FakeClock()
    cache = MemoryCache(timer=clock)
    cache.set("short", b"a", ttl_seconds=10)
    cache.set("long", b"b", ttl_seconds=100)

    # When 50 s pass, then only the long-lived entry remains
    assert cache.get("short") == b"a"
    clock.now = 50
    assert cache.get("short") is None
    assert cache.get("long") == b"b"
    assert cache.get("never-set") is None


def test_memory_cache_evicts_least_recently_used_beyond_max_bytes() -> None:
    cache = MemoryCache(max_bytes=10)
    cache.set("a", b"12345", 60)
    cache.set("b", b"12345", 60)
    assert cache.get("a") == b"12345"  # touch "a": "b" is now least recently used
    cache.set("c", b"12345", 60)
    assert cache.get("b") is None
    assert cache.get("a") == b"12345"
    assert cache.get("c") == b"12345"


def test_memory_cache_skips_values_larger_than_the_bound_and_non_positive_ttls() -> None:
    cache = MemoryCache(max_bytes=4)
    cache.set("big", b"12345", 60)
    cache.set("zero", b"1", 0)
    assert cache.get("big") is None
    assert cache.get("zero") is None
    with pytest.raises(ConfigurationError):
        MemoryCache(max_bytes=0)


def test_memory_cache_is_safe_across_threads() -> None:
    cache = MemoryCache(max_bytes=10_000)

    def work(worker: int) -> None:
        for i in range(300):
            cache.set(f"{worker}:{i % 20}", bytes([worker]) * 10, 60)
            cache.get(f"{(worker + 1) % 8}:{i % 20}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(cache.get(f"{w}:{i}") or b"") for w in range(8) for i in range(20)) <= 10_000


def test_redis_cache_round_trips_under_its_namespace_with_a_ttl(redis_url: str, redis_client: redis.Redis) -> None:
    # Given a value stored for 120 s
    cache = RedisCache(redis_url)
    cache.set("yahoo:abc", b"\x00parquet-bytes", ttl_seconds=120)

    # Then it reads back, lives under spe:cache:, and expires in at most 120 s
    assert cache.get("yahoo:abc") == b"\x00parquet-bytes"
    assert redis_client.get(f"{REDIS_KEY_PREFIX}yahoo:abc") == b"\x00parquet-bytes"
    assert 0 < redis_client.ttl(f"{REDIS_KEY_PREFIX}yahoo:abc") <= 120
    assert cache.get("yahoo:missing") is None


def test_redis_cache_with_zero_ttl_stores_nothing(redis_url: str, redis_client: redis.Redis) -> None:
    RedisCache(redis_url).set("k", b"v", ttl_seconds=0)
    assert redis_client.keys("*") == []


def test_redis_outage_degrades_to_a_miss_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Given a cache pointing at a Redis socket nobody listens on
    cache = RedisCache(f"unix://{tmp_path / 'nobody.sock'}", socket_timeout_seconds=0.1)

    # When reading and writing, then nothing raises, reads miss, and a warning says why
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None
        cache.set("k", b"v", 60)
    assert "Redis cache unavailable" in caplog.text


def test_redis_cache_rests_after_a_failure_then_tries_again(tmp_path: Path, redis_url: str) -> None:
    # Given a cache whose first call failed
    cache = RedisCache(f"unix://{tmp_path / 'nobody.sock'}", retry_after_failure_seconds=60)
    assert cache.get("k") is None

    # When Redis comes back (same object, client swapped to the live server)
    cache._client = redis.Redis.from_url(redis_url)
    redis.Redis.from_url(redis_url).set(f"{REDIS_KEY_PREFIX}k", b"v")

    # Then during the rest period it does not even ask; afterwards it does
    assert cache.get("k") is None
    cache._quiet_until = 0.0
    assert cache.get("k") == b"v"


def test_factory_picks_redis_for_a_url_and_memory_otherwise(redis_url: str) -> None:
    assert isinstance(cache_from_url(None), MemoryCache)
    assert isinstance(cache_from_url("  "), MemoryCache)
    assert isinstance(cache_from_url(redis_url), RedisCache)
    with pytest.raises(ConfigurationError, match="Redis URL"):
        cache_from_url("http://localhost:6379")
