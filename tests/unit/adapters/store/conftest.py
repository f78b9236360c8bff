"""The store backends every contract test runs against: SQLite, pynamodb in moto, pynamodb on moto's server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portfolio_engine.adapters.store.dynamodb import DynamoStore
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.ports import Store


class StepClock:
    """A clock that moves one second per reading (events get distinct, ordered times)."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 22, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


BACKENDS = ["sqlite", "dynamodb-mock", "dynamodb-server"]


@pytest.fixture(params=BACKENDS)
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Store]]:
    """A factory of store handles on one fresh database (two handles are two writers of the same data)."""
    clock = StepClock()
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        yield lambda: SqliteStore(path, clock=clock)
        return
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    table = f"spe-store-{uuid.uuid4().hex[:8]}"
    if request.param == "dynamodb-server":
        endpoint = request.getfixturevalue("aws_env")
        DynamoStore(table, endpoint_url=endpoint).create_table()
        yield lambda: DynamoStore(table, endpoint_url=endpoint, clock=clock)
        return
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        DynamoStore(table).create_table()
        yield lambda: DynamoStore(table, clock=clock)


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()
