"""Byte caches: in-process (``MemoryCache``) and Redis (``RedisCache``), for the network sources and the API.

Both implement ``portfolio_engine.ports.ResponseCache``: bytes in, bytes out, with a time to live per
entry. A cache is an optimisation, never a dependency: neither adapter raises on ``get`` or ``set``;
a Redis outage degrades to a miss with a logged warning, so a fetch still goes to the source.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from cachetools import TLRUCache
from redis.backoff import NoBackoff
from redis.retry import Retry

from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.ports import ResponseCache

logger = logging.getLogger(__name__)

#: Prefix of every key ``RedisCache`` writes, so engine entries are easy to find and flush.
REDIS_KEY_PREFIX = "spe:cache:"


@dataclass(frozen=True)
class _Entry:
    value: bytes
    ttl_seconds: float


def _expires_at(_key: str, entry: _Entry, now: float) -> float:
    return now + entry.ttl_seconds


def _entry_size(entry: _Entry) -> int:
    return len(entry.value)


class MemoryCache:
    """Thread-safe in-process byte cache with a time to live per entry and a bound on total size.

    Built on ``cachetools.TLRUCache`` (a ``TTLCache`` whose expiry is set per item): entries expire
    after their own ``ttl_seconds``; when the total size would exceed ``max_bytes`` the least recently
    used entries are evicted.

    Parameters
    ----------
    max_bytes : int, default 64 MiB
        Upper bound on the summed size of the cached values. A single value larger than this is not cached.
    timer : callable returning float, default ``time.monotonic``
        Clock in seconds; tests pass a fake clock to expire entries without sleeping.

    Raises
    ------
    ConfigurationError
        If ``max_bytes`` is not positive.
    """

    def __init__(self, max_bytes: int = 64 * 2**20, *, timer: Callable[[], float] = time.monotonic) -> None:
        if max_bytes <= 0:
            raise ConfigurationError(
                f"MemoryCache max_bytes must be positive; got {max_bytes}.", hint="Use e.g. 64 * 2**20 (64 MiB)."
            )
        self.max_bytes = max_bytes
        self._entries: TLRUCache[str, _Entry] = TLRUCache(
            maxsize=max_bytes, ttu=_expires_at, timer=timer, getsizeof=_entry_size
        )
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """Return the cached bytes for ``key``, or None when absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry.value

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Store ``value`` under ``key`` for ``ttl_seconds`` (a TTL of 0 or less stores nothing)."""
        if ttl_seconds <= 0:
            return
        if len(value) > self.max_bytes:
            logger.warning(
                "value too large for the memory cache; not cached",
                extra={"cache_key": key, "size_bytes": len(value), "max_bytes": self.max_bytes},
            )
            return
        with self._lock:
            self._entries[key] = _Entry(value, float(ttl_seconds))

    def __len__(self) -> int:
        """Return the number of entries held (expired ones may count until the next access)."""
        with self._lock:
            return len(self._entries)


class RedisCache:
    """Byte cache in Redis: keys namespaced ``spe:cache:``, expiry set atomically with the value.

    ``SET key value EX ttl`` is what ``SETEX`` does (redis-py 8 deprecates its ``setex()`` helper).

    Every Redis error (server down, timeout, authentication) is logged as a warning and treated as a
    miss (``get``) or skipped (``set``). After a failure the cache stays quiet for
    ``retry_after_failure_seconds`` instead of paying a connection timeout on every call.

    Parameters
    ----------
    url : str
        A redis-py URL: ``redis://host:6379/0``, ``rediss://...`` (TLS) or ``unix:///path/to/redis.sock``.
    socket_timeout_seconds : float, default 0.5
        Connect and read timeout; kept short because a slow cache must not slow a fetch.
    retry_after_failure_seconds : float, default 30
        How long to skip Redis after an error.
    client : redis.Redis, optional
        An existing client (its own settings win); ``url`` is then only used in log messages.

    Raises
    ------
    ConfigurationError
        If ``url`` is not a URL redis-py understands.
    """

    def __init__(
        self,
        url: str,
        *,
        socket_timeout_seconds: float = 0.5,
        retry_after_failure_seconds: float = 30.0,
        client: redis.Redis | None = None,
    ) -> None:
        self.url = url
        self.retry_after_failure_seconds = retry_after_failure_seconds
        if client is None:
            try:
                # No client-side retries: a miss is cheaper than waiting for a cache to come back.
                client = redis.Redis.from_url(
                    url,
                    socket_timeout=socket_timeout_seconds,
                    socket_connect_timeout=socket_timeout_seconds,
                    retry=Retry(NoBackoff(), 0),
                )
            except ValueError as exc:
                raise ConfigurationError(
                    f"Cannot use {url!r} as a Redis URL: {exc}.",
                    hint="Set REDIS_URL to redis://host:port/db, rediss://... or unix:///path/to/socket, or unset it.",
                ) from exc
        self._client = client
        self._quiet_until = 0.0

    @staticmethod
    def namespaced(key: str) -> str:
        """Return the Redis key under which ``key`` is stored."""
        return f"{REDIS_KEY_PREFIX}{key}"

    def get(self, key: str) -> bytes | None:
        """Return the cached bytes for ``key``; None when absent, expired or Redis is unreachable."""
        if self._resting():
            return None
        try:
            value = self._client.get(self.namespaced(key))
        except redis.RedisError as exc:
            self._degrade("get", key, exc)
            return None
        if value is None or isinstance(value, bytes):
            return value
        # A client built with decode_responses=True hands back str; the cache stores bytes.
        return str(value).encode()

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Store ``value`` under ``key`` with ``SETEX`` (a TTL of 0 or less stores nothing)."""
        if ttl_seconds <= 0 or self._resting():
            return
        try:
            self._client.set(self.namespaced(key), value, ex=int(ttl_seconds))
        except redis.RedisError as exc:
            self._degrade("set", key, exc)

    def _resting(self) -> bool:
        return time.monotonic() < self._quiet_until

    def _degrade(self, operation: str, key: str, exc: redis.RedisError) -> None:
        self._quiet_until = time.monotonic() + self.retry_after_failure_seconds
        logger.warning(
            "Redis cache unavailable; continuing without it",
            extra={
                "operation": operation,
                "cache_key": key,
                "error": type(exc).__name__,
                "detail": str(exc),
                "retry_after_seconds": self.retry_after_failure_seconds,
            },
        )


def cache_from_url(redis_url: str | None) -> ResponseCache:
    """Build the response cache: ``RedisCache`` when a URL is given, ``MemoryCache`` otherwise.

    Parameters
    ----------
    redis_url : str or None
        ``Settings.redis_url``; None or blank selects the in-process cache.

    Returns
    -------
    ResponseCache

    Raises
    ------
    ConfigurationError
        If the URL is not one redis-py understands.
    """
    if redis_url is None or not redis_url.strip():
        return MemoryCache()
    return RedisCache(redis_url.strip())
