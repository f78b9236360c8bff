"""Run ids of API requests: derived from the subject and the client's Idempotency-Key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.exceptions import DuplicateError
from portfolio_engine.pipeline.launching import KEY_PATTERN, launch_run, run_id_for
from portfolio_engine.records.events import NewEvent, portfolio_stream

from .conftest import RecordingLauncher

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")  # the API's RunId path parameter


def test_the_same_subject_and_key_give_the_same_run_id() -> None:
    assert run_id_for("core", "order-42") == run_id_for("core", "order-42")
    assert run_id_for("core", "order-42").startswith("core-api-")


def test_another_key_or_subject_gives_another_run_id() -> None:
    ids = {run_id_for("core", "k1"), run_id_for("core", "k2"), run_id_for("growth", "k1")}
    assert len(ids) == 3


def test_the_subject_and_key_are_not_merely_concatenated() -> None:
    # "a" + "b-c" and "a-b" + "c" must not collide
    assert run_id_for("a", "b-c") != run_id_for("a-b", "c")


def test_without_a_key_every_request_gets_a_new_run_id() -> None:
    assert run_id_for("core", None) != run_id_for("core", None)
    assert RUN_ID.match(run_id_for("x" * 64, None))


def test_the_longest_subject_and_key_fit_a_run_id() -> None:
    # Given a 64-character portfolio name and a 79-character key (the longest each may be)
    subject, key = "p" * 63 + "-", "K" + "k" * 78
    assert re.match(KEY_PATTERN, key) and not re.match(KEY_PATTERN, key + "k")
    # When the run id is derived
    run_id = run_id_for(subject, key)
    # Then it is a valid RunId (at most 80 characters, no trailing separator before -api-)
    assert RUN_ID.match(run_id), run_id
    assert len(run_id) <= 80
    assert run_id == run_id_for(subject, key)
    assert run_id != run_id_for(subject[:-1] + "q", key)  # the whole subject counts, not the kept prefix


def test_two_portfolios_sharing_a_long_prefix_get_their_own_idempotency_records(tmp_path: Path) -> None:
    # Given two portfolios whose 64-character names differ only after the 48th character
    store = SqliteStore(tmp_path / "store.db")
    launcher = RecordingLauncher()
    first, second = "p" * 60 + "-one", "p" * 60 + "-two"
    # When a client starts a run of each with the same Idempotency-Key
    for name in (first, second):
        launch_run(
            store, launcher, machine="rebalance", subject=name, request={"portfolio": name}, idempotency_key="nightly"
        )
    # Then they are two runs, and each records itself under its own idempotency key (the store keeps keys unique)
    assert len(launcher.started) == 2
    for run_id, (_, request) in launcher.started.items():
        started = NewEvent(
            type="RunStarted",
            run_id=run_id,
            data={"machine": "rebalance", "trigger": "api", "idempotency_key": request["idempotency_key"]},
        )
        store.append(portfolio_stream(request["portfolio"]), [started], expected_version=0)
    assert {store.view("run", run_id)["status"] for run_id in launcher.started} == {"RUNNING"}  # type: ignore[index]


def test_a_recorded_run_is_replayed_and_another_request_under_its_key_is_a_duplicate(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    launcher = RecordingLauncher()
    launched = launch_run(
        store, launcher, machine="rebalance", subject="core", request={"portfolio": "core"}, idempotency_key="k1"
    )
    assert (launched.status, launched.replayed) == ("QUEUED", False)
    _, request = launcher.started[launched.run_id]
    assert re.match(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", request["idempotency_key"])  # the run contract's key
    # Given the run recorded itself (its first task appends RunStarted with the request)
    data = {"machine": "rebalance", "trigger": "api", "idempotency_key": request["idempotency_key"], "request": request}
    store.append(
        portfolio_stream("core"), [NewEvent(type="RunStarted", run_id=launched.run_id, data=data)], expected_version=0
    )
    # When the same request comes again it is the recorded run; another request under the key is a duplicate
    again = launch_run(
        store, launcher, machine="rebalance", subject="core", request={"portfolio": "core"}, idempotency_key="k1"
    )
    assert again.run_id == launched.run_id and again.replayed is True
    with pytest.raises(DuplicateError, match="differs"):
        launch_run(
            store, launcher, machine="rebalance", subject="core", request={"portfolio": "growth"}, idempotency_key="k1"
        )
