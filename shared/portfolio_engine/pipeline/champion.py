"""A model's champion: promotions committed against the champion they were decided on; pin, unpin, roll back.

Every change is one conditional append to the model's stream (``model/<kind>/<name>``), decided on the champion
view it read. Two challengers decided against the same champion cannot both win: the second append finds the
stream moved, re-reads, and records its challenger as not promoted because the champion it beat is gone.
A pinned champion is never replaced by a promotion.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from portfolio_engine.contracts.tasks import TrainRegimeOutput
from portfolio_engine.exceptions import InvalidTransitionError, ModelNotFoundError
from portfolio_engine.pipeline.runs import append_retrying
from portfolio_engine.ports import ModelRegistry, Store
from portfolio_engine.provenance import code_version, package_versions
from portfolio_engine.records.events import NewEvent, model_stream
from portfolio_engine.records.views import ChampionView

__all__ = [
    "champion_report",
    "commit_training",
    "decision_events",
    "pin_champion",
    "rollback_champion",
    "unpin_champion",
]


def _view(store: Store, kind: str, name: str) -> ChampionView | None:
    raw = store.view("champion", f"{kind}/{name}")
    return None if raw is None else ChampionView.model_validate(raw)


def champion_report(store: Store, registry: ModelRegistry, name: str, *, kind: str = "regime") -> dict[str, Any]:
    """The champion, whether it is pinned, its lineage and every decision of the model's registry.

    Raises
    ------
    ModelNotFoundError
        If the model has no registry events yet.
    """
    view = _view(store, kind, name)
    if view is None:
        raise ModelNotFoundError(f"No {kind} model {name!r} has been registered.")
    events = store.events(model_stream(kind, name))
    decisions = [
        {"type": e.type, "recorded_at": e.recorded_at.isoformat(), "run_id": e.run_id, **e.data}
        for e in events
        if e.type not in ("RunStarted", "RunCommitted", "RunFailed", "AlertSent", "TargetProposed")
    ]
    metadata = registry.metadata(name, view.champion) if view.champion else {}
    return {
        "model": f"{kind}/{name}",
        "champion": view.champion,
        "pinned": view.pinned,
        "lineage": view.lineage,
        "state_names": (metadata.get("summary") or {}).get("state_names"),
        "metrics": metadata.get("metrics"),
        "trained_on": {k: metadata.get(k) for k in ("first_date", "last_date", "feature_key") if k in metadata},
        "decisions": decisions,
    }


def pin_champion(
    store: Store,
    registry: ModelRegistry,
    name: str,
    version: str | None = None,
    *,
    kind: str = "regime",
    by: str = "cli",
) -> ChampionView:
    """Pin ``version`` (default: the champion) as the champion; later promotions are refused until unpinned.

    Raises
    ------
    ModelNotFoundError
        The version is not stored.
    """
    view = _view(store, kind, name)
    target = version or (view.champion if view else None)
    if target is None:
        raise ModelNotFoundError(f"{kind} model {name!r} has no champion to pin.", hint="Name a version: --version V.")
    registry.metadata(name, target)  # raises ModelNotFoundError for a version that is not stored
    stream = model_stream(kind, name)
    event = NewEvent(
        type="ChampionPinned", data={"version": target, "previous": view.champion if view else None, "by": by}
    )
    store.append(stream, [event], expected_version=view.version if view else store.stream_version(stream))
    pinned = _view(store, kind, name)
    assert pinned is not None
    return pinned


def unpin_champion(store: Store, name: str, *, kind: str = "regime", by: str = "cli") -> ChampionView:
    """Let promotions replace the champion again."""
    view = _view(store, kind, name)
    if view is None or not view.pinned:
        raise InvalidTransitionError(f"The champion of {kind} model {name!r} is not pinned.")
    store.append(
        model_stream(kind, name), [NewEvent(type="ChampionUnpinned", data={"by": by})], expected_version=view.version
    )
    unpinned = _view(store, kind, name)
    assert unpinned is not None
    return unpinned


def rollback_champion(
    store: Store, name: str, *, to: str | None = None, kind: str = "regime", pin: bool = True, by: str = "cli"
) -> ChampionView:
    """Make an earlier champion the champion again (default: the one before the current), pinned by default.

    Pinning keeps the next scheduled retraining from promoting the model that was rolled back from.

    Raises
    ------
    InvalidTransitionError
        No earlier champion, or ``to`` was never a champion.
    """
    view = _view(store, kind, name)
    if view is None or view.champion is None:
        raise InvalidTransitionError(f"{kind} model {name!r} has no champion to roll back.")
    earlier = [v for v in view.lineage if v != view.champion]
    target = to or (earlier[-1] if earlier else None)
    if target is None or target not in view.lineage or target == view.champion:
        raise InvalidTransitionError(
            f"Cannot roll {kind} model {name!r} back to {target!r}: earlier champions are {earlier or 'none'}.",
            hint="Name one of them with --to.",
        )
    event = NewEvent(type="ChampionRolledBack", data={"from": view.champion, "to": target, "pin": pin, "by": by})
    store.append(model_stream(kind, name), [event], expected_version=view.version)
    rolled = _view(store, kind, name)
    assert rolled is not None
    return rolled


def decision_events(
    registry: ModelRegistry, decision: TrainRegimeOutput, *, run_id: str | None = None
) -> tuple[list[NewEvent], TrainRegimeOutput, int]:
    """The model stream's events recording ``decision``, checked against the champion now, and that version.

    A promotion stands only if the champion is still the one the challenger was compared with and is not
    pinned; otherwise the challenger is recorded as not promoted, with the reason. Returns the events, the
    decision as recorded, and the stream version they must be appended at.
    """
    view = registry.champion_view(decision.name)
    current = view.champion if view is not None else None
    final = decision
    if decision.promoted and view is not None and view.pinned and current is not None:
        final = decision.model_copy(
            update={"promoted": False, "champion": current, "reason": f"the champion {current} is pinned"}
        )
    elif decision.promoted and current != decision.champion_before:
        final = decision.model_copy(
            update={
                "promoted": False,
                "champion": current,
                "reason": f"the champion changed from {decision.champion_before} to {current} while the challenger "
                "was evaluated; evaluate it again against the new champion",
            }
        )
    entry = {
        "version": final.version,
        "run_id": final.run_id,
        "created_at": final.created_at,
        "promoted": final.promoted,
        "reason": final.reason,
        "challenger_metric": final.challenger_metric,
        "champion_before": final.champion_before,
        "champion_metric": final.champion_metric,
        **{k: v for k, v in final.scores.items()},
    }
    events = [NewEvent(type="ChallengerRegistered", run_id=run_id, data=entry)]
    if final.promoted:
        events.append(
            NewEvent(type="ChampionPromoted", run_id=run_id, data={"version": final.version, "previous": current})
        )
    return events, final, view.version if view is not None else 0


def commit_training(
    store: Store,
    registry: ModelRegistry,
    decision: TrainRegimeOutput,
    *,
    machine: str = "regime-fit",
    trigger: str = "cli",
    request: dict[str, Any] | None = None,
    deployed_version: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TrainRegimeOutput:
    """Record a training run done in-process (``spe regime fit``) and its decision, in one append.

    Returns the decision as recorded (a promotion that lost a race says so).
    """
    started = clock().isoformat()
    recorded: list[TrainRegimeOutput] = []

    def build(version: int) -> list[NewEvent]:
        events, final, _ = decision_events(registry, decision, run_id=decision.run_id)
        recorded[:] = [final]
        start = NewEvent(
            type="RunStarted",
            run_id=decision.run_id,
            data={
                "machine": machine,
                "trigger": trigger,
                "started_at": started,
                "request": request or {},
                "inputs": {"code_version": code_version(deployed_version), "packages": package_versions()},
            },
        )
        result = final.model_dump(mode="json")
        end = NewEvent(
            type="RunCommitted", run_id=decision.run_id, data={"result": result, "ended_at": clock().isoformat()}
        )
        return [start, *events, end]

    append_retrying(store, registry.stream(decision.name), build)
    return recorded[0]
