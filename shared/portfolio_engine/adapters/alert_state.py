"""De-duplication state of alerts (:class:`~portfolio_engine.ports.AlertStateStore`) in memory, and the rule.

Per ``portfolio/limit`` key a store remembers the rank and time of the last alert sent. ``claim`` records a
send unless one of the same or a higher rank was recorded within the cool-down; ``release`` forgets a claim
whose delivery failed. :func:`claim_allowed` is that rule, shared by every store: the store of record
implements the port atomically for many writers (``adapters.store``: one ``BEGIN IMMEDIATE`` transaction on
SQLite, one conditional ``PutItem`` on DynamoDB) and is what the Alert step uses;
:class:`MemoryAlertStateStore` serves tests and one process.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

__all__ = ["MemoryAlertStateStore", "claim_allowed"]


def claim_allowed(record: dict[str, Any] | None, *, rank: int, now: datetime, cooldown: timedelta) -> bool:
    """Whether an alert of ``rank`` may be sent now, given the last one recorded for its key (or None)."""
    if record is None:
        return True
    return rank > int(record["rank"]) or now - datetime.fromisoformat(record["sent_at"]) >= cooldown


class MemoryAlertStateStore:
    """De-duplication state in this process (tests, a single long-running monitor)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, *, rank: int, now: datetime, cooldown: timedelta) -> bool:
        with self._lock:
            if not claim_allowed(self.records.get(key), rank=rank, now=now, cooldown=cooldown):
                return False
            self.records[key] = {"rank": rank, "sent_at": now.isoformat()}
            return True

    def release(self, key: str, *, sent_at: datetime) -> None:
        with self._lock:
            if self.records.get(key, {}).get("sent_at") == sent_at.isoformat():
                del self.records[key]
