"""Start a state machine run for a client, at most once per idempotency key.

The run id of a keyed request is derived from what it is about and the key (``<subject>-api-<hash>``), so the
same key always names the same execution: Step Functions (and the local launcher) start an execution name
once. A key used again with another request is a conflict, not a second run (as Stripe's API does it).
Keys are the client's own per subject: the same key for two portfolios starts two runs.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from portfolio_engine.exceptions import DuplicateError
from portfolio_engine.ports import RunLauncher, Store

__all__ = ["KEY_PATTERN", "Launched", "launch_run", "run_id_for"]

#: What a client's Idempotency-Key may be (scoped by the subject, it must fit the run request's 128 characters).
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,78}$"


@dataclass(frozen=True)
class Launched:
    """The run a request started (or had started): its id, status and whether it was a replay."""

    run_id: str
    machine: str
    status: str
    replayed: bool


def run_id_for(subject: str, idempotency_key: str | None) -> str:
    """The run id of a request about ``subject``: derived from the key, or new when there is none."""
    prefix = subject[:48].rstrip("-_.")
    if idempotency_key is None:
        return f"{prefix}-api-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    digest = hashlib.sha256(f"{subject}\n{idempotency_key}".encode()).hexdigest()[:24]
    return f"{prefix}-api-{digest}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _differs(recorded: dict[str, Any], sent: dict[str, Any]) -> list[str]:
    """Fields the client sent that the recorded run's request has otherwise (the run fills in the rest)."""
    return [k for k, v in sent.items() if v is not None and _canonical(recorded.get(k)) != _canonical(v)]


def launch_run(
    store: Store,
    launcher: RunLauncher,
    *,
    machine: str,
    subject: str,
    request: dict[str, Any],
    idempotency_key: str | None,
) -> Launched:
    """Start ``machine`` on ``request`` unless the key already started it; return the run.

    Raises
    ------
    DuplicateError
        The key started a run with a different request.
    """
    run_id = run_id_for(subject, idempotency_key)
    # The store keeps idempotency keys unique across everything: a client's key is scoped to the subject by the
    # run id's digest of both (a prefix of the subject would let two long names that share it collide).
    scoped = None if idempotency_key is None else f"{run_id.rsplit('-', 1)[1]}:{idempotency_key}"
    request = {**request, "trigger": "api", "idempotency_key": scoped}
    recorded = store.view("run", run_id)
    if recorded is not None:
        changed = _differs(recorded.get("request") or {}, {k: v for k, v in request.items() if k != "trigger"})
        if changed or recorded.get("machine") != machine:
            raise DuplicateError(
                f"Idempotency-Key {idempotency_key!r} started run {run_id} with another request (it differs in "
                f"{changed or ['machine']}).",
                hint="Use a new key for a new request, or send the same request to read the same run.",
            )
        return Launched(run_id, machine, str(recorded["status"]), replayed=True)
    known = launcher.status(machine, run_id)
    try:
        launcher.start(machine, run_id, request)
    except DuplicateError as exc:
        raise DuplicateError(
            f"Idempotency-Key {idempotency_key!r} started run {run_id} with another request.",
            hint="Use a new key for a new request, or send the same request to read the same run.",
        ) from exc
    return Launched(run_id, machine, known[0] if known else "QUEUED", replayed=known is not None)
