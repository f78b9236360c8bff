"""What both store adapters share: preparing an append (versions, projections), cursors, the clock."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from portfolio_engine.exceptions import InvalidCursorError, StoreError
from portfolio_engine.ports import StreamAppend
from portfolio_engine.records.events import Event, check_stream
from portfolio_engine.records.views import ViewKey, ViewWrite, project, view_keys

Clock = Callable[[], datetime]
#: DynamoDB's TransactWriteItems takes at most 100 items; an append stays under it on both backends.
MAX_ITEMS_PER_APPEND = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def prepare_appends(
    appends: Sequence[StreamAppend],
    now: datetime,
    load: Callable[[list[ViewKey]], dict[ViewKey, dict[str, Any] | None]],
) -> list[tuple[StreamAppend, list[Event], list[ViewWrite]]]:
    """Each append's events as stored (numbered after its expected version) and the view writes they produce.

    The appends are projected in order over the same views, so a run's view touched by two streams' events in
    one commit sees both.

    Raises
    ------
    StoreError
        No events, a stream twice, a bad stream id or expected version, or more items than one transaction holds.
    InvalidTransitionError
        From the projection: an event that cannot follow the current state.
    """
    streams = [a.stream for a in appends]
    if not appends or len(set(streams)) != len(streams):
        raise StoreError(f"Each append names one stream once; got {streams}.", hint="Merge the events per stream.")
    keys: list[ViewKey] = []
    for append in appends:
        try:
            check_stream(append.stream)
        except ValueError as exc:
            raise StoreError(str(exc), hint="Name streams with portfolio_stream() or model_stream().") from exc
        if not append.events:
            raise StoreError(f"Nothing to append to {append.stream}.", hint="Pass at least one event.")
        if append.expected_version < 0:
            raise StoreError(f"expected_version must be >= 0; got {append.expected_version}.")
        keys += [k for k in view_keys(append.stream, append.events) if k not in keys]
    views = load(keys)
    prepared = []
    items = 0
    for append in appends:
        stored = [
            Event(stream=append.stream, version=append.expected_version + i + 1, recorded_at=now, **e.model_dump())
            for i, e in enumerate(append.events)
        ]
        writes = project(append.stream, stored, views)
        views.update({(w.kind, w.key): w.document for w in writes})
        prepared.append((append, stored, writes))
        items += len(stored) + len(writes) + 1
    if items > MAX_ITEMS_PER_APPEND:
        raise StoreError(
            f"An append of {items} items (events, views, stream heads) exceeds one transaction "
            f"({MAX_ITEMS_PER_APPEND} items).",
            hint="Append fewer events at a time (alerts of one run are summarised in one event each).",
        )
    return prepared


def merged_writes(prepared: Sequence[tuple[StreamAppend, list[Event], list[ViewWrite]]]) -> list[ViewWrite]:
    """The views to write, once each (a transaction may not touch an item twice): the last document wins."""
    merged: dict[ViewKey, ViewWrite] = {}
    for _, _, writes in prepared:
        for write in writes:
            key = (write.kind, write.key)
            earlier = merged.get(key)
            if earlier is not None and earlier.create_only:
                write = ViewWrite(write.kind, write.key, write.document, write.owner, write.sort, create_only=True)
            merged[key] = write
    return list(merged.values())


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor for the next page."""
    return base64.urlsafe_b64encode(json.dumps(position, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str, required: Collection[str] = ()) -> dict[str, Any]:
    """The position a cursor encodes, with the ``required`` fields.

    Raises
    ------
    InvalidCursorError
        If the cursor was not made by :func:`encode_cursor` (a client edited or truncated it) or lacks a field.
    """
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError(f"Invalid cursor {cursor[:40]!r}.") from exc
    if not isinstance(position, dict) or any(field not in position for field in required):
        raise InvalidCursorError(f"Invalid cursor {cursor[:40]!r}.")
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
    """JSON text of a document, its keys in their order (a spec's groups order its constraints).

    Floats round-trip exactly (Python writes their shortest repr); NaN and infinity are refused.
    """
    return json.dumps(document, separators=(",", ":"), allow_nan=False)
