"""The Alert step publishes to SNS (moto's server) and never calls Slack; an SQS subscription receives the alert;
the cool-down state is in the store of record (SQLite under the data directory), not the lake; and what the topic
carries is what ``notify_slack`` turns into the Block Kit message (SNS -> notify_slack, end to end)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import responses

from portfolio_engine.adapters.alert_channels import slack_payload
from portfolio_engine.adapters.store import open_store
from portfolio_engine.local.runner import InProcessLambda
from portfolio_engine.risk.alerts import Alert
from portfolio_engine.settings import Settings

EVENTS = Path(__file__).resolve().parents[1] / "events"
WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/SENDALERTSTEST00"


def _alert_event() -> dict[str, Any]:
    """The sample Alert event with a breach and a warning."""
    event = json.loads((EVENTS / "send_alerts.json").read_text())
    event["limits"]["breaches"] = [
        {"limit": "max_drawdown", "value": 0.41, "threshold": 0.35, "severity": "breach", "ratio": 1.17},
        {"limit": "max_volatility", "value": 0.24, "threshold": 0.25, "severity": "warning", "ratio": 0.96},
    ]
    event["limits"]["any_breach"], event["limits"]["worst_severity"] = True, "breach"
    return event


@pytest.fixture
def topic(aws_env: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """An alerts topic with an SQS queue subscribed, on moto's server, and settings naming it and a Slack webhook."""
    sns = boto3.client("sns", endpoint_url=aws_env, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=aws_env, region_name="us-east-1")
    topic_arn = sns.create_topic(Name="spe-alerts-step")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="spe-alerts-step-q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    boto3.client("ssm", endpoint_url=aws_env, region_name="us-east-1").put_parameter(
        Name="/spe/slack/step", Value=WEBHOOK, Type="SecureString", Overwrite=True
    )
    monkeypatch.setenv("SPE_ALERTS_TOPIC_ARN", topic_arn)
    monkeypatch.setenv("SPE_SLACK_WEBHOOK_SSM_PARAMETER", "/spe/slack/step")
    monkeypatch.delenv("SPE_STORE_URI", raising=False)
    monkeypatch.delenv("SPE_IDEMPOTENCY_TABLE", raising=False)
    return topic_arn, queue_url


def _drain(aws_env: str, queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", endpoint_url=aws_env, region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def _lambda_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """The event SNS gives a subscribed Lambda, from the envelope it gives a subscribed queue (same message)."""
    sns = {
        "Type": envelope["Type"],
        "MessageId": envelope["MessageId"],
        "TopicArn": envelope["TopicArn"],
        "Subject": envelope.get("Subject"),
        "Message": envelope["Message"],
        "Timestamp": envelope["Timestamp"],
        "SignatureVersion": envelope.get("SignatureVersion", "1"),
        "Signature": envelope.get("Signature", "EXAMPLE"),
        "SigningCertUrl": envelope.get("SigningCertURL", "https://sns.us-east-1.amazonaws.com/cert.pem"),
        "UnsubscribeUrl": envelope.get("UnsubscribeURL", "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"),
        "MessageAttributes": envelope.get("MessageAttributes", {}),
    }
    record = {"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": subscription_arn, "Sns": sns}
    return {"Records": [record]}


def test_the_alert_step_publishes_to_sns_only_and_slack_gets_it_through_notify_slack(
    aws_env: str, topic: tuple[str, str], data_dir: Path
) -> None:
    topic_arn, queue_url = topic
    lambdas = InProcessLambda()

    # When the Alert step runs on a breach and a warning, with a Slack webhook configured
    with responses.RequestsMock(assert_all_requests_are_fired=False) as slack:
        payload, error = lambdas.invoke("send_alerts", _alert_event())
        slack_calls_from_the_step = len(slack.calls)

    # Then it did not call Slack; SNS took both alerts and the subscribed queue received them
    assert error is None, payload
    output = json.loads(payload)
    assert (output["sent"], output["suppressed"], output["failed"]) == (2, 0, 0)
    assert slack_calls_from_the_step == 0
    assert [sorted(o["channels"]) for o in output["outcomes"]] == [["sns"], ["sns"]]
    envelopes = sorted(_drain(aws_env, queue_url), key=lambda e: json.loads(e["Message"])["limit"])
    alerts = [Alert.from_dict(json.loads(e["Message"])) for e in envelopes]
    assert [(a.portfolio, a.limit, a.severity, a.run_id) for a in alerts] == [
        ("default", "max_drawdown", "breach", "sample-run"),
        ("default", "max_volatility", "warning", "sample-run"),
    ]
    assert all(e["TopicArn"] == topic_arn for e in envelopes)
    # And the local log has both
    log = [json.loads(line) for line in (data_dir / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert [(e["limit"], e["status"]) for e in log] == [("max_drawdown", "sent"), ("max_volatility", "sent")]

    # When SNS hands the breach to the Slack subscriber
    with responses.RequestsMock() as slack:
        slack.post(WEBHOOK, body="ok", status=200)
        notified, error = lambdas.invoke("notify_slack", _lambda_event(envelopes[0], f"{topic_arn}:sub"))
        posts = [json.loads(call.request.body) for call in slack.calls]

    # Then Slack receives the alert's Block Kit message
    assert error is None, notified
    assert posts == [slack_payload(alerts[0])]


def test_the_cool_down_state_is_in_the_store_not_the_lake(aws_env: str, topic: tuple[str, str], data_dir: Path) -> None:
    _, queue_url = topic

    # Given the Alert step ran once
    first, error = InProcessLambda().invoke("send_alerts", _alert_event())
    assert error is None, first
    assert len(_drain(aws_env, queue_url)) == 2

    # When it runs again in a new container (a cold start) within the cool-down
    second, error = InProcessLambda().invoke("send_alerts", _alert_event())

    # Then both alerts are suppressed, nothing more is published
    assert error is None, second
    assert (json.loads(second)["sent"], json.loads(second)["suppressed"]) == (0, 2)
    assert _drain(aws_env, queue_url) == []
    # And the state is the store of record's (SQLite under the data directory), none of it in the lake
    store = open_store(Settings().resolved_store_uri())
    assert store.uri == f"sqlite:///{(data_dir / 'store.db').resolve()}"
    now = datetime.now(UTC)
    assert not store.claim("default/max_drawdown", rank=2, now=now, cooldown=timedelta(hours=1))
    assert store.claim("default/max_drawdown", rank=3, now=now, cooldown=timedelta(hours=1))  # an escalation
    assert not (data_dir / "lake" / "alerts").exists()
