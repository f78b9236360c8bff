"""Fixtures of the API suites: a data directory after a real run, and `spe api` serving it over HTTP.

``api_data`` runs the rebalance machine once per session (the bundled data, a small universe); ``live_api``
copies it and starts the real server (``python -m portfolio_engine.cli api``, uvicorn) on a free port, with
the development issuer made on its first start; ``token`` signs a token for a role with that issuer.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from portfolio_engine.cli import app

RUN = ["run", "--symbols", "AAPL,JPM,XOM,KO,PFE", "--start", "2012-01-01", "--run-id", "first", "--json"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def api_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after one committed `spe run` (portfolio 'default', a regime champion, a run record)."""
    directory = tmp_path_factory.mktemp("api") / "spe-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPE_DATA_DIR", str(directory))
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        result = CliRunner().invoke(app, RUN)
        assert result.exit_code == 0, result.stdout
    return directory


@dataclass
class LiveApi:
    """A running `spe api`: its URL, its data directory, and tokens of its development issuer."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def token(self, role: str, subject: str | None = None) -> str:
        from portfolio_engine.api.devkeys import ensure_dev_issuer

        issuer = ensure_dev_issuer(self.data_dir)
        return issuer.mint(role=role, issuer="spe-local", audience="spe-api", subject=subject)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}


def start_api(data_dir: Path, *, extra_env: dict[str, str] | None = None) -> Iterator[LiveApi]:
    """Start `spe api` on ``data_dir`` and wait for /health; stop it afterwards."""
    port = _free_port()
    env = {**os.environ, "SPE_DATA_DIR": str(data_dir), "POWERTOOLS_METRICS_DISABLED": "true", **(extra_env or {})}
    for name in ("SPE_STORE_URI", "SPE_LAKE_URI", "SPE_API_JWKS", "AWS_ENDPOINT_URL", "REDIS_URL"):
        if name not in (extra_env or {}):
            env.pop(name, None)
    log = (data_dir.parent / f"api-{port}.log").open("wb")
    command = [sys.executable, "-m", "portfolio_engine.cli", "api", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"spe api did not start: {(data_dir.parent / f'api-{port}.log').read_text()}")
            time.sleep(0.1)
        yield LiveApi(url, data_dir, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def live_api(api_data: Path, tmp_path: Path) -> Iterator[LiveApi]:
    """`spe api` over a private copy of ``api_data`` (a test may change what it serves)."""
    directory = tmp_path / "spe-data"
    shutil.copytree(api_data, directory)
    yield from start_api(directory)


@pytest.fixture(scope="module")
def module_api(api_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """`spe api` over a private copy of ``api_data`` shared by a module's tests (a high rate limit: suites, not
    the limiter, are under test)."""
    directory = tmp_path_factory.mktemp("api-module") / "spe-data"
    shutil.copytree(api_data, directory)
    yield from start_api(directory, extra_env={"SPE_API_RATE_PER_MINUTE": "1000000"})


@pytest.fixture
def token(live_api: LiveApi) -> Callable[[str], str]:
    """A bearer token of the live server's issuer for a role."""
    return live_api.token
