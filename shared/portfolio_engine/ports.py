"""Ports: the interfaces use cases depend on, and the values they exchange.

Adapters in ``portfolio_engine.adapters`` implement them; use cases receive them as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # names in annotations only: the API and the Slack notifier import this module without pandas
    import pandas as pd

Zone = Literal["raw", "curated"]


@dataclass(frozen=True)
class UpsertResult:
    """What one write of bars changed in the lake.

    ``rows_superseded`` counts the earlier versions a raw write kept as history (its updated and
    deleted rows); the curated zone keeps none.
    """

    rows_new: int
    rows_updated: int
    rows_unchanged: int
    partitions_written: int
    rows_deleted: int = 0
    rows_superseded: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "rows_new": self.rows_new,
            "rows_updated": self.rows_updated,
            "rows_unchanged": self.rows_unchanged,
            "rows_deleted": self.rows_deleted,
            "rows_superseded": self.rows_superseded,
            "partitions_written": self.partitions_written,
        }


@dataclass(frozen=True, order=True)
class Coverage:
    """What the lake holds of one symbol."""

    symbol: str
    first_date: date
    last_date: date
    rows: int

    def to_dict(self) -> dict[str, str | int]:
        return {
            "symbol": self.symbol,
            "first_date": str(self.first_date),
            "last_date": str(self.last_date),
            "rows": self.rows,
        }


def describe(coverage: Sequence[Coverage]) -> dict[str, Any]:
    """Summary of several symbols' coverage: symbols, overall date range, total rows, and each symbol."""
    return {
        "symbols": [c.symbol for c in coverage],
        "n_symbols": len(coverage),
        "first_date": str(min(c.first_date for c in coverage)) if coverage else None,
        "last_date": str(max(c.last_date for c in coverage)) if coverage else None,
        "rows": sum(c.rows for c in coverage),
        "per_symbol": [c.to_dict() for c in coverage],
    }


@runtime_checkable
class MarketDataSource(Protocol):
    """A source of bars in the canonical schema (``portfolio_engine.data.schema``).

    A source may set ``incremental = False`` when it holds its whole history at no cost (a user
    file): ingest then reads all of it instead of only what the lake lacks.
    """

    name: str

    def fetch(
        self,
        symbols: Sequence[str],
        start: date | None = None,
        end: date | None = None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Return bars for ``symbols`` between ``start`` and ``end`` inclusive (None: as far as known).

        Raises
        ------
        UnknownSymbolError, EmptyDataError, DataSourceError (and subclasses)
        """
        ...


@runtime_checkable
class ResponseCache(Protocol):
    """A byte cache with expiry, shared by the network sources (Redis or in-process)."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...


class Lake(Protocol):
    """The data lake: bars by zone, feature sets, reference tables and JSON documents."""

    uri: str

    def inventory(self, source: str, *, zone: Zone = "curated", interval: str = "1d") -> list[Coverage]: ...

    def read_bars(
        self,
        source: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        *,
        zone: Zone = "curated",
        interval: str = "1d",
    ) -> pd.DataFrame: ...

    def write_bars(
        self,
        bars: pd.DataFrame,
        source: str,
        *,
        zone: Zone,
        interval: str = "1d",
        replace: Collection[str] = (),
        ingest_id: str | None = None,
    ) -> UpsertResult:
        """Upsert bars; in the raw zone, keep the earlier version of every value changed or deleted."""
        ...

    def raw_history(
        self,
        source: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        *,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Every stored version of the matching raw bars, with who wrote and who superseded each."""
        ...

    def write_quarantine(self, rows: pd.DataFrame, source: str, *, ingest_id: str, interval: str = "1d") -> str:
        """Keep rows an ingest refused to store; returns their key."""
        ...

    def write_features(self, features: pd.DataFrame, key: str, manifest: dict[str, Any]) -> str: ...

    def feature_manifest(self, key: str) -> dict[str, Any] | None: ...

    def read_features(
        self,
        key: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        columns: Iterable[str] | None = None,
    ) -> pd.DataFrame: ...

    def feature_sets(self) -> list[str]: ...

    def exists(self, key: str) -> bool: ...

    def write_reference(self, name: str, frame: pd.DataFrame) -> str: ...

    def read_reference(self, name: str) -> pd.DataFrame: ...

    def put_json(self, key: str, document: Any) -> str: ...

    def get_json(self, key: str) -> Any: ...

    def put_bytes(self, key: str, payload: bytes) -> str: ...

    def get_bytes(self, key: str) -> bytes: ...

    def key_uri(self, key: str) -> str: ...


ReferenceLoaders = dict[str, Callable[[], "pd.DataFrame"]]

if TYPE_CHECKING:
    from portfolio_engine.records.views import ChampionView


class ModelRegistry(Protocol):
    """Versioned model artefacts and, per model name, the champion (champion-challenger).

    Artefacts are files; the champion and the decisions are events in the store, appended by the commit.
    """

    def save(self, name: str, version: str, files: Mapping[str, bytes], metadata: dict[str, Any]) -> str: ...

    def read_file(self, name: str, version: str, filename: str) -> bytes: ...

    def metadata(self, name: str, version: str) -> dict[str, Any]: ...

    def champion(self, name: str) -> str | None: ...

    def champion_view(self, name: str) -> ChampionView | None:
        """The champion, whether it is pinned, and the model stream's version (for a conditional promotion)."""
        ...

    def stream(self, name: str) -> str:
        """The model's stream in the store of record."""
        ...

    def history(self, name: str) -> list[dict[str, Any]]: ...


class TrainingJobs(Protocol):
    """Runs a training script the way SageMaker does (channels in, model directory out)."""

    def run(
        self, job_name: str, hyperparameters: Mapping[str, str], channels: Mapping[str, Mapping[str, bytes]]
    ) -> dict[str, bytes]: ...


# Alerts --------------------------------------------------------------------------------------------
# (Appended with their own imports; they only name types, so nothing is imported at run time.)
if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from portfolio_engine.risk.alerts import Alert


@runtime_checkable
class Notifier(Protocol):
    """Delivers an alert to one channel (SNS, Slack, a local log); adapters in ``adapters.notifiers``."""

    name: str

    def send(self, alert: Alert) -> str:
        """Deliver ``alert`` and return a receipt (a message id, a file path).

        Raises
        ------
        NotificationError
            If the channel did not accept the alert.
        """
        ...


@runtime_checkable
class AlertStateStore(Protocol):
    """What alert de-duplication remembers: per ``portfolio/limit`` key, the rank and time of the last alert sent.

    ``claim`` must be atomic where several writers share the store (DynamoDB: one conditional ``PutItem``).
    """

    def claim(self, key: str, *, rank: int, now: datetime, cooldown: timedelta) -> bool:
        """Record a send of ``key`` at ``rank`` unless one of rank >= ``rank`` was recorded within ``cooldown``."""
        ...

    def release(self, key: str, *, sent_at: datetime) -> None:
        """Forget the claim made at ``sent_at`` (its delivery failed), so that the next alert is sent."""
        ...


# Store of record ------------------------------------------------------------------------------------
if TYPE_CHECKING:
    from portfolio_engine.records.events import Event, NewEvent


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first, and the cursor of the next page (None on the last one)."""

    items: list[dict[str, Any]]
    cursor: str | None


@dataclass(frozen=True)
class StreamAppend:
    """Events to append to one stream, and the version the writer read it at."""

    stream: str
    events: Sequence[NewEvent]
    expected_version: int


@runtime_checkable
class Store(Protocol):
    """The system of record: an append-only event log per stream, and the read models derived from it.

    Adapters: ``adapters.store.sqlite.SqliteStore`` (the embedded default) and
    ``adapters.store.dynamodb.DynamoStore`` (pynamodb). Both pass ``tests/unit/adapters/store``.
    """

    uri: str

    def append(self, stream: str, events: Sequence[NewEvent], *, expected_version: int) -> list[Event]:
        """Append ``events`` at versions ``expected_version + 1 ...`` and write their views, in one transaction.

        Raises
        ------
        ConcurrencyError
            The stream is not at ``expected_version`` (another writer appended): nothing is written.
        DuplicateError
            A run id or idempotency key the events create already exists: nothing is written.
        InvalidTransitionError
            An event cannot follow the current state: nothing is written.
        """
        ...

    def append_all(self, appends: Sequence[StreamAppend]) -> list[list[Event]]:
        """Several streams' appends in one transaction (a run's commit and the champion it promotes).

        Raises
        ------
        ConcurrencyError, DuplicateError, InvalidTransitionError
            As :meth:`append`, for any of the streams: nothing is written to any.
        """
        ...

    def events(self, stream: str, *, after: int = 0) -> list[Event]:
        """The stream's events with a version above ``after``, oldest first."""
        ...

    def stream_version(self, stream: str) -> int:
        """The version of the stream's last event (0 for a stream with none)."""
        ...

    def view(self, kind: str, key: str) -> dict[str, Any] | None:
        """A read model's document (``portfolio``, ``run``, ``champion``, ``idempotency``), or None."""
        ...

    def views(
        self,
        kind: str,
        *,
        owner: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        descending: bool = False,
    ) -> Page:
        """A kind's documents in listing order (runs: start time; others: key), of one stream with ``owner``."""
        ...

    def claim(self, key: str, *, rank: int, now: datetime, cooldown: timedelta) -> bool:
        """Alert de-duplication, atomically (see :class:`AlertStateStore`)."""
        ...

    def release(self, key: str, *, sent_at: datetime) -> None:
        """Forget an alert claim whose delivery failed (see :class:`AlertStateStore`)."""
        ...


LaunchStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]


class RunLauncher(Protocol):
    """Starts state machine executions for the API (long work is never done inside a request).

    Adapters: ``adapters.launchers.StepFunctionsLauncher`` (AWS) and ``LocalLauncher`` (a child process per run,
    one at a time, executing the same definitions with the local runner).
    """

    def start(self, machine: str, run_id: str, request: dict[str, Any]) -> None:
        """Start ``machine`` with ``request`` as the execution named ``run_id``; the same call again is a no-op.

        Raises
        ------
        DuplicateError
            An execution of that name exists with another input.
        ConfigurationError
            The machine is not deployed (no ARN configured).
        """
        ...

    def status(self, machine: str, run_id: str) -> tuple[LaunchStatus, str | None] | None:
        """The execution's status and failure cause as the launcher knows it, or None if it never started it.

        For the moment before a run's first task records it in the store (and a launch that failed before).
        """
        ...
