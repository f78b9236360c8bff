"""Read models of the system of record, derived from the event log (CQRS): pure, no I/O.

A store appends events and, in the same transaction, writes the views :func:`project` derives from them:

* ``portfolio/<name>``: the spec in force and its version, the holdings (moved only by a committed run or a
  reset), the latest committed result, the last run;
* ``run/<run id>``: one run of any state machine, from ``RunStarted`` to ``RunCommitted`` or ``RunFailed``;
* ``champion/<kind>/<name>``: a model's champion, whether it is pinned, and the champions before it;
* ``idempotency/<key>``: the run a client's idempotency key started;
* ``alert/<run id>:<version>``: one alert a run sent (or suppressed), listed by portfolio and time;
* ``apikey/<id>``: an API key's name, role and digest (never the key), and whether it is revoked.

Every view is owned by one stream (an idempotency key by the stream of the run it names), so the stream's
version condition serialises its writers; ``create_only`` writes (a run id, an idempotency key) are also
unique across streams. :func:`fold` rebuilds the views from the whole log, which is how a test proves the
stored views are derived, not maintained by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from portfolio_engine.exceptions import DuplicateError, InvalidTransitionError
from portfolio_engine.records.events import Event, NewEvent

__all__ = [
    "ChampionView",
    "Holdings",
    "PortfolioView",
    "RunView",
    "StepTiming",
    "ViewKey",
    "ViewKind",
    "ViewWrite",
    "fold",
    "project",
    "run_sort_key",
    "view_keys",
]

ViewKind = Literal["portfolio", "run", "champion", "idempotency", "alert", "apikey"]
ViewKey = tuple[str, str]
RunStatus = Literal["RUNNING", "SUCCEEDED", "FAILED"]


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Holdings(_View):
    """What a portfolio holds: weights as of a day, set by the run (or reset) at stream version ``version``."""

    weights: dict[str, float]
    as_of: str | None = Field(description="The last day of prices the weights are as of (ISO date).")
    regime: str | None = None
    run_id: str | None = None
    version: int = Field(description="The portfolio stream's version of the event that set them.")


class PortfolioView(_View):
    """A portfolio as of its stream's ``version``."""

    name: str
    status: Literal["active", "archived"] = "active"
    spec: dict[str, Any]
    spec_version: int
    spec_origin: str = Field(description="bundled, cli, api: where the spec in force came from.")
    created_at: datetime
    updated_at: datetime
    version: int
    holdings: Holdings | None = None
    latest: dict[str, Any] | None = Field(default=None, description="The last committed run's result.")
    last_run: dict[str, Any] | None = Field(default=None, description="run_id, status and time of the last run.")


class StepTiming(_View):
    """One state of an execution: when it ran, how long, and how it ended."""

    state: str
    status: Literal["succeeded", "failed", "running"]
    started_at: datetime | None = None
    ended_at: datetime | None = None
    seconds: float | None = None
    error: str | None = None
    attempts: int = 1


class RunView(_View):
    """One run of a state machine (or a CLI use case), as the log tells it."""

    run_id: str
    machine: str
    stream: str
    subject: str = Field(description="The portfolio, model or spec the run is about.")
    status: RunStatus = "RUNNING"
    trigger: str = "cli"
    idempotency_key: str | None = None
    scheduled_for: datetime | None = None
    started_at: datetime
    ended_at: datetime | None = None
    seconds: float | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepTiming] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict, description="What the run consumed (hashes, versions).")
    proposal: dict[str, Any] | None = Field(default=None, description="The target the run proposed.")
    result: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    cause: str | None = None
    failed_state: str | None = None


class ChampionView(_View):
    """A model's champion pointer: the version in force, pinned or not, and the champions before it."""

    model: str = Field(description="<kind>/<name>, e.g. regime/market.")
    champion: str | None = None
    pinned: bool = False
    lineage: list[str] = Field(default_factory=list, description="Champions in the order they took over.")
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class ViewWrite:
    """One view document to store with the events that produced it.

    ``owner`` and ``sort`` place it in a listing (runs of a stream, newest first); ``create_only`` makes
    the write fail if the key already exists, whichever stream wrote it (run ids, idempotency keys).
    """

    kind: ViewKind
    key: str
    document: dict[str, Any]
    owner: str | None = None
    sort: str | None = None
    create_only: bool = False


def run_sort_key(started_at: datetime, run_id: str) -> str:
    """Listing order of runs: start time, then run id (ISO times sort as strings)."""
    return f"{started_at.isoformat()}|{run_id}"


def _owner_key(stream: str) -> ViewKey | None:
    kind, _, rest = stream.partition("/")
    if kind == "portfolio":
        return ("portfolio", rest)
    if kind == "model":
        return ("champion", rest)
    if kind == "apikey":
        return ("apikey", rest)
    return None


def view_keys(stream: str, events: Iterable[NewEvent]) -> list[ViewKey]:
    """The views an append of ``events`` to ``stream`` reads and may write (the store loads them first)."""
    keys: list[ViewKey] = []
    owner = _owner_key(stream)
    if owner is not None:
        keys.append(owner)
    for event in events:
        if event.run_id and ("run", event.run_id) not in keys:
            keys.append(("run", event.run_id))
        key = event.data.get("idempotency_key") if event.type == "RunStarted" else None
        if key and ("idempotency", key) not in keys:
            keys.append(("idempotency", str(key)))
    return keys


def project(stream: str, events: Sequence[Event], current: Mapping[ViewKey, dict[str, Any] | None]) -> list[ViewWrite]:
    """The view writes ``events`` (just appended to ``stream``) produce from the ``current`` views.

    Raises
    ------
    InvalidTransitionError
        An event that cannot follow the current state (a second ``PortfolioCreated``, a run committed
        twice, a spec change to a portfolio that does not exist): the append must not happen.
    """
    state: dict[ViewKey, dict[str, Any] | None] = dict(current)
    created: set[ViewKey] = set()
    touched: list[ViewKey] = []
    for event in events:
        for key, document, is_new in _apply(stream, event, state):
            state[key] = document
            if is_new:
                created.add(key)
            if key not in touched:
                touched.append(key)
    writes = []
    for key in touched:
        written = state[key]
        assert written is not None
        owner, sort = _listing(key, written)
        writes.append(ViewWrite(key[0], key[1], written, owner, sort, create_only=key in created))  # type: ignore[arg-type]
    return writes


def fold(stream: str, events: Sequence[Event]) -> dict[ViewKey, dict[str, Any]]:
    """Every view of ``stream`` rebuilt from its whole log (what the stored views must equal)."""
    state: dict[ViewKey, dict[str, Any] | None] = {}
    for event in events:
        for key in view_keys(stream, [event]):
            state.setdefault(key, None)
        for write in project(stream, [event], state):
            state[(write.kind, write.key)] = write.document
    return {k: v for k, v in state.items() if v is not None}


def _listing(key: ViewKey, document: dict[str, Any]) -> tuple[str | None, str | None]:
    kind, name = key
    if kind == "run":
        return document["stream"], run_sort_key(datetime.fromisoformat(document["started_at"]), name)
    if kind == "alert":
        return document["stream"], f"{document['at']}|{name}"
    if kind == "apikey":
        return None, f"{document['created_at']}|{name}"
    if kind in ("portfolio", "champion"):
        return None, name
    return None, None


Change = tuple[ViewKey, dict[str, Any], bool]


def _apply(stream: str, event: Event, state: Mapping[ViewKey, dict[str, Any] | None]) -> list[Change]:
    kind = stream.partition("/")[0]
    changes: list[Change] = []
    if event.run_id is not None:
        changes += _apply_run(stream, event, state)
    if event.type == "AlertSent" and event.run_id is not None:
        changes.append(_alert(stream, event))
    if kind == "apikey":
        changes += _apply_apikey(stream, event, state)
    elif kind == "portfolio":
        changes += _apply_portfolio(stream, event, state)
    elif kind == "model":
        changes += _apply_champion(stream, event, state)
    return changes


def _dump(view: BaseModel) -> dict[str, Any]:
    return view.model_dump(mode="json")


def _fail(event: Event, why: str) -> InvalidTransitionError:
    return InvalidTransitionError(
        f"{event.type} cannot be appended to {event.stream}: {why}.",
        hint="Re-read the portfolio, run or model and retry the command; the log was not changed.",
    )


def _apply_portfolio(stream: str, event: Event, state: Mapping[ViewKey, dict[str, Any] | None]) -> list[Change]:
    key: ViewKey = ("portfolio", stream.partition("/")[2])
    raw = state.get(key)
    at = event.recorded_at
    if event.type == "PortfolioCreated":
        if raw is not None:
            raise _fail(event, "the portfolio already exists")
        view = PortfolioView(
            name=key[1],
            spec=event.data["spec"],
            spec_version=1,
            spec_origin=event.data.get("origin", "cli"),
            created_at=at,
            updated_at=at,
            version=event.version,
        )
        return [(key, _dump(view), True)]
    if raw is None:
        # Runs of a portfolio that is not stored (a what-if on an inline spec) only touch their run view.
        if event.type in ("RunStarted", "TargetProposed", "AlertSent", "RunCommitted", "RunFailed"):
            return []
        raise _fail(event, "the portfolio does not exist")
    view = PortfolioView.model_validate(raw)
    update: dict[str, Any] = {"version": event.version, "updated_at": at}
    if event.type == "SpecChanged":
        if view.status == "archived":
            raise _fail(event, "the portfolio is archived")
        update |= {
            "spec": event.data["spec"],
            "spec_version": view.spec_version + 1,
            "spec_origin": event.data.get("origin", "cli"),
        }
    elif event.type == "PortfolioArchived":
        update["status"] = "archived"
    elif event.type == "PortfolioRestored":
        update["status"] = "active"
    elif event.type == "HoldingsReset":
        weights = event.data.get("weights")
        update["holdings"] = (
            None
            if weights is None
            else Holdings(weights=weights, as_of=event.data.get("as_of"), version=event.version, regime=None)
        )
    elif event.type == "RunStarted":
        update["last_run"] = {"run_id": event.run_id, "status": "RUNNING", "at": at.isoformat()}
    elif event.type == "RunCommitted":
        holdings = event.data.get("holdings")
        if event.data.get("holdings_moved") and holdings is not None:
            update["holdings"] = Holdings(**holdings, run_id=event.run_id, version=event.version)
        if event.data.get("result") is not None:
            update["latest"] = {"run_id": event.run_id, "committed_at": at.isoformat(), **event.data["result"]}
        update["last_run"] = {"run_id": event.run_id, "status": "SUCCEEDED", "at": at.isoformat()}
    elif event.type == "RunFailed":
        update["last_run"] = {"run_id": event.run_id, "status": "FAILED", "at": at.isoformat()}
    elif event.type not in ("TargetProposed", "AlertSent"):
        raise _fail(event, "it is not a portfolio event")
    return [(key, _dump(view.model_copy(update=update)), False)]


def _apply_run(stream: str, event: Event, state: Mapping[ViewKey, dict[str, Any] | None]) -> list[Change]:
    assert event.run_id is not None
    key: ViewKey = ("run", event.run_id)
    raw = state.get(key)
    at = event.recorded_at
    data = event.data
    if event.type == "RunStarted":
        if raw is not None:
            raise DuplicateError(f"Run {event.run_id} already exists (in {raw.get('stream')}).")
        view = RunView(
            run_id=event.run_id,
            machine=data.get("machine", "rebalance"),
            stream=stream,
            subject=stream.split("/", 1)[1],
            trigger=data.get("trigger", "cli"),
            idempotency_key=data.get("idempotency_key"),
            scheduled_for=data.get("scheduled_for"),
            started_at=data.get("started_at") or at,
            request=data.get("request", {}),
            inputs=data.get("inputs", {}),
        )
        changes: list[Change] = [(key, _dump(view), True)]
        if view.idempotency_key:
            if state.get(("idempotency", view.idempotency_key)) is not None:
                raise DuplicateError(f"The idempotency key {view.idempotency_key!r} already names a run.")
            document = {"key": view.idempotency_key, "run_id": event.run_id, "request_hash": data.get("request_hash")}
            changes.append((("idempotency", view.idempotency_key), document, True))
        return changes
    if event.type not in ("TargetProposed", "AlertSent", "RunCommitted", "RunFailed"):
        return []  # a registry or portfolio event that names the run that caused it
    if raw is None:
        raise _fail(event, f"run {event.run_id} was never started")
    run = RunView.model_validate(raw)
    if run.stream != stream:
        raise _fail(event, f"run {event.run_id} belongs to {run.stream}")
    if run.status != "RUNNING":
        raise _fail(event, f"run {event.run_id} already ended {run.status}")
    update: dict[str, Any] = {}
    if event.type == "TargetProposed":
        update["proposal"] = data
    elif event.type == "AlertSent":
        update["alerts"] = [*run.alerts, data]
    else:
        ended = datetime.fromisoformat(data["ended_at"]) if data.get("ended_at") else at
        update |= {
            "status": "SUCCEEDED" if event.type == "RunCommitted" else "FAILED",
            "ended_at": ended,
            "seconds": round((ended - run.started_at).total_seconds(), 3),
            "steps": [StepTiming.model_validate(s) for s in data.get("steps", [])],
            "inputs": {**run.inputs, **data.get("inputs", {})},
        }
        if event.type == "RunCommitted":
            update["result"] = data.get("result")
        else:
            update |= {k: data.get(k) for k in ("error", "cause", "failed_state")}
    return [(key, _dump(run.model_copy(update=update)), False)]


def _apply_champion(stream: str, event: Event, state: Mapping[ViewKey, dict[str, Any] | None]) -> list[Change]:
    key: ViewKey = ("champion", stream.partition("/")[2])
    raw = state.get(key)
    at = event.recorded_at
    view = (
        ChampionView(model=key[1], updated_at=at, version=event.version)
        if raw is None
        else ChampionView.model_validate(raw)
    )
    update: dict[str, Any] = {"updated_at": at, "version": event.version}
    data = event.data
    if event.type == "ChampionPromoted":
        if view.pinned:
            raise _fail(event, f"the champion {view.champion} is pinned")
        if data.get("previous") != view.champion:
            raise _fail(event, f"the promotion was decided against {data.get('previous')}, not {view.champion}")
        update |= {"champion": data["version"], "lineage": [*view.lineage, data["version"]]}
    elif event.type == "ChampionPinned":
        update |= {"champion": data["version"], "pinned": True}
        if data["version"] != view.champion:
            update["lineage"] = [*view.lineage, data["version"]]
    elif event.type == "ChampionUnpinned":
        update["pinned"] = False
    elif event.type == "ChampionRolledBack":
        if data.get("from") != view.champion or data["to"] not in view.lineage:
            raise _fail(event, f"{data.get('to')} is not an earlier champion of {view.champion}")
        update |= {"champion": data["to"], "lineage": [*view.lineage, data["to"]], "pinned": bool(data.get("pin"))}
    elif event.type not in ("ChallengerRegistered", "RunStarted", "TargetProposed", "AlertSent", "RunCommitted",
                            "RunFailed"):  # fmt: skip
        raise _fail(event, "it is not a model event")
    return [(key, _dump(view.model_copy(update=update)), raw is None)]


def _alert(stream: str, event: Event) -> Change:
    """An alert's own read model, listed by portfolio and time (the run's view lists it too)."""
    key: ViewKey = ("alert", f"{event.run_id}:{event.version}")
    document = {
        "id": key[1],
        "stream": stream,
        "subject": stream.split("/", 1)[1],
        "run_id": event.run_id,
        "at": event.recorded_at.isoformat(),
        **{k: event.data.get(k) for k in ("limit", "severity", "status", "value", "threshold", "message")},
    }
    return key, document, True


def _apply_apikey(stream: str, event: Event, state: Mapping[ViewKey, dict[str, Any] | None]) -> list[Change]:
    key: ViewKey = ("apikey", stream.partition("/")[2])
    raw = state.get(key)
    if event.type == "ApiKeyCreated":
        if raw is not None:
            raise _fail(event, "the key already exists")
        document = {
            "id": key[1],
            "name": event.data["name"],
            "role": event.data["role"],
            "digest": event.data["digest"],
            "created_by": event.data.get("created_by"),
            "created_at": event.recorded_at.isoformat(),
            "revoked_at": None,
        }
        return [(key, document, True)]
    if raw is None or event.type != "ApiKeyRevoked":
        raise _fail(event, "it is not an event of an existing API key")
    if raw.get("revoked_at"):
        raise _fail(event, "the key is already revoked")
    return [(key, {**raw, "revoked_at": event.recorded_at.isoformat(), "revoked_by": event.data.get("by")}, False)]
