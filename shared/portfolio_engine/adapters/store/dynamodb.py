"""The store of record in one DynamoDB table, through pynamodb: what the engine uses on AWS.

Single-table layout (``pk``, ``sk``)::

    stream#<stream>   #head                 the stream's version (the append condition)
    stream#<stream>   event#<version>       one event (type, run id, time, data as JSON)
    view#<kind>#<key> #view                 a read model (document as JSON), listed through two GSIs:
                                            by_kind (g_kind, g_sort) and by_owner (g_owner, g_sort)
    alert#<key>       #alert                alert de-duplication (rank, sent_at)

An append is one ``TransactWriteItems``: the head updated on condition that its version is the expected one,
the events put on condition that they do not exist, the views put (a run id or idempotency key on condition
that it does not exist). A cancelled transaction writes nothing and is mapped to ``ConcurrencyError`` (the
head moved, or another transaction held an item) or ``DuplicateError``. The endpoint comes from the settings
(``AWS_ENDPOINT_URL`` for moto's server or LocalStack), never from code. Listings read the GSIs, which
DynamoDB updates eventually (within a second); single reads are strongly consistent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, PynamoDBException, TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from portfolio_engine.adapters.store._common import (
    Clock,
    decode_cursor,
    dumps,
    encode_cursor,
    event_from_row,
    merged_writes,
    prepare_appends,
    utcnow,
)
from portfolio_engine.exceptions import ConcurrencyError, DuplicateError, InvalidCursorError, StoreError
from portfolio_engine.ports import Page, StreamAppend
from portfolio_engine.records.events import Event, NewEvent
from portfolio_engine.records.views import ViewKey

__all__ = ["DynamoStore", "store_item_model"]

_HEAD, _VIEW, _ALERT = "#head", "#view", "#alert"


def store_item_model(table: str, *, region: str, host: str | None) -> Any:
    """A pynamodb model class bound to ``table`` (pynamodb reads ``Meta`` once, when the class is made)."""

    class ByKind(GlobalSecondaryIndex[Any]):
        class Meta:
            index_name = "by_kind"
            projection = AllProjection()

        g_kind = UnicodeAttribute(hash_key=True)
        g_sort = UnicodeAttribute(range_key=True)

    class ByOwner(GlobalSecondaryIndex[Any]):
        class Meta:
            index_name = "by_owner"
            projection = AllProjection()

        g_owner = UnicodeAttribute(hash_key=True)
        g_sort = UnicodeAttribute(range_key=True)

    class StoreItem(Model):
        class Meta:
            table_name = table
            billing_mode = "PAY_PER_REQUEST"

        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        version = NumberAttribute(null=True)
        type = UnicodeAttribute(null=True)
        run_id = UnicodeAttribute(null=True)
        recorded_at = UnicodeAttribute(null=True)
        data = UnicodeAttribute(null=True)
        g_kind = UnicodeAttribute(null=True)
        g_owner = UnicodeAttribute(null=True)
        g_sort = UnicodeAttribute(null=True)
        rank = NumberAttribute(null=True)
        sent_at = UnicodeAttribute(null=True)
        by_kind = ByKind()
        by_owner = ByOwner()

    StoreItem.Meta.region = region  # type: ignore[attr-defined]
    StoreItem.Meta.host = host  # type: ignore[attr-defined]
    return StoreItem


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class DynamoStore:
    """The :class:`~portfolio_engine.ports.Store` port over a DynamoDB table.

    Parameters
    ----------
    table : str
        The table's name (created by the CDK stack; :meth:`create_table` for moto and LocalStack).
    region : str
    endpoint_url : str, optional
        moto's server or LocalStack; None for AWS (botocore then also honours ``AWS_ENDPOINT_URL``).
    clock : callable, optional
        Returns the time events are recorded at.
    """

    def __init__(
        self, table: str, *, region: str = "us-east-1", endpoint_url: str | None = None, clock: Clock = utcnow
    ) -> None:
        self.table = table
        self.uri = f"dynamodb://{table}"
        self.clock = clock
        self.item = store_item_model(table, region=region, host=endpoint_url)
        self.connection = Connection(region=region, host=endpoint_url)

    def create_table(self) -> None:
        """Create the table and its indexes if missing (moto, LocalStack; on AWS the CDK stack owns it)."""
        try:
            if not self.item.exists():
                self.item.create_table(wait=True)
        except PynamoDBException as exc:
            raise StoreError(f"Cannot create the store table {self.table}: {exc}") from exc

    # ------------------------------------------------------------------ event log
    def _get(self, pk: str, sk: str) -> Any | None:
        try:
            return self.item.get(pk, sk, consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise StoreError(f"Cannot read the store table {self.table}: {exc}") from exc

    def append(self, stream: str, events: Sequence[NewEvent], *, expected_version: int) -> list[Event]:
        return self.append_all([StreamAppend(stream, events, expected_version)])[0]

    def append_all(self, appends: Sequence[StreamAppend]) -> list[list[Event]]:
        for append in appends:
            current = self.stream_version(append.stream)
            if current != append.expected_version:
                raise ConcurrencyError(
                    f"{append.stream} is at version {current}, not {append.expected_version}: another writer appended."
                )

        def load(keys: list[ViewKey]) -> dict[ViewKey, dict[str, Any] | None]:
            return {key: self.view(*key) for key in keys}

        prepared = prepare_appends(appends, self.clock(), load)
        item = self.item
        # The same commit retried (a Lambda retry after a lost response) is answered idempotently for 10 minutes.
        token = hashlib.sha256(
            dumps(
                [[a.stream, a.expected_version, [e.model_dump(mode="json") for e in a.events]] for a in appends]
            ).encode()
        ).hexdigest()[:36]
        labels: list[str] = []  # what each transaction item is, to name the one whose condition failed
        try:
            with TransactWrite(connection=self.connection, client_request_token=token) as transaction:
                for append, stored, _ in prepared:
                    head = item(f"stream#{append.stream}", _HEAD, version=stored[-1].version)
                    if append.expected_version == 0:
                        transaction.save(head, condition=item.pk.does_not_exist())
                    else:
                        transaction.save(head, condition=item.version == append.expected_version)
                    labels.append(f"head {append.stream}")
                    for event in stored:
                        transaction.save(
                            item(
                                f"stream#{append.stream}",
                                f"event#{event.version:012d}",
                                version=event.version,
                                type=event.type,
                                run_id=event.run_id,
                                recorded_at=_utc(event.recorded_at),
                                data=dumps(event.data),
                            ),
                            condition=item.pk.does_not_exist(),
                        )
                        labels.append(f"event {append.stream}")
                for write in merged_writes(prepared):
                    view = item(
                        f"view#{write.kind}#{write.key}",
                        _VIEW,
                        data=dumps(write.document),
                        g_kind=write.kind,
                        g_owner=None if write.owner is None else f"{write.kind}#{write.owner}",
                        g_sort=f"{write.sort or ''}|{write.key}",
                    )
                    if write.create_only:
                        transaction.save(view, condition=item.pk.does_not_exist())
                        labels.append(f"unique {write.kind} {write.key!r}")
                    else:
                        transaction.save(view)
                        labels.append(f"view {write.kind}")
        except TransactWriteError as exc:
            reasons = [getattr(r, "code", None) if r is not None else None for r in (exc.cancellation_reasons or [])]
            failed = [
                labels[i] for i, code in enumerate(reasons) if code == "ConditionalCheckFailed" and i < len(labels)
            ]
            duplicates = [f.removeprefix("unique ") for f in failed if f.startswith("unique ")]
            if duplicates:
                raise DuplicateError(f"A {duplicates[0]} already exists.") from exc
            if failed or "TransactionConflict" in reasons:
                streams = ", ".join(a.stream for a in appends)
                raise ConcurrencyError(f"{streams} moved past the versions read: another writer appended.") from exc
            raise StoreError(f"Cannot write the store table {self.table}: {exc}") from exc
        except PynamoDBException as exc:
            raise StoreError(f"Cannot write the store table {self.table}: {exc}") from exc
        return [stored for _, stored, _ in prepared]

    def events(self, stream: str, *, after: int = 0) -> list[Event]:
        try:
            rows = self.item.query(
                f"stream#{stream}",
                self.item.sk.between(f"event#{after + 1:012d}", "event#999999999999"),
                consistent_read=True,
            )
            return [event_from_row(stream, int(r.version), r.type, r.run_id, r.recorded_at, r.data) for r in rows]
        except PynamoDBException as exc:
            raise StoreError(f"Cannot read the store table {self.table}: {exc}") from exc

    def stream_version(self, stream: str) -> int:
        head = self._get(f"stream#{stream}", _HEAD)
        return int(head.version) if head is not None else 0

    # ------------------------------------------------------------------ read models
    def view(self, kind: str, key: str) -> dict[str, Any] | None:
        found = self._get(f"view#{kind}#{key}", _VIEW)
        return None if found is None else dict(json.loads(found.data))

    def views(
        self,
        kind: str,
        *,
        owner: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        descending: bool = False,
    ) -> Page:
        if limit < 1:
            raise StoreError(f"limit must be >= 1; got {limit}.")
        index = self.item.by_kind if owner is None else self.item.by_owner
        hash_key = kind if owner is None else f"{kind}#{owner}"
        index_key = "g_kind" if owner is None else "g_owner"
        start = decode_cursor(cursor, ("pk", "sk", "g_sort", index_key)) if cursor is not None else None
        if start is not None and start[index_key] != {"S": hash_key}:  # a cursor of another listing
            raise InvalidCursorError(f"The cursor {str(cursor)[:40]!r} belongs to another listing.")
        try:
            rows = list(
                index.query(hash_key, scan_index_forward=not descending, limit=limit + 1, last_evaluated_key=start)
            )
        except PynamoDBException as exc:
            raise StoreError(f"Cannot read the store table {self.table}: {exc}") from exc
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more:
            last = rows[-1]
            position = {"pk": {"S": last.pk}, "sk": {"S": last.sk}, "g_sort": {"S": last.g_sort}}
            position[index_key] = {"S": hash_key}
            next_cursor = encode_cursor(position)
        return Page([dict(json.loads(r.data)) for r in rows], next_cursor)

    # ------------------------------------------------------------------ alert de-duplication
    def claim(self, key: str, *, rank: int, now: datetime, cooldown: timedelta) -> bool:
        item = self.item
        condition = item.pk.does_not_exist() | (item.rank < rank) | (item.sent_at <= _utc(now - cooldown))
        try:
            item(f"alert#{key}", _ALERT, rank=rank, sent_at=_utc(now)).save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise StoreError(f"Cannot write the store table {self.table}: {exc}") from exc
        return True

    def release(self, key: str, *, sent_at: datetime) -> None:
        item = self.item
        try:
            item(f"alert#{key}", _ALERT).delete(condition=item.sent_at == _utc(sent_at))
        except DeleteError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise StoreError(f"Cannot write the store table {self.table}: {exc}") from exc
