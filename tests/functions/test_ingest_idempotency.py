"""IngestPrices is idempotent on its run id (powertools idempotency, DynamoDB persistence on moto's server).

EventBridge delivers a scheduled event at least once, and the rebalance machine retries its IngestPrices step
under the same execution name: the same run id twice fetches once; a failed attempt leaves no record, so its
retry fetches. The source is a real user file; its fetches are counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from portfolio_engine.adapters.market_data.user_files import UserFileSource
from portfolio_engine.exceptions import SourceUnavailableError
from portfolio_engine.local.runner import InProcessLambda

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY_PREFIX = "spe-ingest-prices"
DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]


@pytest.fixture
def prices(tmp_path: Path) -> str:
    """A wide CSV of two symbols over five sessions: ten bars."""
    path = tmp_path / "prices.csv"
    rows = ["date,AAA,BBB", *(f"{day},{100 + i},{50 + i / 2}" for i, day in enumerate(DAYS))]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every call of the file source's ``fetch``; the first raises when ``fail_first`` is in the list."""
    calls: list[str] = []
    fetch = UserFileSource.fetch

    def counted(self: UserFileSource, *args: Any, **kwargs: Any) -> Any:
        calls.append("fetch")
        if calls.count("fetch") == 1 and "fail_first" in calls:
            raise SourceUnavailableError("The file server timed out.")
        return fetch(self, *args, **kwargs)

    monkeypatch.setattr(UserFileSource, "fetch", counted)
    yield calls


@pytest.fixture
def idempotency_table(aws_env: str, data_dir: Path, request: pytest.FixtureRequest) -> str:
    """A table shaped as powertools expects (``id`` string key, TTL on ``expiration``) on moto's server."""
    name = f"spe-ingest-idem-{abs(hash(request.node.nodeid)) % 10**8}"
    dynamodb = boto3.client("dynamodb", endpoint_url=aws_env, region_name="us-east-1")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return name


@pytest.fixture
def lambdas(idempotency_table: str, monkeypatch: pytest.MonkeyPatch) -> InProcessLambda:
    """The handlers, imported with the table in the settings (a cold start per test)."""
    monkeypatch.setenv("SPE_IDEMPOTENCY_TABLE", idempotency_table)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    return InProcessLambda()


def _event(run_id: str | None, prices: str, **request: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"request": {"source": "file", "file_uri": prices, **request}}
    if run_id is not None:
        event["run_id"] = run_id
    return event


def _record(aws_env: str, table: str, run_id: str) -> dict[str, Any] | None:
    # powertools: "<key_prefix>#" + md5 of the JSON of what event_key_jmespath selects (the run id)
    key = f"{KEY_PREFIX}#{hashlib.md5(json.dumps(run_id).encode()).hexdigest()}"
    dynamodb = boto3.client("dynamodb", endpoint_url=aws_env, region_name="us-east-1")
    return dynamodb.get_item(TableName=table, Key={"id": {"S": key}}, ConsistentRead=True).get("Item")


def _invoke(lambdas: InProcessLambda, event: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    payload, error = lambdas.invoke("ingest_prices", event)
    return json.loads(payload), error


def test_the_same_event_delivered_twice_ingests_once(
    lambdas: InProcessLambda, prices: str, fetches: list[str], aws_env: str, idempotency_table: str
) -> None:
    # Given the scheduled event of one fire time (its run id is the EventBridge event id)
    event = _event("ingest-after-close-20240108T2130Z", prices)

    # When EventBridge delivers it twice, the second time to a new container too
    first, error = _invoke(lambdas, event)
    again, error_again = _invoke(lambdas, event)
    cold, error_cold = _invoke(InProcessLambda(), event)

    # Then the source was read once: the ten bars stored once, the replays returned the first output
    assert (error, error_again, error_cold) == (None, None, None), first
    assert fetches == ["fetch"]
    assert (first["rows_fetched"], first["rows_new"], first["rows_unchanged"]) == (10, 10, 0)
    assert again == cold == first
    # And the table holds one completed record, with the request's hash and the invocation's in-progress expiry
    record = _record(aws_env, idempotency_table, "ingest-after-close-20240108T2130Z")
    assert record is not None and record["status"]["S"] == "COMPLETED"
    assert json.loads(record["data"]["S"]) == first
    assert "validation" in record and "in_progress_expiration" in record

    # When another run id arrives (the next fire time), it ingests: a real second ingest finds nothing new
    other, error_other = _invoke(lambdas, _event("ingest-after-close-20240109T2130Z", prices))
    assert error_other is None and fetches == ["fetch", "fetch"]
    assert (other["rows_new"], other["rows_unchanged"]) == (0, 10)


def test_a_failed_attempt_leaves_no_record_and_its_retry_ingests_once(
    lambdas: InProcessLambda, prices: str, fetches: list[str], aws_env: str, idempotency_table: str
) -> None:
    # Given a source that times out on the first fetch, as the rebalance machine's IngestPrices step sees it
    fetches.append("fail_first")
    event = _event("run-20240108T220000", prices, benchmarks=[])

    # When the step fails
    failed, error = _invoke(lambdas, event)

    # Then Lambda reports the source's error (the machine's Retry matches on it) and no record is kept
    assert error == "Unhandled" and failed["errorType"] == "SourceUnavailableError"
    assert _record(aws_env, idempotency_table, "run-20240108T220000") is None

    # When the step is retried under the same execution name, and then delivered once more
    retried, error_retried = _invoke(lambdas, event)
    replayed, error_replayed = _invoke(lambdas, event)

    # Then the retry ingested the ten bars, and the later delivery was answered from the record
    assert (error_retried, error_replayed) == (None, None)
    assert fetches.count("fetch") == 2  # the failed attempt and the retry: nothing after
    assert retried["rows_new"] == 10 and replayed == retried
    record = _record(aws_env, idempotency_table, "run-20240108T220000")
    assert record is not None and record["status"]["S"] == "COMPLETED"


def test_a_reused_run_id_with_another_request_is_refused(
    lambdas: InProcessLambda, prices: str, fetches: list[str]
) -> None:
    first, error = _invoke(lambdas, _event("run-reused", prices))
    assert error is None, first
    other, error_other = _invoke(lambdas, _event("run-reused", prices, start="2024-01-04"))
    assert error_other == "Unhandled" and other["errorType"] == "IdempotencyValidationError"
    assert fetches == ["fetch"]


def test_an_event_without_a_run_id_is_refused_when_idempotent(
    lambdas: InProcessLambda, prices: str, fetches: list[str]
) -> None:
    # The schedules in cdk.json give "run_id": "$.id"; an event without it cannot be de-duplicated
    failed, error = _invoke(lambdas, _event(None, prices))
    assert error == "Unhandled" and failed["errorType"] == "IdempotencyKeyError"
    assert fetches == []


def test_without_an_idempotency_table_every_delivery_ingests(
    data_dir: Path, prices: str, fetches: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no SPE_IDEMPOTENCY_TABLE (a laptop)
    monkeypatch.delenv("SPE_IDEMPOTENCY_TABLE", raising=False)
    lambdas = InProcessLambda()
    event = _event("ingest-after-close-20240108T2130Z", prices)

    # When the same event is delivered twice
    first, error = _invoke(lambdas, event)
    second, error_second = _invoke(lambdas, event)

    # Then both fetched; ingest being an upsert, the second stored nothing new
    assert (error, error_second) == (None, None)
    assert fetches == ["fetch", "fetch"]
    assert (first["rows_new"], second["rows_new"], second["rows_unchanged"]) == (10, 0, 10)


def test_the_cold_start_warns_once_without_a_table_and_builds_one_persistence_layer_with_it(tmp_path: Path) -> None:
    # Given a fresh interpreter that imports the handler twice: without a table, then with one
    handler = str(REPO_ROOT / "functions" / "ingest_prices" / "app.py")
    script = (
        "import importlib.util, os\n"
        "def load(name):\n"
        f"    spec = importlib.util.spec_from_file_location(name, {handler!r})\n"
        "    module = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(module)\n"
        "    return module\n"
        "laptop = load('laptop')\n"
        "os.environ['SPE_IDEMPOTENCY_TABLE'] = 'spe-idempotency'\n"
        "aws = load('aws')\n"
        "print('RESULT', laptop.PERSISTENCE is None, type(aws.PERSISTENCE).__name__, aws.PERSISTENCE.table_name)\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SPE_IDEMPOTENCY_TABLE", "AWS_ENDPOINT_URL", "POWERTOOLS_LOG_LEVEL")
    }
    env.update(
        SPE_DATA_DIR=str(tmp_path / "spe"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )

    # When it runs
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)

    # Then the laptop import warned once that nothing is de-duplicated; the AWS one built the DynamoDB layer
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("SPE_IDEMPOTENCY_TABLE is not set") == 1
    assert done.stdout.strip().splitlines()[-1] == "RESULT True DynamoDBPersistenceLayer spe-idempotency"
