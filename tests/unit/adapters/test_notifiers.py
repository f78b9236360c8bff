"""Alert notifiers: SNS on moto's server (read back through SQS), Slack through ``responses``, the webhook from
Secrets Manager and SSM on moto's server, the local log, fan-out, and de-duplication with an injected clock and
its state in the store of record (SQLite in a temporary folder, DynamoDB on moto's server)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests
import responses

from portfolio_engine.adapters.notifiers import (
    AlertDispatcher,
    LocalLogNotifier,
    MemoryAlertStateStore,
    SlackNotifier,
    SnsNotifier,
    alert_from_sns_message,
    build_alert_dispatcher,
    slack_payload,
    slack_webhook_url,
    sns_subject,
)
from portfolio_engine.adapters.store import open_store
from portfolio_engine.adapters.store.dynamodb import DynamoStore
from portfolio_engine.exceptions import ConfigurationError, NotificationError
from portfolio_engine.ports import AlertStateStore, Notifier, Store
from portfolio_engine.risk.alerts import Alert
from portfolio_engine.settings import Settings

WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX"
T0 = datetime(2024, 3, 1, 14, 0, tzinfo=UTC)


def _alert(severity: str = "breach", limit: str = "max_var_95_1d", portfolio: str = "core-equity") -> Alert:
    return Alert(
        portfolio=portfolio,
        limit=limit,
        value=0.031,
        threshold=0.025,
        severity=severity,  # type: ignore[arg-type]
        message=f"{portfolio}: {severity}: {limit} = 0.031 > limit 0.025 (124% of the limit)",
        run_id="run-42",
        as_of=T0,
    )


class Clock:
    """A settable clock for the cool-down."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> Clock:
        self.now = T0 + timedelta(minutes=minutes)
        return self


class Recorder:
    """A channel that records what it is sent, or fails when told to."""

    def __init__(self, name: str = "recorder", fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> str:
        if self.fail:
            raise NotificationError(f"{self.name} is down")
        self.sent.append(alert)
        return f"{self.name}-{len(self.sent)}"


# -------------------------------------------------------------------------------------------- SNS
def _topic_with_queue(endpoint: str, name: str) -> tuple[str, str]:
    sns = boto3.client("sns", endpoint_url=endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, queue_url


def _received(endpoint: str, queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_sns_publishes_the_alert_with_attributes_read_back_through_sqs(aws_env: str) -> None:
    # Given a topic on moto's server with an SQS queue subscribed
    topic_arn, queue_url = _topic_with_queue(aws_env, "spe-alerts-sns")
    notifier = SnsNotifier(topic_arn, endpoint_url=aws_env)
    alert = _alert("critical")

    # When the alert is published
    message_id = notifier.send(alert)

    # Then the queue holds it: JSON body, subject, and severity/portfolio/limit attributes
    (envelope,) = _received(aws_env, queue_url)
    assert envelope["MessageId"] == message_id and envelope["TopicArn"] == topic_arn
    assert json.loads(envelope["Message"]) == alert.to_dict()
    assert envelope["Subject"] == "[SPE] CRITICAL core-equity: max_var_95_1d"
    attributes = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {"severity": "critical", "portfolio": "core-equity", "limit": "max_var_95_1d"}
    assert isinstance(notifier, Notifier)
    # And a subscriber reads the alert back from the body
    assert alert_from_sns_message(envelope["Message"]) == alert


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"portfolio": "p"}', '{"portfolio": "p", "limit": "x"}'])
def test_a_body_that_is_not_an_alert_is_a_notification_error(body: str) -> None:
    with pytest.raises(NotificationError, match="not an alert") as info:
        alert_from_sns_message(body)
    assert "SnsNotifier" in info.value.hint


def test_the_sns_subject_is_ascii_and_at_most_100_characters() -> None:
    subject = sns_subject(_alert(portfolio="très-long-" * 20))
    assert len(subject) == 100 and subject.endswith("...") and subject.isascii()
    assert sns_subject(_alert()) == "[SPE] BREACH core-equity: max_var_95_1d"


def test_an_unknown_topic_is_a_notification_error(aws_env: str) -> None:
    notifier = SnsNotifier("arn:aws:sns:us-east-1:123456789012:no-such-topic", endpoint_url=aws_env)
    with pytest.raises(NotificationError, match="no-such-topic") as info:
        notifier.send(_alert())
    assert "sns:Publish" in info.value.hint


# ------------------------------------------------------------------------------------------ Slack
@responses.activate
def test_slack_posts_a_block_kit_message_with_a_timeout() -> None:
    # Given the webhook answering as Slack does on success
    responses.post(WEBHOOK, body="ok", status=200, content_type="text/html")
    alert = _alert("critical", portfolio="growth <&> value")

    # When the alert is sent
    receipt = SlackNotifier(WEBHOOK, timeout=3.5).send(alert)

    # Then the body is the Block Kit payload: a header, the figures as fields, mrkdwn escaped
    assert receipt == "ok" and len(responses.calls) == 1
    call = responses.calls[0]
    body = json.loads(call.request.body)  # type: ignore[arg-type]
    assert body == slack_payload(alert)
    assert [block["type"] for block in body["blocks"]] == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": alert.title, "emoji": True}
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert fields[:5] == [
        "*Portfolio*\ngrowth &lt;&amp;&gt; value",
        "*Limit*\n`max_var_95_1d`",
        "*Value*\n0.031",
        "*Threshold*\n0.025",
        "*Severity*\ncritical",
    ]
    assert "<&>" not in body["text"] and "&lt;&amp;&gt;" in body["text"]
    assert call.request.req_kwargs["timeout"] == 3.5  # type: ignore[union-attr]


@responses.activate
@pytest.mark.parametrize(
    ("status", "answer"), [(400, "invalid_payload"), (403, "action_prohibited"), (404, "no_service"), (500, "")]
)
def test_slack_refusals_are_notification_errors_naming_status_and_answer(status: int, answer: str) -> None:
    responses.post(WEBHOOK, body=answer, status=status, content_type="text/html")
    with pytest.raises(NotificationError, match=f"HTTP {status} '{answer}'") as info:
        SlackNotifier(WEBHOOK).send(_alert())
    assert "invalid_payload" in info.value.hint


@responses.activate
def test_an_unreachable_slack_is_a_notification_error() -> None:
    responses.post(WEBHOOK, body=requests.ConnectTimeout("timed out"))
    with pytest.raises(NotificationError, match="ConnectTimeout"):
        SlackNotifier(WEBHOOK).send(_alert())


def test_the_webhook_url_is_read_from_secrets_manager_bare_or_as_json(aws_env: str) -> None:
    client = boto3.client("secretsmanager", endpoint_url=aws_env, region_name="us-east-1")
    client.create_secret(Name="spe/slack/bare", SecretString=WEBHOOK + "\n")
    client.create_secret(Name="spe/slack/json", SecretString=json.dumps({"url": WEBHOOK}))
    client.create_secret(Name="spe/slack/http", SecretString="http://example.com/hook")
    assert slack_webhook_url(secret_id="spe/slack/bare", endpoint_url=aws_env) == WEBHOOK
    assert slack_webhook_url(secret_id="spe/slack/json", endpoint_url=aws_env) == WEBHOOK
    with pytest.raises(ConfigurationError, match="https"):
        slack_webhook_url(secret_id="spe/slack/http", endpoint_url=aws_env)
    with pytest.raises(ConfigurationError, match="spe/slack/missing") as info:
        slack_webhook_url(secret_id="spe/slack/missing", endpoint_url=aws_env)
    assert "GetSecretValue" in info.value.hint


def test_the_webhook_url_is_read_from_ssm_parameter_store(aws_env: str) -> None:
    ssm = boto3.client("ssm", endpoint_url=aws_env, region_name="us-east-1")
    ssm.put_parameter(Name="/spe/slack/webhook", Value=WEBHOOK, Type="SecureString", Overwrite=True)
    assert slack_webhook_url(ssm_parameter="/spe/slack/webhook", endpoint_url=aws_env) == WEBHOOK
    with pytest.raises(ConfigurationError, match="/spe/slack/none"):
        slack_webhook_url(ssm_parameter="/spe/slack/none", endpoint_url=aws_env)
    with pytest.raises(ConfigurationError, match="No Slack webhook"):
        slack_webhook_url()


# -------------------------------------------------------------------------------------- local log
def test_the_local_log_appends_json_lines_and_logs_structured_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = LocalLogNotifier(tmp_path / "alerts" / "alerts.jsonl")
    with caplog.at_level(logging.INFO, logger="portfolio_engine.adapters.notifiers"):
        assert log.send(_alert("critical")) == str(log.path)
        log.record(_alert("warning", limit="max_weight"), status="suppressed")
    entries = log.entries()
    assert [(e["limit"], e["severity"], e["status"]) for e in entries] == [
        ("max_var_95_1d", "critical", "sent"),
        ("max_weight", "warning", "suppressed"),
    ]
    assert entries[0]["value"] == 0.031 and entries[0]["dedup_key"] == "core-equity/max_var_95_1d/critical"
    assert [r.levelno for r in caplog.records] == [logging.CRITICAL, logging.INFO]
    assert caplog.records[0].alert["portfolio"] == "core-equity"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- de-duplication, fan-out
def _dispatcher(tmp_path: Path, channels: list, clock: Callable[[], datetime], store: AlertStateStore | None = None):
    return AlertDispatcher(
        channels,
        local=LocalLogNotifier(tmp_path / "alerts.jsonl"),
        store=store or MemoryAlertStateStore(),
        cooldown_seconds=3600,
        clock=clock,
    )


def test_duplicates_are_suppressed_within_the_cool_down_unless_severity_escalates(tmp_path: Path) -> None:
    # Given a dispatcher with a one-hour cool-down and a settable clock
    channel, clock = Recorder(), Clock()
    dispatcher = _dispatcher(tmp_path, [channel], clock)

    def at(minutes: float, alert: Alert) -> str:
        clock.at(minutes)
        return dispatcher.dispatch(alert).status

    # When the same limit keeps alerting
    statuses = [
        at(0, _alert("breach")),  # first
        at(10, _alert("breach")),  # same severity, 10 minutes later
        at(20, _alert("critical")),  # escalation
        at(30, _alert("breach")),  # lower than the last one sent
        at(79.9, _alert("critical")),  # 59.9 minutes after the critical
        at(80, _alert("breach")),  # cool-down over
        at(80, _alert("breach", limit="max_weight")),  # another limit is another stream
        at(80, _alert("breach", portfolio="other")),  # another portfolio too
    ]

    # Then only the first, the escalation, the one after the cool-down and the other streams are sent
    assert statuses == ["sent", "suppressed", "sent", "suppressed", "suppressed", "sent", "sent", "sent"]
    assert [(a.portfolio, a.limit, a.severity) for a in channel.sent] == [
        ("core-equity", "max_var_95_1d", "breach"),
        ("core-equity", "max_var_95_1d", "critical"),
        ("core-equity", "max_var_95_1d", "breach"),
        ("core-equity", "max_weight", "breach"),
        ("other", "max_var_95_1d", "breach"),
    ]
    # And the local log has every alert, suppressed ones included
    assert [e["status"] for e in dispatcher.local.entries()] == statuses


def test_a_failing_channel_does_not_stop_the_others_and_the_log_keeps_the_alert(aws_env: str, tmp_path: Path) -> None:
    # Given SNS on moto's server and a Slack webhook answering 500
    topic_arn, queue_url = _topic_with_queue(aws_env, "spe-alerts-fanout")
    slack = SlackNotifier(WEBHOOK)
    dispatcher = _dispatcher(tmp_path, [slack, SnsNotifier(topic_arn, endpoint_url=aws_env)], Clock())

    # When an alert is dispatched
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mocked:
        mocked.post(WEBHOOK, body="rollup_error", status=500)
        outcome = dispatcher.dispatch(_alert("critical"))

    # Then SNS delivered it, Slack's failure is reported, and the log records both outcomes
    assert outcome.status == "sent"
    by_channel = {c.channel: c for c in outcome.channels}
    assert by_channel["sns"].delivered and by_channel["sns"].receipt
    assert not by_channel["slack"].delivered and "HTTP 500" in (by_channel["slack"].error or "")
    assert len(_received(aws_env, queue_url)) == 1
    (entry,) = dispatcher.local.entries()
    assert entry["channels"]["slack"]["delivered"] is False and entry["channels"]["sns"]["delivered"] is True
    assert json.loads(json.dumps(outcome.to_dict()))["status"] == "sent"


def test_when_every_channel_fails_the_alert_is_logged_and_retried_next_time(tmp_path: Path) -> None:
    # Given two channels that are down
    clock = Clock()
    dispatcher = _dispatcher(tmp_path, [Recorder("a", fail=True), Recorder("b", fail=True)], clock)

    # When the same alert is dispatched twice within the cool-down
    first = dispatcher.dispatch(_alert())
    clock.at(1)
    second = dispatcher.dispatch(_alert())

    # Then both are "failed" (not suppressed: the failed claim was released) and both are in the log
    assert first.status == "failed" and second.status == "failed"
    assert [c.error for c in first.channels] == ["a is down", "b is down"]
    assert [e["status"] for e in dispatcher.local.entries()] == ["failed", "failed"]


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store of record: a SQLite file in a temporary folder, or a table on moto's server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    aws_env = request.getfixturevalue("aws_env")
    table = f"spe-alerts-{abs(hash(request.node.nodeid)) % 10**8}"
    DynamoStore(table, endpoint_url=aws_env).create_table()
    return f"dynamodb://{table}"


def test_the_store_of_record_keeps_the_cool_down_across_processes(store_uri: str, tmp_path: Path) -> None:
    # Given the store of record holding the de-duplication state
    clock = Clock()
    first = _dispatcher(tmp_path, [Recorder()], clock, open_store(store_uri))
    assert first.dispatch(_alert()).status == "sent"

    # When a new dispatcher (a new process) opens the same store
    store = open_store(store_uri)
    second = _dispatcher(tmp_path, [Recorder()], clock.at(30), store)

    # Then the duplicate is still suppressed and an escalation is sent
    assert second.dispatch(_alert()).status == "suppressed"
    assert second.dispatch(_alert("critical")).status == "sent"
    assert second.dispatch(_alert("critical")).status == "suppressed"
    # And a claim whose delivery failed is released in the store too
    failing = _dispatcher(tmp_path, [Recorder(fail=True)], clock.at(31), store)
    assert failing.dispatch(_alert(limit="max_weight")).status == "failed"
    assert second.dispatch(_alert(limit="max_weight")).status == "sent"
    assert isinstance(store, Store) and isinstance(store, AlertStateStore)
    assert isinstance(MemoryAlertStateStore(), AlertStateStore)


def test_a_negative_cool_down_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="-1"):
        AlertDispatcher(
            [], local=LocalLogNotifier(tmp_path / "a.jsonl"), store=MemoryAlertStateStore(), cooldown_seconds=-1
        )


# ------------------------------------------------------------------------------------------ wiring
def test_the_dispatcher_is_built_from_settings_and_publishes_to_sns_only(aws_env: str, data_dir: Path) -> None:
    # Given a topic and a Slack webhook in SSM on moto's server, both named by settings
    topic_arn, queue_url = _topic_with_queue(aws_env, "spe-alerts-settings")
    boto3.client("ssm", endpoint_url=aws_env, region_name="us-east-1").put_parameter(
        Name="/spe/slack/settings", Value=WEBHOOK, Type="SecureString", Overwrite=True
    )
    settings = Settings(
        alerts_topic_arn=topic_arn, slack_webhook_ssm_parameter="/spe/slack/settings", alert_cooldown_seconds=900
    )

    # When the dispatcher is built and used (any request to Slack would fail: none is registered)
    dispatcher = build_alert_dispatcher(settings, clock=Clock())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        outcome = dispatcher.dispatch(_alert())
        assert len(mocked.calls) == 0

    # Then it publishes to SNS only (Slack subscribes to the topic), logs under the data directory, keeps the
    # configured cool-down, and its state is the store of record under the data directory, not the lake
    assert [c.channel for c in outcome.channels] == ["sns"] and outcome.status == "sent"
    assert all(c.delivered for c in outcome.channels) and len(_received(aws_env, queue_url)) == 1
    assert dispatcher.local.path == settings.data_dir / "alerts" / "alerts.jsonl" and dispatcher.local.entries()
    assert dispatcher.cooldown == timedelta(seconds=900)
    assert isinstance(dispatcher.store, Store) and dispatcher.store.uri == settings.resolved_store_uri()
    assert (settings.data_dir / "store.db").exists() and not (settings.data_dir / "lake" / "alerts").exists()
    assert not open_store(settings.resolved_store_uri()).claim(
        "core-equity/max_var_95_1d", rank=2, now=T0 + timedelta(minutes=1), cooldown=timedelta(seconds=900)
    )
    assert build_alert_dispatcher(Settings()).channels == []
