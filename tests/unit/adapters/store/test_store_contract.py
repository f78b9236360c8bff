"""The store port's contract: every backend (SQLite, pynamodb in moto, pynamodb on moto's server) passes it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from portfolio_engine.exceptions import ConcurrencyError, DuplicateError, InvalidTransitionError, StoreError
from portfolio_engine.ports import Store
from portfolio_engine.records.events import NewEvent, model_stream, portfolio_stream
from portfolio_engine.records.views import fold

SPEC = {"name": "core", "universe": ["AAPL", "MSFT"], "method": "min_variance"}
CORE = portfolio_stream("core")


def created(spec: dict | None = None) -> NewEvent:
    return NewEvent(type="PortfolioCreated", data={"spec": spec or SPEC, "origin": "cli"})


def started(run_id: str, **data: object) -> NewEvent:
    return NewEvent(type="RunStarted", run_id=run_id, data={"machine": "rebalance", "trigger": "cli", **data})


def committed(run_id: str, weights: dict[str, float], *, moved: bool = True) -> NewEvent:
    return NewEvent(
        type="RunCommitted",
        run_id=run_id,
        data={
            "holdings_moved": moved,
            "holdings": {"weights": weights, "as_of": "2022-12-28", "regime": "calm"},
            "result": {"target_weights": weights, "risk": {"var_0.99": 0.0712345678901234}},
            "steps": [{"state": "Optimize", "status": "succeeded", "seconds": 0.5}],
        },
    )


def test_events_are_numbered_after_the_expected_version_and_read_back_in_order(store: Store) -> None:
    # Given an empty stream
    assert store.stream_version(CORE) == 0 and store.events(CORE) == []
    # When two appends follow each other
    first = store.append(CORE, [created()], expected_version=0)
    second = store.append(CORE, [started("run-1"), committed("run-1", {"AAPL": 0.6, "MSFT": 0.4})], expected_version=1)
    # Then the events carry versions 1..3, and reading after a version gives the rest
    assert [e.version for e in first + second] == [1, 2, 3]
    assert [e.type for e in store.events(CORE)] == ["PortfolioCreated", "RunStarted", "RunCommitted"]
    assert [e.version for e in store.events(CORE, after=1)] == [2, 3]
    assert store.stream_version(CORE) == 3
    # and the data round-trips exactly (floats included)
    assert store.events(CORE)[2].data["result"]["risk"]["var_0.99"] == 0.0712345678901234
    assert store.events(CORE)[0].recorded_at < store.events(CORE)[2].recorded_at


def test_a_stale_writer_gets_a_concurrency_error_and_writes_nothing(store: Store) -> None:
    store.append(CORE, [created()], expected_version=0)
    store.append(CORE, [started("run-1")], expected_version=1)
    views_before = store.view("portfolio", "core")
    # When a writer that read version 1 appends
    with pytest.raises(ConcurrencyError):
        store.append(CORE, [started("run-2")], expected_version=1)
    # Then the log, the views and the run it meant to create are as before
    assert store.stream_version(CORE) == 2 and len(store.events(CORE)) == 2
    assert store.view("portfolio", "core") == views_before and store.view("run", "run-2") is None


def test_of_concurrent_writers_at_the_same_version_exactly_one_wins(make_store: Callable[[], Store]) -> None:
    make_store().append(CORE, [created()], expected_version=0)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def writer(i: int) -> None:
        store = make_store()  # each writer its own handle, as separate Lambdas would have
        barrier.wait()
        try:
            store.append(CORE, [started(f"run-{i}")], expected_version=1)
            outcomes.append("won")
        except ConcurrencyError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["won"]
    store = make_store()
    assert store.stream_version(CORE) == 2
    runs = store.views("run", owner=CORE).items
    assert len(runs) == 1 and runs[0]["run_id"] == store.events(CORE)[1].run_id


def test_the_views_are_derived_from_the_events(store: Store) -> None:
    # Given a portfolio's life: created, spec changed, a committed run, a failed run, a reset
    store.append(CORE, [created()], expected_version=0)
    store.append(
        CORE, [NewEvent(type="SpecChanged", data={"spec": {**SPEC, "method": "max_sharpe"}})], expected_version=1
    )
    store.append(CORE, [started("run-1", request={"portfolio": "core"})], expected_version=2)
    store.append(
        CORE,
        [NewEvent(type="TargetProposed", run_id="run-1", data={"target_weights": {"AAPL": 0.5, "MSFT": 0.5}})],
        expected_version=3,
    )
    store.append(CORE, [committed("run-1", {"AAPL": 0.5, "MSFT": 0.5})], expected_version=4)
    store.append(CORE, [started("run-2")], expected_version=5)
    store.append(
        CORE,
        [
            NewEvent(
                type="RunFailed",
                run_id="run-2",
                data={"error": "InfeasibleError", "cause": "x", "failed_state": "Optimize"},
            )
        ],
        expected_version=6,
    )
    # Then the portfolio view has spec version 2, the first run's holdings and result, the failed run as last
    portfolio = store.view("portfolio", "core")
    assert portfolio is not None
    assert portfolio["spec"]["method"] == "max_sharpe" and portfolio["spec_version"] == 2
    assert portfolio["holdings"]["weights"] == {"AAPL": 0.5, "MSFT": 0.5} and portfolio["holdings"]["run_id"] == "run-1"
    assert portfolio["holdings"]["version"] == 5 and portfolio["version"] == 7
    assert portfolio["latest"]["run_id"] == "run-1" and portfolio["last_run"]["status"] == "FAILED"
    # and each run's view tells its story
    run1, run2 = store.view("run", "run-1"), store.view("run", "run-2")
    assert run1 is not None and run2 is not None
    assert run1["status"] == "SUCCEEDED" and run1["proposal"]["target_weights"] == {"AAPL": 0.5, "MSFT": 0.5}
    assert run1["steps"][0]["state"] == "Optimize" and run1["seconds"] > 0
    assert run2["status"] == "FAILED" and run2["error"] == "InfeasibleError" and run2["failed_state"] == "Optimize"
    # and folding the whole log again gives exactly the stored views
    for (kind, key), document in fold(CORE, store.events(CORE)).items():
        assert store.view(kind, key) == document


def test_a_run_committed_without_moving_the_holdings_keeps_them(store: Store) -> None:
    store.append(CORE, [created(), started("run-1"), committed("run-1", {"AAPL": 1.0})], expected_version=0)
    store.append(CORE, [started("run-2"), committed("run-2", {"MSFT": 1.0}, moved=False)], expected_version=3)
    portfolio = store.view("portfolio", "core")
    assert portfolio is not None
    assert portfolio["holdings"]["weights"] == {"AAPL": 1.0} and portfolio["holdings"]["run_id"] == "run-1"
    assert portfolio["latest"]["run_id"] == "run-2"


def test_a_run_id_is_unique_across_streams_and_a_duplicate_writes_nothing(store: Store) -> None:
    other = portfolio_stream("other")
    store.append(CORE, [created(), started("run-1")], expected_version=0)
    store.append(other, [created({**SPEC, "name": "other"})], expected_version=0)
    with pytest.raises(DuplicateError):
        store.append(other, [started("run-1")], expected_version=1)
    assert store.stream_version(other) == 1 and store.view("run", "run-1")["stream"] == CORE  # type: ignore[index]


def test_an_idempotency_key_names_one_run(store: Store) -> None:
    store.append(CORE, [created(), started("run-1", idempotency_key="key-1")], expected_version=0)
    assert store.view("idempotency", "key-1") == {"key": "key-1", "run_id": "run-1", "request_hash": None}
    with pytest.raises(DuplicateError):
        store.append(CORE, [started("run-2", idempotency_key="key-1")], expected_version=2)
    assert store.view("run", "run-2") is None and store.stream_version(CORE) == 2


@pytest.mark.parametrize(
    "events",
    [
        [NewEvent(type="SpecChanged", data={"spec": SPEC})],  # no such portfolio
        [created(), created()],  # created twice
        [created(), committed("run-9", {"AAPL": 1.0})],  # a run never started
        [created(), started("run-1"), committed("run-1", {"AAPL": 1.0}), committed("run-1", {"AAPL": 1.0})],
    ],
    ids=["spec-of-nothing", "created-twice", "commit-unstarted", "commit-twice"],
)
def test_an_event_that_cannot_follow_the_state_is_refused_and_nothing_is_written(
    store: Store, events: list[NewEvent]
) -> None:
    with pytest.raises(InvalidTransitionError):
        store.append(CORE, events, expected_version=0)
    assert store.stream_version(CORE) == 0 and store.events(CORE) == [] and store.view("portfolio", "core") is None


def test_runs_list_newest_first_page_by_page_per_stream_and_overall(store: Store) -> None:
    other = portfolio_stream("other")
    store.append(CORE, [created()], expected_version=0)
    store.append(other, [created({**SPEC, "name": "other"})], expected_version=0)
    for i in range(5):
        stream = CORE if i % 2 == 0 else other
        store.append(stream, [started(f"run-{i}")], expected_version=store.stream_version(stream))
    # When the runs of 'core' are listed two at a time
    first = store.views("run", owner=CORE, limit=2, descending=True)
    second = store.views("run", owner=CORE, limit=2, descending=True, cursor=first.cursor)
    # Then they come newest first and the last page has no cursor
    assert [r["run_id"] for r in first.items] == ["run-4", "run-2"] and first.cursor is not None
    assert [r["run_id"] for r in second.items] == ["run-0"] and second.cursor is None
    # and every run, over all streams
    everything = store.views("run", limit=3, descending=True)
    rest = store.views("run", limit=3, descending=True, cursor=everything.cursor)
    assert [r["run_id"] for r in everything.items + rest.items] == [f"run-{i}" for i in range(4, -1, -1)]
    # and portfolios by name
    assert [p["name"] for p in store.views("portfolio").items] == ["core", "other"]


def test_a_cursor_that_the_store_did_not_make_is_a_typed_error(store: Store) -> None:
    with pytest.raises(StoreError):
        store.views("run", cursor="not-a-cursor!")
    with pytest.raises(StoreError):
        store.views("run", limit=0)


def test_the_champion_is_promoted_only_against_the_champion_it_was_decided_on(store: Store) -> None:
    stream = model_stream("regime", "market")
    promote = lambda version, previous: NewEvent(  # noqa: E731
        type="ChampionPromoted", data={"version": version, "previous": previous}
    )
    store.append(stream, [promote("v1", None)], expected_version=0)
    store.append(stream, [promote("v2", "v1")], expected_version=1)
    # A promotion decided against v1 after v2 took over is refused, even at the right version
    with pytest.raises(InvalidTransitionError):
        store.append(stream, [promote("v3", "v1")], expected_version=2)
    store.append(stream, [NewEvent(type="ChampionRolledBack", data={"from": "v2", "to": "v1"})], expected_version=2)
    store.append(stream, [NewEvent(type="ChampionPinned", data={"version": "v1"})], expected_version=3)
    with pytest.raises(InvalidTransitionError):  # pinned: promotions are refused
        store.append(stream, [promote("v3", "v1")], expected_version=4)
    champion = store.view("champion", "regime/market")
    assert champion is not None
    assert champion["champion"] == "v1" and champion["pinned"] and champion["lineage"] == ["v1", "v2", "v1"]


def test_an_append_larger_than_one_transaction_is_refused(store: Store) -> None:
    store.append(CORE, [created(), started("run-1")], expected_version=0)
    alerts = [NewEvent(type="AlertSent", run_id="run-1", data={"limit": f"l{i}"}) for i in range(120)]
    with pytest.raises(StoreError):
        store.append(CORE, alerts, expected_version=2)
    assert store.stream_version(CORE) == 2


def test_alert_claims_are_atomic_and_honour_the_cooldown(make_store: Callable[[], Store]) -> None:
    store = make_store()
    now = datetime(2026, 1, 5, 22, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert store.claim("core/max_var", rank=2, now=now, cooldown=hour)
    assert not store.claim("core/max_var", rank=2, now=now + timedelta(minutes=5), cooldown=hour)
    assert store.claim("core/max_var", rank=3, now=now + timedelta(minutes=6), cooldown=hour)  # escalation
    assert store.claim("core/max_var", rank=1, now=now + timedelta(minutes=67), cooldown=hour)  # cool-down over
    # a failed delivery's claim is released, so the next alert is sent
    later = now + timedelta(minutes=70)
    store.release("core/max_var", sent_at=now + timedelta(minutes=67))
    assert store.claim("core/max_var", rank=1, now=later, cooldown=hour)
    # and concurrent claims of one key: exactly one is sent
    wins: list[bool] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        handle = make_store()
        barrier.wait()
        wins.append(handle.claim("core/max_vol", rank=2, now=later, cooldown=hour))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]


def test_two_streams_racing_to_create_one_run_id_leave_exactly_one_run(make_store: Callable[[], Store]) -> None:
    streams = [portfolio_stream(f"p{i}") for i in range(4)]
    for i, stream in enumerate(streams):
        make_store().append(stream, [created({**SPEC, "name": f"p{i}"})], expected_version=0)
    outcomes: list[str] = []
    barrier = threading.Barrier(len(streams))

    def writer(stream: str) -> None:
        store = make_store()
        barrier.wait()
        try:
            store.append(stream, [started("run-x", idempotency_key="once")], expected_version=1)
            outcomes.append(stream)
        except DuplicateError:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=writer, args=(s,)) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o != "duplicate"]
    assert len(winners) == 1 and outcomes.count("duplicate") == 3
    store = make_store()
    assert store.view("run", "run-x")["stream"] == winners[0]  # type: ignore[index]
    assert store.view("idempotency", "once")["run_id"] == "run-x"  # type: ignore[index]
    assert sorted(store.stream_version(s) for s in streams) == [1, 1, 1, 2]


def test_appends_to_several_streams_are_one_transaction(store: Store) -> None:
    from portfolio_engine.ports import StreamAppend

    market = model_stream("regime", "market")
    store.append(CORE, [created(), started("run-1")], expected_version=0)
    store.append(
        market, [NewEvent(type="ChampionPromoted", data={"version": "v1", "previous": None})], expected_version=0
    )
    promote_v2 = NewEvent(type="ChampionPromoted", run_id="run-1", data={"version": "v2", "previous": "v1"})
    # When one of two streams is stale, neither is written
    with pytest.raises(ConcurrencyError):
        store.append_all(
            [StreamAppend(CORE, [committed("run-1", {"AAPL": 1.0})], 2), StreamAppend(market, [promote_v2], 0)]
        )
    assert store.view("run", "run-1")["status"] == "RUNNING"  # type: ignore[index]
    assert store.view("champion", "regime/market")["champion"] == "v1"  # type: ignore[index]
    # and when both are current, both are
    written = store.append_all(
        [StreamAppend(CORE, [committed("run-1", {"AAPL": 1.0})], 2), StreamAppend(market, [promote_v2], 1)]
    )
    assert [[e.version for e in events] for events in written] == [[3], [2]]
    assert store.view("run", "run-1")["status"] == "SUCCEEDED"  # type: ignore[index]
    assert store.view("champion", "regime/market")["champion"] == "v2"  # type: ignore[index]


def test_each_alert_a_run_sent_is_listed_by_portfolio_newest_first(store: Store) -> None:
    def alert(limit: str, severity: str) -> NewEvent:
        data = {"limit": limit, "severity": severity, "status": "sent", "value": 0.3, "threshold": 0.25}
        return NewEvent(type="AlertSent", run_id="run-1", data=data)

    store.append(CORE, [created(), started("run-1")], expected_version=0)
    store.append(CORE, [alert("max_volatility", "breach"), alert("max_weight", "warning")], expected_version=2)
    listed = store.views("alert", owner=CORE, descending=True).items
    assert [(a["limit"], a["severity"], a["run_id"], a["subject"]) for a in listed] == [
        ("max_weight", "warning", "run-1", "core"),
        ("max_volatility", "breach", "run-1", "core"),
    ]
    assert [a["limit"] for a in store.views("alert").items] == ["max_volatility", "max_weight"]
    assert len(store.view("run", "run-1")["alerts"]) == 2  # type: ignore[index]


def test_an_api_key_is_created_once_and_revoked_once(store: Store) -> None:
    from portfolio_engine.records.events import apikey_stream

    stream = apikey_stream("k1")
    created_key = NewEvent(type="ApiKeyCreated", data={"name": "ci", "role": "viewer", "digest": "ab" * 32})
    store.append(stream, [created_key], expected_version=0)
    key = store.view("apikey", "k1")
    assert key is not None and key["role"] == "viewer" and key["revoked_at"] is None
    with pytest.raises(InvalidTransitionError):
        store.append(stream, [created_key], expected_version=1)
    store.append(stream, [NewEvent(type="ApiKeyRevoked", data={"by": "admin"})], expected_version=1)
    assert store.view("apikey", "k1")["revoked_at"] is not None  # type: ignore[index]
    with pytest.raises(InvalidTransitionError):
        store.append(stream, [NewEvent(type="ApiKeyRevoked")], expected_version=2)
    assert [k["id"] for k in store.views("apikey").items] == ["k1"]
