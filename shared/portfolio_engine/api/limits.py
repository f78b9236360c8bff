"""Per-caller rate limits: a moving window of requests per minute per verified caller (``limits``).

In Redis when ``REDIS_URL`` is set, so every API process (every Lambda instance) counts against the same
window; in memory otherwise (one process: ``spe api``). A Redis outage lets requests through with a logged
warning: a limiter must not take the API down with it. On AWS, API Gateway's stage throttling bounds the
total rate in front of this.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerMinute, storage, strategies

from portfolio_engine.api.errors import TooManyRequestsError

logger = logging.getLogger(__name__)

__all__ = ["RateLimiter"]


class RateLimiter:
    """``per_minute`` requests per caller in any 60-second window.

    Parameters
    ----------
    per_minute : int
        Requests allowed per caller per minute (``SPE_API_RATE_PER_MINUTE``).
    redis_url : str, optional
        Count in this Redis (shared by every process); in memory when None.
    """

    def __init__(self, per_minute: int, *, redis_url: str | None = None) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        uri = "memory://" if redis_url is None else redis_url
        if uri.startswith("unix://"):  # redis-py's socket URL; `limits` names the same thing redis+unix://
            uri = "redis+unix://" + uri.removeprefix("unix://")
        options = {} if redis_url is None else {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        self.storage = storage.storage_from_string(uri, key_prefix="spe:api:rate", **options)
        self.window = strategies.MovingWindowRateLimiter(self.storage)

    def check(self, caller: str) -> None:
        """Count one request of ``caller``.

        Raises
        ------
        TooManyRequestsError
            The caller already made ``per_minute`` requests in the last minute; ``retry_after`` says when to retry.
        """
        try:
            allowed = self.window.hit(self.item, caller)
            if allowed:
                return
            reset = self.window.get_window_stats(self.item, caller).reset_time
        except Exception as exc:
            logger.warning("rate limiter unavailable; request let through", extra={"error": str(exc)})
            return
        retry_after = max(1, math.ceil(reset - time.time()))
        raise TooManyRequestsError(
            f"{caller} made {self.item.amount} requests in the last minute, the limit.", retry_after=retry_after
        )
