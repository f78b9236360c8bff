"""The champion in the store: one winner among concurrent promotions, pin, unpin, roll back; on both stores."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.contracts import TrainRegimeOutput
from portfolio_engine.exceptions import InvalidTransitionError, ModelNotFoundError
from portfolio_engine.pipeline.champion import (
    champion_report,
    commit_training,
    pin_champion,
    rollback_champion,
    unpin_champion,
)
from portfolio_engine.ports import Store


def decision(version: str, before: str | None, *, promoted: bool = True) -> TrainRegimeOutput:
    """A challenger's decision as train_regime proposes it (trained elsewhere: only the decision matters here)."""
    return TrainRegimeOutput(
        run_id=f"train-{version}",
        name="market",
        version=version,
        promoted=promoted,
        reason="better" if promoted else "worse",
        champion=version if promoted else before,
        champion_before=before,
        challenger_metric=3.9,
        champion_metric=None if before is None else 3.8,
        created_at="2026-01-05T22:00:00+00:00",
        metrics={"holdout_loglik_per_obs": 3.9},
        n_obs=8000,
        first_date=date(1990, 1, 2),
        last_date=date(2022, 12, 28),
    )


@pytest.fixture
def registry(make_store: Callable[[], Store], tmp_path: Path) -> StoreModelRegistry:
    registry = StoreModelRegistry(ParquetLake(str(tmp_path / "lake")), make_store())
    for version in ("v1", "v2", "v3"):
        registry.save(
            "market",
            version,
            {"model.joblib": b"m"},
            {"version": version, "summary": {"state_names": ["calm", "turbulent"]}},
        )
    return registry


def test_two_promotions_decided_against_the_same_champion_give_one_champion(registry: StoreModelRegistry) -> None:
    # GIVEN a champion v1, and two challengers both found better than v1 at the same time
    commit_training(registry.store, registry, decision("v1", None))
    first, second = decision("v2", "v1"), decision("v3", "v1")
    # WHEN both commit
    won = commit_training(registry.store, registry, first)
    lost = commit_training(registry.store, registry, second)
    # THEN exactly one wins against the champion it read; the other is recorded as not promoted, with the reason
    assert won.promoted and not lost.promoted and "changed from v1 to v2" in lost.reason
    assert registry.champion("market") == "v2"
    decisions = [(h["version"], h["promoted"]) for h in registry.history("market")]
    assert decisions == [("v1", True), ("v2", True), ("v3", False)]


def test_concurrent_promotions_from_separate_writers_give_exactly_one_champion(
    make_store: Callable[[], Store], registry: StoreModelRegistry
) -> None:
    commit_training(registry.store, registry, decision("v1", None))
    results: list[TrainRegimeOutput] = []
    barrier = threading.Barrier(2)

    def promote(version: str) -> None:
        writer = StoreModelRegistry(registry.lake, make_store())  # another process's handle on the same store
        barrier.wait()
        results.append(commit_training(writer.store, writer, decision(version, "v1")))

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("v2", "v3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r.version for r in results if r.promoted]
    assert len(winners) == 1 and registry.champion("market") == winners[0]
    assert len(registry.champion_view("market").lineage) == 2  # type: ignore[union-attr]


def test_a_pinned_champion_is_kept_until_unpinned_and_a_rollback_restores_the_one_before(
    registry: StoreModelRegistry,
) -> None:
    commit_training(registry.store, registry, decision("v1", None))
    commit_training(registry.store, registry, decision("v2", "v1"))
    # pinned: a better challenger is recorded, not promoted
    assert pin_champion(registry.store, registry, "market").pinned
    kept = commit_training(registry.store, registry, decision("v3", "v2"))
    assert not kept.promoted and kept.reason == "the champion v2 is pinned" and registry.champion("market") == "v2"
    unpin_champion(registry.store, "market")
    with pytest.raises(InvalidTransitionError):
        unpin_champion(registry.store, "market")
    # roll back: the champion before v2, pinned so the next retraining keeps it
    rolled = rollback_champion(registry.store, "market")
    assert rolled.champion == "v1" and rolled.pinned and rolled.lineage == ["v1", "v2", "v1"]
    report = champion_report(registry.store, registry, "market")
    assert report["champion"] == "v1" and report["state_names"] == ["calm", "turbulent"]
    assert [d["type"] for d in report["decisions"]][-2:] == ["ChampionUnpinned", "ChampionRolledBack"]


def test_pinning_an_unknown_version_or_rolling_back_without_history_is_refused(registry: StoreModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError):
        pin_champion(registry.store, registry, "market")
    commit_training(registry.store, registry, decision("v1", None))
    with pytest.raises(ModelNotFoundError):
        pin_champion(registry.store, registry, "market", "v9")
    with pytest.raises(InvalidTransitionError, match="earlier champions are none"):
        rollback_champion(registry.store, "market")
