"""The run-failure alert: "run X of portfolio P failed at state S: ErrorName: message", through the same dispatcher
as the limits' alerts (SNS on moto's server, the local log), de-duplicated per portfolio in the store of record."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from portfolio_engine.adapters.alert_channels import alert_from_sns_message, slack_payload, sns_subject
from portfolio_engine.adapters.notifiers import AlertDispatcher, build_alert_dispatcher
from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.pipeline.alerts import alert_run_failure
from portfolio_engine.risk.alerts import RUN_FAILED, Alert
from portfolio_engine.settings import Settings

T0 = datetime(2024, 3, 1, 14, 0, tzinfo=UTC)
LAMBDA_CAUSE = json.dumps(
    {
        "errorType": "Infeasible",
        "errorMessage": "No weights satisfy max_weight=0.05 with 10 assets. Hint: Raise max_weight to at least 0.1.",
        "stackTrace": ["  File ...", "  File ..."],
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def wired(aws_env: str, data_dir: Path, request: pytest.FixtureRequest) -> tuple[AlertDispatcher, Clock, str]:
    """The dispatcher the settings describe: SNS on moto's server with a queue subscribed, SQLite store."""
    name = f"spe-alerts-failures-{abs(hash(request.node.nodeid)) % 10**8}"
    sns = boto3.client("sns", endpoint_url=aws_env, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=aws_env, region_name="us-east-1")
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    clock = Clock()
    settings = Settings(alerts_topic_arn=topic_arn, store_uri=f"sqlite:///{data_dir / 'store.db'}")
    return build_alert_dispatcher(settings, clock=clock), clock, queue_url


def _received(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-east-1")  # AWS_ENDPOINT_URL: moto's server (aws_env)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def test_a_failed_run_is_alerted_on_sns_and_in_the_local_log(wired: tuple[AlertDispatcher, Clock, str]) -> None:
    dispatcher, _, queue_url = wired

    # When the failure-recording step reports a run that failed at Optimize
    outcome = alert_run_failure(
        dispatcher,
        portfolio="core-equity",
        run_id="run-42",
        error="Infeasible",
        cause=LAMBDA_CAUSE,
        failed_state="Optimize",
    )

    # Then it was sent as one critical alert naming the run, the portfolio, the state, the error and its message
    expected = (
        "run run-42 of portfolio core-equity failed at state Optimize: "
        "Infeasible: No weights satisfy max_weight=0.05 with 10 assets."
    )
    assert outcome["status"] == "sent" and outcome["channels"]["sns"]["delivered"]
    assert outcome["alert"]["message"] == expected
    assert (outcome["alert"]["limit"], outcome["alert"]["severity"]) == (RUN_FAILED, "critical")
    assert outcome["alert"]["value"] is None and outcome["alert"]["threshold"] is None
    details = outcome["alert"]["details"]
    assert details["hint"] == "Raise max_weight to at least 0.1."
    assert (details["failed_state"], details["error"], details["cause"]) == ("Optimize", "Infeasible", LAMBDA_CAUSE)
    # And SNS carries it with attributes a subscription can filter on, and a readable subject
    (envelope,) = _received(queue_url)
    attributes = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {"severity": "critical", "portfolio": "core-equity", "limit": "run_failed"}
    assert envelope["Subject"] == "[SPE] CRITICAL core-equity: run failed at Optimize"
    assert alert_from_sns_message(envelope["Message"]).to_dict() == outcome["alert"]
    # And the local log has it
    (entry,) = dispatcher.local.entries()
    assert (entry["status"], entry["message"]) == ("sent", expected)


def test_failures_of_one_portfolio_are_de_duplicated_within_the_cool_down(
    wired: tuple[AlertDispatcher, Clock, str],
) -> None:
    dispatcher, clock, queue_url = wired

    def fail(portfolio: str, state: str, minutes: float) -> str:
        clock.now = T0 + timedelta(minutes=minutes)
        cause = "Task timed out after 300.00 seconds"  # Step Functions' own causes are plain text
        outcome = alert_run_failure(
            dispatcher,
            portfolio=portfolio,
            run_id=f"r{minutes}",
            error="States.Timeout",
            cause=cause,
            failed_state=state,
        )
        return str(outcome["status"])

    # When runs keep failing
    statuses = [fail("core", "MonteCarlo", 0), fail("core", "Optimize", 10), fail("other", "Optimize", 10)]
    statuses.append(fail("core", "Optimize", 60))  # the cool-down (3600 s) is over

    # Then a portfolio's second failure within the cool-down is logged as suppressed, not re-sent
    assert statuses == ["sent", "suppressed", "sent", "sent"]
    received = [json.loads(e["Message"]) for e in _received(queue_url)]
    assert sorted((r["portfolio"], r["run_id"]) for r in received) == [
        ("core", "r0"),
        ("core", "r60"),
        ("other", "r10"),
    ]
    assert [e["status"] for e in dispatcher.local.entries()] == statuses
    assert all(r["message"].endswith("States.Timeout: Task timed out after 300.00 seconds") for r in received)


def test_a_run_failure_is_formatted_for_slack_without_figures() -> None:
    # Given a failure whose message is long and has Slack's reserved characters
    alert = Alert.for_run_failure(
        "growth <&>", run_id="run-7", failed_state="CheckLimits", error="SpecificationError", reason="x" * 4000
    )

    # When it is formatted
    payload = slack_payload(alert)

    # Then the fields say what failed (no value or threshold), texts are escaped and within Slack's caps
    fields = [f["text"] for f in payload["blocks"][1]["fields"]]
    assert fields == [
        "*Portfolio*\ngrowth &lt;&amp;&gt;",
        "*Failed state*\n`CheckLimits`",
        "*Error*\n`SpecificationError`",
        "*Severity*\ncritical",
        "*Run*\nrun-7",
    ]
    assert payload["blocks"][0]["text"]["text"] == "CRITICAL growth <&>: run failed at CheckLimits"
    assert len(payload["text"]) <= 3000 and len(payload["blocks"][2]["text"]["text"]) <= 3000
    assert len(sns_subject(alert)) <= 100


def test_alerts_round_trip_through_their_wire_form() -> None:
    limit = Alert("core", "max_weight", 0.4, 0.35, "breach", "core: breach", run_id="r", as_of=T0, details={"a": 1})
    failure = Alert.for_run_failure("core", run_id="r", failed_state="Optimize", error="E", reason="m", as_of=T0)
    for alert in (limit, failure):
        back = Alert.from_dict(json.loads(json.dumps(alert.to_dict())))
        assert back == alert and back.details == alert.details and back.kind == alert.kind
    assert (limit.kind, failure.kind) == ("limit", "run_failure")
    assert (failure.stream_key, failure.rank) == ("core/run_failed", 3)


def test_a_limit_alert_without_figures_is_refused() -> None:
    with pytest.raises(RiskInputError, match="needs a value and a threshold"):
        Alert("core", "max_weight", None, 0.35, "breach", "core: breach")


def test_it_fits_record_failures_notify_hook_with_an_unknown_state(
    wired: tuple[AlertDispatcher, Clock, str],
) -> None:
    # Given the hook RecordFailure calls (the cause already reduced to its message, the state unknown)
    dispatcher, _, queue_url = wired
    notify = functools.partial(alert_run_failure, dispatcher)

    # When a run fails before any state is known
    outcome = notify(portfolio="core", run_id="run-9", error="States.Runtime", cause="bad input", failed_state=None)

    # Then the alert says so, and SNS carries it
    assert outcome["status"] == "sent"
    expected = "run run-9 of portfolio core failed at state (unknown): States.Runtime: bad input"
    assert outcome["alert"]["message"] == expected
    (envelope,) = _received(queue_url)
    assert envelope["Subject"] == "[SPE] CRITICAL core: run failed at ?"
