"""NotifySlack, the SNS subscriber that posts alerts to Slack: the Block Kit message of an SNS event, once per SNS
message id (powertools idempotency with its DynamoDB table on moto's server), retried after a Slack failure, and a
zip-sized import chain. Slack's webhook is the only fake (``responses``): it is the edge of the internet."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import responses

from portfolio_engine.adapters.alert_channels import slack_payload
from portfolio_engine.local.runner import InProcessLambda
from portfolio_engine.risk.alerts import Alert

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((REPO_ROOT / "tests" / "events" / "notify_slack.json").read_text())
WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/NOTIFYSLACKTEST0"
KEY_PREFIX = "spe-notify-slack"
HEAVY = ("numpy", "pandas", "scipy", "pyarrow", "sklearn")


def _event(*message_ids: str) -> dict[str, Any]:
    """The sample event with one record per message id (the sample's own id when none is given)."""
    (record,) = EVENT["Records"]
    records = []
    for message_id in message_ids or (record["Sns"]["MessageId"],):
        copied = copy.deepcopy(record)
        copied["Sns"]["MessageId"] = message_id
        records.append(copied)
    return {"Records": records}


def _sample_alert() -> Alert:
    return Alert.from_dict(json.loads(EVENT["Records"][0]["Sns"]["Message"]))


def _idempotency_key(message_id: str) -> str:
    # powertools: "<key_prefix>#" + md5 of the JSON of what event_key_jmespath selects (the message id)
    return f"{KEY_PREFIX}#{hashlib.md5(json.dumps(message_id).encode()).hexdigest()}"


@pytest.fixture
def idempotency_table(aws_env: str, request: pytest.FixtureRequest) -> str:
    """A table shaped as powertools expects (``id`` string key, TTL on ``expiration``) on moto's server."""
    name = f"spe-idempotency-{abs(hash(request.node.nodeid)) % 10**8}"
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
def slack_settings(aws_env: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The webhook stored in SSM on moto's server and named by the settings the handler reads."""
    boto3.client("ssm", endpoint_url=aws_env, region_name="us-east-1").put_parameter(
        Name="/spe/slack/notify", Value=WEBHOOK, Type="SecureString", Overwrite=True
    )
    monkeypatch.setenv("SPE_SLACK_WEBHOOK_SSM_PARAMETER", "/spe/slack/notify")
    monkeypatch.delenv("SPE_IDEMPOTENCY_TABLE", raising=False)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    return WEBHOOK


@pytest.fixture
def lambdas(slack_settings: str, idempotency_table: str, monkeypatch: pytest.MonkeyPatch) -> InProcessLambda:
    """The handlers, imported after the settings are in the environment (a cold start per test)."""
    monkeypatch.setenv("SPE_IDEMPOTENCY_TABLE", idempotency_table)
    return InProcessLambda()


def _record(aws_env: str, table: str, message_id: str) -> dict[str, Any] | None:
    dynamodb = boto3.client("dynamodb", endpoint_url=aws_env, region_name="us-east-1")
    item = dynamodb.get_item(TableName=table, Key={"id": {"S": _idempotency_key(message_id)}}, ConsistentRead=True)
    return item.get("Item")


def _posted(calls: Any) -> list[dict[str, Any]]:
    return [json.loads(call.request.body) for call in calls]


def test_the_sample_event_is_posted_as_the_alerts_block_kit_message(lambdas: InProcessLambda) -> None:
    # Given Slack answering as it does on success
    with responses.RequestsMock() as slack:
        slack.post(WEBHOOK, body="ok", status=200)

        # When the sample SNS event is delivered
        payload, error = lambdas.invoke("notify_slack", _event())
        posts = _posted(slack.calls)  # (the mock forgets its calls on exit)

    # Then Slack received the Block Kit message of the alert in the SNS message body
    assert error is None, payload
    assert posts == [slack_payload(_sample_alert())]
    (posted,) = json.loads(payload)["posted"]
    message_id = EVENT["Records"][0]["Sns"]["MessageId"]
    assert posted == {"message_id": message_id, "dedup_key": "default/max_drawdown/breach", "slack": "ok"}


def test_the_same_sns_message_delivered_twice_is_posted_once(
    lambdas: InProcessLambda, aws_env: str, idempotency_table: str
) -> None:
    # Given Slack up and one message already delivered
    with responses.RequestsMock(assert_all_requests_are_fired=False) as slack:
        slack.post(WEBHOOK, body="ok", status=200)
        first, error = lambdas.invoke("notify_slack", _event("message-a"))
        assert error is None, first

        # When SNS (or Lambda's asynchronous retry) delivers the same message id again, from a new container too
        again, error_again = lambdas.invoke("notify_slack", _event("message-a"))
        cold, error_cold = InProcessLambda().invoke("notify_slack", _event("message-a"))
        # ... while another message with the same alert is a new post
        other, error_other = lambdas.invoke("notify_slack", _event("message-b"))
        posts = _posted(slack.calls)

    # Then Slack saw message-a once and message-b once; the replays returned the first answer
    assert (error_again, error_cold, error_other) == (None, None, None)
    assert posts == [slack_payload(_sample_alert())] * 2
    assert json.loads(again) == json.loads(cold) == json.loads(first)
    assert json.loads(other)["posted"][0]["message_id"] == "message-b"
    # And the idempotency table holds a completed record per message id, keyed with the prefix
    for message_id in ("message-a", "message-b"):
        record = _record(aws_env, idempotency_table, message_id)
        assert record is not None and record["status"]["S"] == "COMPLETED"
        assert json.loads(record["data"]["S"])["message_id"] == message_id


def test_a_slack_failure_raises_so_that_the_delivery_is_retried(
    lambdas: InProcessLambda, aws_env: str, idempotency_table: str
) -> None:
    # Given Slack answering 500 once, then ok
    with responses.RequestsMock() as slack:
        slack.post(WEBHOOK, body="rollup_error", status=500)
        slack.post(WEBHOOK, body="ok", status=200)

        # When the message is delivered
        payload, error = lambdas.invoke("notify_slack", _event("message-retry"))

        # Then the invocation fails with the engine's error (Lambda retries it), and no completed record is left
        assert error == "Unhandled"
        failure = json.loads(payload)
        assert failure["errorType"] == "NotificationError" and "HTTP 500" in failure["errorMessage"]
        assert _record(aws_env, idempotency_table, "message-retry") is None

        # When Lambda retries the same event
        retried, error_retried = lambdas.invoke("notify_slack", _event("message-retry"))
        posts = _posted(slack.calls)

    # Then it is posted, and now recorded as completed
    assert error_retried is None, retried
    assert posts == [slack_payload(_sample_alert())] * 2
    record = _record(aws_env, idempotency_table, "message-retry")
    assert record is not None and record["status"]["S"] == "COMPLETED"


def test_several_records_are_posted_in_order_each_once(lambdas: InProcessLambda) -> None:
    # Given an event with three records, and Slack failing on the second post only
    event = _event("multi-1", "multi-2", "multi-3")
    with responses.RequestsMock() as slack:
        slack.post(WEBHOOK, body="ok", status=200)
        slack.post(WEBHOOK, body="", status=503)
        slack.post(WEBHOOK, body="ok", status=200)

        # When it is delivered, fails, and is delivered again
        _, error = lambdas.invoke("notify_slack", event)
        payload, error_retried = lambdas.invoke("notify_slack", event)
        posts = _posted(slack.calls)

    # Then the first failure stopped the event; the retry posted only the records not yet posted
    assert error == "Unhandled" and error_retried is None
    assert len(posts) == 4  # multi-1, multi-2 (503), multi-2 again, multi-3
    assert [p["message_id"] for p in json.loads(payload)["posted"]] == ["multi-1", "multi-2", "multi-3"]


def test_a_message_that_is_not_an_alert_fails_and_names_the_problem(lambdas: InProcessLambda) -> None:
    event = _event("not-an-alert")
    event["Records"][0]["Sns"]["Message"] = "hello from someone else"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as slack:
        slack.post(WEBHOOK, body="ok", status=200)
        payload, error = lambdas.invoke("notify_slack", event)
        assert len(slack.calls) == 0
    assert error == "Unhandled" and json.loads(payload)["errorType"] == "NotificationError"


def test_without_an_idempotency_table_every_delivery_is_posted(slack_settings: str) -> None:
    # Given no SPE_IDEMPOTENCY_TABLE (a laptop): documented as not de-duplicated
    lambdas = InProcessLambda()
    with responses.RequestsMock() as slack:
        slack.post(WEBHOOK, body="ok", status=200)

        # When the same message is delivered twice
        for _ in range(2):
            payload, error = lambdas.invoke("notify_slack", _event("no-table"))
            assert error is None, payload
        posts = _posted(slack.calls)

    # Then both deliveries are posted
    assert len(posts) == 2


def test_an_unreadable_webhook_is_a_configuration_error_at_invocation(
    slack_settings: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a parameter that does not exist: the import (cold start) succeeds, the invocation fails and is retried
    monkeypatch.setenv("SPE_SLACK_WEBHOOK_SSM_PARAMETER", "/spe/slack/missing")
    payload, error = InProcessLambda().invoke("notify_slack", _event("no-webhook"))
    assert error == "Unhandled" and json.loads(payload)["errorType"] == "ConfigurationError"


def test_the_import_chain_is_zip_sized() -> None:
    # Given a fresh interpreter, with the settings an AWS deployment has
    handler = str(REPO_ROOT / "functions" / "notify_slack" / "app.py")
    script = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('notify_slack', {handler!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert callable(module.lambda_handler) and module.PERSISTENCE is not None\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    env = {
        **os.environ,
        "SPE_IDEMPOTENCY_TABLE": "spe-idempotency",
        "SPE_SLACK_WEBHOOK_SECRET_ID": "spe/slack",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }

    # When the handler module is imported (a cold start)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)

    # Then neither numpy, pandas, scipy, pyarrow nor scikit-learn was imported
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
