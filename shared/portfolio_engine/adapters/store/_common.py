"""What both store adapters share: preparing an append (versions, projections), cursors, the clock."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from portfolio_engine.exceptions import StoreError
from portfolio_engine.records.events import Event, NewEvent, check_stream
from portfolio_engine.records.views import ViewKey, ViewWrite, project, view_keys

Clock = Callable[[], datetime]
#: DynamoDB's TransactWriteItems takes at most 100 items; an append stays under it on both backends.
MAX_ITEMS_PER_APPEND = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def prepare_append(
    stream: str,
    events: Sequence[NewEvent],
    expected_version: int,
    now: datetime,
    load: Callable[[list[ViewKey]], dict[ViewKey, dict[str, Any] | None]],
) -> tuple[list[Event], list[ViewWrite]]:
    """The events as stored (numbered after ``expected_version``) and the view writes they produce.

    Raises
    ------
    StoreError
        No events, a bad stream id or expected version, or more items than one transaction holds.
    InvalidTransitionError
        From the projection: an event that cannot follow the current state.
    """
    try:
        check_stream(stream)
    except ValueError as exc:
        raise StoreError(str(exc), hint="Name streams with portfolio_stream() or model_stream().") from exc
    if not events:
        raise StoreError(f"Nothing to append to {stream}.", hint="Pass at least one event.")
    if expected_version < 0:
        raise StoreError(f"expected_version must be >= 0; got {expected_version}.")
    stored = [
        Event(stream=stream, version=expected_version + i + 1, recorded_at=now, **event.model_dump())
        for i, event in enumerate(events)
    ]
    writes = project(stream, stored, load(view_keys(stream, events)))
    if len(stored) + len(writes) + 1 > MAX_ITEMS_PER_APPEND:
        raise StoreError(
            f"An append of {len(stored)} events and {len(writes)} views exceeds one transaction "
            f"({MAX_ITEMS_PER_APPEND} items).",
            hint="Append fewer events at a time (alerts of one run are summarised in one event each).",
        )
    return stored, writes


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor for the next page."""
    return base64.urlsafe_b64encode(json.dumps(position, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The position a cursor encodes.

    Raises
    ------
    StoreError
        If the cursor was not made by :func:`encode_cursor` (a client edited or truncated it).
    """
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"Invalid cursor {cursor[:40]!r}.", hint="Pass back the cursor of the previous page.") from exc
    if not isinstance(position, dict):
        raise StoreError(f"Invalid cursor {cursor[:40]!r}.", hint="Pass back the cursor of the previous page.")
    return position


def event_from_row(stream: str, version: int, kind: str, run_id: str | None, at: str, data: str) -> Event:
    return Event(
        stream=stream,
        version=version,
        type=kind,
        run_id=run_id,
        recorded_at=datetime.fromisoformat(at),
        data=json.loads(data),
    )


def dumps(document: Any) -> str:
    """JSON text of a document (floats round-trip exactly: Python writes their shortest repr)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True, allow_nan=False)
