"""One resilience wrapper for every network source: cache, rate limit, retries, circuit breaker.

A source describes one request as a small dict of parameters (never secrets) and a function that
performs it and returns canonical bars. ``ResilientCaller.call`` then:

1. looks the request up in the response cache (key = source name + SHA-256 of the parameters);
2. on a miss, tries the function up to ``max_attempts`` times (tenacity): only transient errors,
   ``SourceUnavailableError`` (timeouts, connection errors, HTTP 5xx) and ``RateLimitedError`` (HTTP 429,
   rate-limit notes), are retried, after exponential backoff with full jitter, or after the server's
   ``Retry-After`` when the error was caused by an HTTP response that carries one;
3. each attempt first takes a token from the source's rate limiter (pyrate-limiter, requests per
   minute), blocking up to ``max_rate_wait_seconds`` before giving up with ``ThrottledError``;
4. each attempt runs inside the source's circuit breaker (pybreaker): after ``failure_threshold``
   consecutive transient failures it opens, and calls fail fast with ``CircuitOpenError`` (no request)
   until ``reset_timeout_seconds`` have passed; one trial call then closes or re-opens it;
5. a success is written to the cache, for ``cache_ttl_seconds`` when the request is a closed
   historical range and for at most ``open_range_ttl_seconds`` when it is open-ended (see below).

**What the cache holds:** the parsed, schema-conformed bars serialised as Parquet bytes, not the raw
HTTP body. yfinance does its own HTTP and hands back a DataFrame, so caching parsed bars is the one
form every source shares; it also saves re-parsing on a hit. Errors are never cached.

**Open-ended requests** (``call(..., open_ended=True)``): an answer that can still gain or change bars,
because the range has no end ("through now"), reaches today, or is a whole series by nature (Alpha
Vantage), is kept only ``open_range_ttl_seconds`` (default 60 s): a schedule polling every few minutes,
or a same-day rerun, then sees the new bars instead of an hour-old answer. The source decides, with
``_common.is_settled`` for date ranges. Closed historical ranges keep ``cache_ttl_seconds``.

Sources translate their SDK/HTTP errors into the engine's typed errors *inside* the function they
pass, chaining the HTTP error (``raise RateLimitedError(...) from http_error``): the wrapper finds
``Retry-After`` on the chained error's ``response``.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pybreaker
from pyrate_limiter import BucketFullException, Duration, Limiter, LimiterDelayException, Rate
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    RateLimitedError,
    SourceUnavailableError,
    ThrottledError,
)
from portfolio_engine.ports import ResponseCache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResiliencePolicy:
    """How hard a source is pushed and how it backs off; one per source.

    Parameters
    ----------
    requests_per_minute : int, default 60
        Rate limit of the source's own limiter (``Settings.source_rate_per_minute``).
    max_rate_wait_seconds : float, default 60
        How long an attempt may block waiting for a rate-limit token before ``ThrottledError``.
    max_attempts : int, default 4
        Attempts per request, the first included (``Settings.source_max_attempts``); 1 disables retries.
    base_wait_seconds, max_wait_seconds : float, default 0.5 and 30
        Backoff before retry ``n`` is uniform in ``[0, min(max_wait, base_wait * 2**(n-1))]``; a server's
        ``Retry-After`` replaces it, capped at ``max_wait_seconds``. Tests set both to ~0.
    failure_threshold : int, default 5
        Consecutive transient failures (attempts, not calls) that open the circuit breaker.
    reset_timeout_seconds : float, default 60
        How long the breaker stays open before it lets one trial call through.
    timeout_seconds : float, default 10
        Per-request HTTP timeout the source passes to its client (``Settings.source_timeout_seconds``).
    cache_ttl_seconds : int, default 3600
        Lifetime of a cached response for a closed historical range (``Settings.cache_ttl_seconds``);
        0 disables caching altogether.
    open_range_ttl_seconds : int, default 60
        Longest lifetime of a cached response for an open-ended request (no end, an end that reaches
        today, or a whole series); 0 leaves such responses uncached. ``cache_ttl_seconds`` caps it.

    Raises
    ------
    ConfigurationError
        If a count is below 1 or a duration is negative.

    Examples
    --------
    A source's own defaults with only the configured fields replaced:

    >>> policy = ResiliencePolicy(requests_per_minute=5).merged({"timeout_seconds": 20.0, "max_attempts": None})
    >>> policy.requests_per_minute, policy.timeout_seconds, policy.max_attempts
    (5, 20.0, 4)
    """

    requests_per_minute: int = 60
    max_rate_wait_seconds: float = 60.0
    max_attempts: int = 4
    base_wait_seconds: float = 0.5
    max_wait_seconds: float = 30.0
    failure_threshold: int = 5
    reset_timeout_seconds: float = 60.0
    timeout_seconds: float = 10.0
    cache_ttl_seconds: int = 3600
    open_range_ttl_seconds: int = 60

    def __post_init__(self) -> None:
        """Reject values no limiter, retry loop or breaker can work with."""
        for name in ("requests_per_minute", "max_attempts", "failure_threshold"):
            if getattr(self, name) < 1:
                raise ConfigurationError(
                    f"ResiliencePolicy.{name} must be at least 1; got {getattr(self, name)}.",
                    hint="Use a positive integer (max_attempts=1 disables retries).",
                )
        for name in (
            "max_rate_wait_seconds",
            "base_wait_seconds",
            "max_wait_seconds",
            "reset_timeout_seconds",
            "cache_ttl_seconds",
            "open_range_ttl_seconds",
        ):
            if getattr(self, name) < 0:
                raise ConfigurationError(
                    f"ResiliencePolicy.{name} must not be negative; got {getattr(self, name)}.",
                    hint="Use 0 to disable the wait (or, for cache_ttl_seconds, the cache).",
                )
        if self.timeout_seconds <= 0:
            raise ConfigurationError(
                f"ResiliencePolicy.timeout_seconds must be positive; got {self.timeout_seconds}.",
                hint="A request needs a timeout; 10 seconds suits every source here.",
            )

    def merged(self, overrides: Mapping[str, Any]) -> ResiliencePolicy:
        """Return a copy with the fields in ``overrides`` replaced; None values are left out.

        Lets an entry point keep a source's own defaults (``AlphaVantageSource.DEFAULT_POLICY``'s
        5 requests per minute) and apply only what the operator configured explicitly.

        Parameters
        ----------
        overrides : mapping of str to object
            Field name -> value. A None value means "not configured" and keeps the current value.

        Returns
        -------
        ResiliencePolicy
            A new, validated policy.

        Raises
        ------
        ConfigurationError
            If a key is not a field of ``ResiliencePolicy``, or a value is out of range.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(
                f"ResiliencePolicy has no field(s) {unknown}.", hint=f"Override only {sorted(known)}."
            )
        return replace(self, **{name: value for name, value in overrides.items() if value is not None})

    def ttl_seconds(self, *, open_ended: bool) -> int:
        """Lifetime of a cached response: ``cache_ttl_seconds``, capped by ``open_range_ttl_seconds`` if open-ended."""
        if open_ended:
            return min(self.open_range_ttl_seconds, self.cache_ttl_seconds)
        return self.cache_ttl_seconds


def is_transient(exc: BaseException) -> bool:
    """Whether a failed attempt is worth retrying and counts towards opening the breaker.

    Transient: ``SourceUnavailableError`` and ``RateLimitedError``. Not transient: an open breaker
    (``CircuitOpenError``), our own exhausted budget (``ThrottledError``), and every error about the
    request or the payload (unknown symbol, empty data, malformed response, authentication).
    """
    if isinstance(exc, CircuitOpenError | ThrottledError):
        return False
    return isinstance(exc, SourceUnavailableError | RateLimitedError)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value (delay-seconds or an HTTP date).

    Returns None when the value is absent or unreadable; never a negative number.
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """``Retry-After`` of the HTTP response behind ``exc`` (searched along ``__cause__``), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if headers is not None:
            try:
                value = headers.get("Retry-After")
            except (AttributeError, TypeError):
                value = None
            seconds = parse_retry_after(value)
            if seconds is not None:
                return seconds
        exc = exc.__cause__
    return None


class _RetryAfterOrBackoff:
    """tenacity wait: the server's ``Retry-After`` when given, else exponential backoff with full jitter."""

    def __init__(self, policy: ResiliencePolicy) -> None:
        self._cap = policy.max_wait_seconds
        self._backoff = wait_random_exponential(multiplier=policy.base_wait_seconds, max=policy.max_wait_seconds)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        hinted = retry_after_seconds(outcome.exception()) if outcome is not None else None
        if hinted is not None:
            return min(hinted, self._cap)
        return float(self._backoff(retry_state))


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        logger.warning(
            "circuit breaker changed state",
            extra={"source": cb.name, "from_state": old_state.name if old_state else None, "to_state": new_state.name},
        )


def cache_key(source: str, request: Mapping[str, Any]) -> str:
    """Cache key of one request: ``"<source>:<sha256 of the sorted JSON parameters>"``."""
    canonical = json.dumps(dict(request), sort_keys=True, default=str, separators=(",", ":"))
    return f"{source}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def bars_to_bytes(bars: pd.DataFrame) -> bytes:
    """Serialise a bar table to Parquet bytes (the cached form)."""
    buffer = io.BytesIO()
    bars.to_parquet(buffer, index=False)
    return buffer.getvalue()


def bars_from_bytes(payload: bytes) -> pd.DataFrame:
    """Read a bar table written by ``bars_to_bytes`` back into the canonical schema."""
    return conform_bars(pd.read_parquet(io.BytesIO(payload)))


class ResilientCaller:
    """Cache, rate limiter, retries and circuit breaker around one source's requests.

    Parameters
    ----------
    source : str
        Source name; names the limiter bucket, the breaker, cache keys and log records.
    policy : ResiliencePolicy, optional
        Limits and waits; the defaults suit a production run.
    cache : ResponseCache, optional
        Where successful responses are kept; None disables caching.
    sleep : callable, default ``time.sleep``
        Used for retry waits; tests pass a recorder to check waits without sleeping.

    Notes
    -----
    The breaker is pybreaker's, which serialises calls through one lock: requests of one source run
    one at a time. That is what the rate limits of these free APIs want anyway.
    """

    def __init__(
        self,
        source: str,
        policy: ResiliencePolicy | None = None,
        cache: ResponseCache | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.policy = policy or ResiliencePolicy()
        self.cache = cache
        self._sleep = sleep
        self._limiter = Limiter(
            Rate(self.policy.requests_per_minute, Duration.MINUTE),
            raise_when_fail=True,
            max_delay=int(self.policy.max_rate_wait_seconds * 1000),
        )
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=self.policy.failure_threshold,
            reset_timeout=self.policy.reset_timeout_seconds,
            exclude=[lambda exc: not is_transient(exc)],
            listeners=[_BreakerLog()],
            name=source,
        )

    @property
    def breaker_state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``."""
        return str(self._breaker.current_state)

    def call(
        self, request: Mapping[str, Any], fetch: Callable[[], pd.DataFrame], *, open_ended: bool = True
    ) -> pd.DataFrame:
        """Return the bars for ``request``, from the cache or by calling ``fetch`` resiliently.

        Parameters
        ----------
        request : mapping
            JSON-serialisable parameters that identify the request (symbol, dates, interval, ...);
            they form the cache key, so they must not contain secrets.
        fetch : callable returning DataFrame
            Performs the request and returns canonical bars; raises the engine's typed errors.
        open_ended : bool, default True
            Whether the answer can still change: a range without an end or reaching today, or a whole
            series. Its answer is cached for ``open_range_ttl_seconds`` at most. Pass False only for a
            closed historical range (``_common.is_settled``); the default errs on the side of fresh data.

        Returns
        -------
        DataFrame
            Canonical bar table (``portfolio_engine.data.schema``).

        Raises
        ------
        CircuitOpenError
            The breaker is open (or opened on this call's last failure).
        ThrottledError
            No rate-limit token within ``max_rate_wait_seconds``.
        RateLimitedError, SourceUnavailableError
            Still failing after ``max_attempts``.
        DataError
            Whatever non-transient error ``fetch`` raised (not retried).
        """
        key = cache_key(self.source, request)
        ttl = self.policy.ttl_seconds(open_ended=open_ended)
        cached = self._read_cache(key) if ttl > 0 else None
        if cached is not None:
            logger.debug("cache hit", extra={"source": self.source, "cache_key": key})
            return cached
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=_RetryAfterOrBackoff(self.policy),
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        bars = retrying(self._attempt, fetch)
        if ttl > 0:
            self._write_cache(key, bars, ttl)
        return bars

    def _attempt(self, fetch: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        self._acquire_token()
        try:
            return self._breaker.call(fetch)
        except pybreaker.CircuitBreakerError as exc:
            cause = exc.__context__
            detail = f" after: {cause}" if cause is not None else "; failing fast without a request"
            raise CircuitOpenError(
                f"Circuit breaker of source '{self.source}' is open "
                f"({self.policy.failure_threshold} consecutive failures){detail}."
            ) from exc

    def _acquire_token(self) -> None:
        try:
            self._limiter.try_acquire(self.source)
        except (BucketFullException, LimiterDelayException) as exc:
            raise ThrottledError(
                f"Source '{self.source}' is limited to {self.policy.requests_per_minute} requests per minute and no "
                f"slot freed up within {self.policy.max_rate_wait_seconds} s."
            ) from exc

    def _log_retry(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        logger.warning(
            "retrying source request",
            extra={
                "source": self.source,
                "attempt": retry_state.attempt_number,
                "max_attempts": self.policy.max_attempts,
                "wait_seconds": retry_state.upcoming_sleep,
                "error": type(error).__name__ if error is not None else None,
            },
        )

    def _read_cache(self, key: str) -> pd.DataFrame | None:
        if self.cache is None:
            return None
        payload = self.cache.get(key)
        if payload is None:
            return None
        try:
            return bars_from_bytes(payload)
        except Exception as exc:  # a corrupt entry is a miss, whatever pyarrow raises
            logger.warning(
                "unreadable cache entry ignored",
                extra={"source": self.source, "cache_key": key, "error": type(exc).__name__},
            )
            return None

    def _write_cache(self, key: str, bars: pd.DataFrame, ttl_seconds: int) -> None:
        if self.cache is None:
            return
        self.cache.set(key, bars_to_bytes(bars), ttl_seconds)
