"""The store of record in one SQLite file (stdlib ``sqlite3``): the embedded default under the data directory.

Tables: ``streams`` (each stream's version), ``events`` (the append-only log, keyed by stream and
version), ``views`` (read models with a listing index), ``alert_state`` (alert de-duplication). An append
is one ``BEGIN IMMEDIATE`` transaction: SQLite admits one writer at a time, the stream's version is checked
inside it, and either every event and view is written or none is. WAL mode lets readers (``spe runs list``,
the API) read while a run commits. Each call opens its own connection, so threads (a Map's iterations)
and processes share the file safely.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from portfolio_engine.adapters.alert_state import claim_allowed
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
from portfolio_engine.exceptions import ConcurrencyError, DuplicateError, StoreError
from portfolio_engine.ports import Page, StreamAppend
from portfolio_engine.records.events import Event, NewEvent
from portfolio_engine.records.views import ViewKey

__all__ = ["SqliteStore"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (stream TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    stream TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, run_id TEXT,
    recorded_at TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (stream, version)
);
CREATE TABLE IF NOT EXISTS views (
    kind TEXT NOT NULL, key TEXT NOT NULL, owner TEXT, sort TEXT, document TEXT NOT NULL, PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS views_by_kind ON views (kind, sort, key);
CREATE INDEX IF NOT EXISTS views_by_owner ON views (kind, owner, sort, key);
CREATE TABLE IF NOT EXISTS alert_state (key TEXT PRIMARY KEY, rank INTEGER NOT NULL, sent_at TEXT NOT NULL);
"""


class SqliteStore:
    """The :class:`~portfolio_engine.ports.Store` port over a SQLite file.

    Parameters
    ----------
    path : Path
        The database file; its folder is created. ``:memory:`` is refused (each call opens a connection).
    clock : callable, optional
        Returns the time events are recorded at (tests pass a fixed clock).
    timeout : float
        Seconds a writer waits for another writer's transaction before failing with ``StoreError``.
    """

    def __init__(self, path: Path | str, *, clock: Clock = utcnow, timeout: float = 30.0) -> None:
        self.path = Path(path)
        if str(path) == ":memory:":
            raise StoreError("An in-memory SQLite store would vanish between calls.", hint="Give a file path.")
        self.uri = f"sqlite:///{self.path}"
        self.clock = clock
        self.timeout = timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                (version,) = db.execute("PRAGMA user_version").fetchone()
                if version > _SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} was written by a newer engine (schema {version} > {_SCHEMA_VERSION}).",
                        hint="Upgrade the engine, or point SPE_STORE_URI at another file.",
                    )
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the store {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._connect() as db:
                yield db
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot read the store {self.path}: {exc}") from exc

    # ------------------------------------------------------------------ event log
    def append(self, stream: str, events: Sequence[NewEvent], *, expected_version: int) -> list[Event]:
        return self.append_all([StreamAppend(stream, events, expected_version)])[0]

    def append_all(self, appends: Sequence[StreamAppend]) -> list[list[Event]]:
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    stored = self._append(db, appends)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return stored
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot write the store {self.path}: {exc}") from exc

    def _append(self, db: sqlite3.Connection, appends: Sequence[StreamAppend]) -> list[list[Event]]:
        for append in appends:
            row = db.execute("SELECT version FROM streams WHERE stream = ?", (append.stream,)).fetchone()
            current = row[0] if row else 0
            if current != append.expected_version:
                raise ConcurrencyError(
                    f"{append.stream} is at version {current}, not {append.expected_version}: another writer appended."
                )

        def load(keys: list[ViewKey]) -> dict[ViewKey, dict[str, Any] | None]:
            return {key: self._view(db, *key) for key in keys}

        prepared = prepare_appends(appends, self.clock(), load)
        for append, stored, _ in prepared:
            db.execute(
                "INSERT INTO streams (stream, version) VALUES (?, ?) ON CONFLICT (stream) DO UPDATE SET version = ?",
                (append.stream, stored[-1].version, stored[-1].version),
            )
            db.executemany(
                "INSERT INTO events (stream, version, type, run_id, recorded_at, data) VALUES (?, ?, ?, ?, ?, ?)",
                [(e.stream, e.version, e.type, e.run_id, e.recorded_at.isoformat(), dumps(e.data)) for e in stored],
            )
        for write in merged_writes(prepared):
            values = (write.kind, write.key, write.owner, write.sort, dumps(write.document))
            if write.create_only:
                try:
                    db.execute("INSERT INTO views (kind, key, owner, sort, document) VALUES (?, ?, ?, ?, ?)", values)
                except sqlite3.IntegrityError as exc:
                    raise DuplicateError(f"A {write.kind} {write.key!r} already exists.") from exc
            else:
                db.execute(
                    "INSERT OR REPLACE INTO views (kind, key, owner, sort, document) VALUES (?, ?, ?, ?, ?)", values
                )
        return [stored for _, stored, _ in prepared]

    def events(self, stream: str, *, after: int = 0) -> list[Event]:
        with self._read() as db:
            rows = db.execute(
                "SELECT stream, version, type, run_id, recorded_at, data FROM events"
                " WHERE stream = ? AND version > ? ORDER BY version",
                (stream, after),
            ).fetchall()
        return [event_from_row(*row) for row in rows]

    def stream_version(self, stream: str) -> int:
        with self._read() as db:
            row = db.execute("SELECT version FROM streams WHERE stream = ?", (stream,)).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ read models
    @staticmethod
    def _view(db: sqlite3.Connection, kind: str, key: str) -> dict[str, Any] | None:
        row = db.execute("SELECT document FROM views WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def view(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._read() as db:
            return self._view(db, kind, key)

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
        where, params = ["kind = ?"], [kind]
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if cursor is not None:
            position = decode_cursor(cursor, ("sort", "key"))
            where.append(f"(COALESCE(sort, ''), key) {'<' if descending else '>'} (?, ?)")
            params += [str(position.get("sort", "")), str(position.get("key", ""))]
        order = "DESC" if descending else "ASC"
        sql = (
            f"SELECT key, COALESCE(sort, ''), document FROM views WHERE {' AND '.join(where)}"
            f" ORDER BY COALESCE(sort, '') {order}, key {order} LIMIT ?"
        )
        with self._read() as db:
            rows = db.execute(sql, [*params, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor({"sort": rows[-1][1], "key": rows[-1][0]}) if more else None
        return Page([dict(json.loads(document)) for _, _, document in rows], next_cursor)

    # ------------------------------------------------------------------ alert de-duplication
    def claim(self, key: str, *, rank: int, now: datetime, cooldown: timedelta) -> bool:
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute("SELECT rank, sent_at FROM alert_state WHERE key = ?", (key,)).fetchone()
                record = None if row is None else {"rank": row[0], "sent_at": row[1]}
                if not claim_allowed(record, rank=rank, now=now, cooldown=cooldown):
                    db.execute("ROLLBACK")
                    return False
                db.execute(
                    "INSERT OR REPLACE INTO alert_state (key, rank, sent_at) VALUES (?, ?, ?)",
                    (key, rank, now.isoformat()),
                )
                db.execute("COMMIT")
                return True
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot write the store {self.path}: {exc}") from exc

    def release(self, key: str, *, sent_at: datetime) -> None:
        try:
            with self._connect() as db:
                db.execute("DELETE FROM alert_state WHERE key = ? AND sent_at = ?", (key, sent_at.isoformat()))
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot write the store {self.path}: {exc}") from exc
