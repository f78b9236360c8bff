"""De-duplication state of alerts (:class:`~portfolio_engine.ports.AlertStateStore`): in memory or in the lake.

Per ``portfolio/limit`` key a store remembers the rank and time of the last alert sent. ``claim`` records a
send unless one of the same or a higher rank was recorded within the cool-down; ``release`` forgets a claim
whose delivery failed. A DynamoDB table keyed on the ``portfolio/limit`` key would implement the same port
atomically for many writers: ``claim`` as one ``PutItem`` with ``ConditionExpression="attribute_not_exists(pk)
OR sent_at < :cutoff OR #rank < :rank"``, ``release`` as a ``DeleteItem`` conditioned on ``sent_at``.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from portfolio_engine.ports import Lake

__all__ = ["LakeAlertStateStore", "MemoryAlertStateStore", "claim_allowed"]


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


class LakeAlertStateStore:
    """De-duplication state as one JSON document in the lake (``alerts/state.json`` by default).

    Read-modify-write under an in-process lock: right for one writer at a time (a scheduled run, the local
    runner). Concurrent writers need an atomic conditional write (DynamoDB; see the module docstring).
    """

    def __init__(self, lake: Lake, key: str = "alerts/state.json") -> None:
        self.lake = lake
        self.key = key
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        return dict(self.lake.get_json(self.key)) if self.lake.exists(self.key) else {}

    def claim(self, key: str, *, rank: int, now: datetime, cooldown: timedelta) -> bool:
        with self._lock:
            state = self._read()
            if not claim_allowed(state.get(key), rank=rank, now=now, cooldown=cooldown):
                return False
            state[key] = {"rank": rank, "sent_at": now.isoformat()}
            self.lake.put_json(self.key, state)
            return True

    def release(self, key: str, *, sent_at: datetime) -> None:
        with self._lock:
            state = self._read()
            if state.get(key, {}).get("sent_at") == sent_at.isoformat():
                del state[key]
                self.lake.put_json(self.key, state)
