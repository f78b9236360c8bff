"""The remote alert channels and their wire formats: SNS (publish) and Slack (Block Kit over a webhook).

Light on purpose: it imports boto3, requests and the alert model only (no numpy, pandas or pyarrow), so the
``notify_slack`` function ships as a zip. :mod:`portfolio_engine.adapters.notifiers` re-exports every name.

* :class:`SnsNotifier` publishes :meth:`Alert.to_dict` as JSON with ``severity``/``portfolio``/``limit``
  message attributes (subscribers filter on them) and a subject of at most 100 ASCII characters;
  :func:`alert_from_sns_message` reads that body back.
* :class:`SlackNotifier` posts :func:`slack_payload` (Block Kit) to an incoming webhook whose URL comes from
  Secrets Manager or SSM Parameter Store (:func:`slack_webhook_url`); any answer but 2xx is a
  ``NotificationError``. The Alert step no longer calls it: the ``notify_slack`` function, subscribed to the
  alerts topic, does.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError

from portfolio_engine.exceptions import ConfigurationError, NotificationError, RiskInputError
from portfolio_engine.risk.alerts import Alert

__all__ = [
    "SlackNotifier",
    "SnsNotifier",
    "alert_from_sns_message",
    "slack_payload",
    "slack_webhook_url",
    "sns_subject",
]

_EMOJI = {"warning": ":large_yellow_circle:", "breach": ":red_circle:", "critical": ":rotating_light:"}


# ---------------------------------------------------------------------------------------------- SNS
def sns_subject(alert: Alert) -> str:
    """The SNS subject: printable ASCII, one line, at most 100 characters (SNS's limits)."""
    text = f"[SPE] {alert.title}"
    ascii_text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return ascii_text if len(ascii_text) <= 100 else ascii_text[:97] + "..."


class SnsNotifier:
    """Publish alerts to an SNS topic.

    Parameters
    ----------
    topic_arn : str
    client : botocore client, optional
        An SNS client; built from ``endpoint_url`` and ``region`` when None.
    endpoint_url : str, optional
        moto server, LocalStack; None for AWS.
    region : str, default "us-east-1"
    """

    name = "sns"

    def __init__(
        self, topic_arn: str, *, client: Any = None, endpoint_url: str | None = None, region: str = "us-east-1"
    ) -> None:
        self.topic_arn = topic_arn
        self.client = client or boto3.client("sns", endpoint_url=endpoint_url, region_name=region)

    def send(self, alert: Alert) -> str:
        """Publish ``alert`` (JSON body) and return the SNS message id.

        Raises
        ------
        NotificationError
            If SNS refuses the message or cannot be reached.
        """
        attributes: dict[str, Any] = {
            key: {"DataType": "String", "StringValue": value}
            for key, value in (("severity", alert.severity), ("portfolio", alert.portfolio), ("limit", alert.limit))
        }
        try:
            answer = self.client.publish(
                TopicArn=self.topic_arn,
                Subject=sns_subject(alert),
                Message=json.dumps(alert.to_dict(), sort_keys=True, default=str),
                MessageAttributes=attributes,
            )
        except (ClientError, BotoCoreError) as exc:
            raise NotificationError(
                f"SNS did not accept the alert {alert.dedup_key!r} for topic {self.topic_arn!r}: {exc}",
                hint="Check SPE_ALERTS_TOPIC_ARN, the region, and that this role may call sns:Publish.",
            ) from exc
        return str(answer["MessageId"])


def alert_from_sns_message(message: str) -> Alert:
    """The alert an SNS message body holds (the JSON :class:`SnsNotifier` publishes).

    Raises
    ------
    NotificationError
        If the body is not an alert's JSON form (it will not become one on a retry).
    """
    try:
        return Alert.from_dict(json.loads(message))
    except (json.JSONDecodeError, RiskInputError) as exc:
        raise NotificationError(
            f"The SNS message is not an alert: {message[:200]!r} ({exc}).",
            hint="Publish to the alerts topic only through SnsNotifier (the JSON of Alert.to_dict()).",
        ) from exc


# -------------------------------------------------------------------------------------------- Slack
def _escape(text: str) -> str:
    # Slack's mrkdwn reserves these three characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fields(alert: Alert) -> list[tuple[str, str]]:
    if alert.value is None or alert.threshold is None:  # a run failure: what failed instead of the figures
        fields = [
            ("Portfolio", alert.portfolio),
            ("Failed state", f"`{alert.details.get('failed_state') or '?'}`"),
            ("Error", f"`{alert.details.get('error', '?')}`"),
            ("Severity", alert.severity),
        ]
    else:
        fields = [
            ("Portfolio", alert.portfolio),
            ("Limit", f"`{alert.limit}`"),
            ("Value", f"{alert.value:.6g}"),
            ("Threshold", f"{alert.threshold:.6g}"),
            ("Severity", alert.severity),
        ]
    if alert.run_id:
        fields.append(("Run", alert.run_id))
    return fields


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The Block Kit message of an alert: a header, the figures (or what failed) as fields, the message, a context.

    Slack caps a header at 150 characters and a text object at 3,000: longer texts are cut.
    """
    fields = _fields(alert)
    context = f"dedup key `{_escape(alert.dedup_key)}`"
    if alert.as_of is not None:
        context += f" | as of {alert.as_of.isoformat()}"
    return {
        "text": _escape(alert.message)[:3000],  # the fallback shown in notifications
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150], "emoji": True}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{_escape(value)}"} for label, value in fields],
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"{_EMOJI[alert.severity]} {_escape(alert.message)}"[:3000]},
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def slack_webhook_url(
    *,
    secret_id: str | None = None,
    ssm_parameter: str | None = None,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> str:
    """The Slack webhook URL stored in Secrets Manager (bare, or JSON with ``url``/``webhook_url``) or SSM.

    Raises
    ------
    ConfigurationError
        If neither is named, the secret or parameter cannot be read, or it does not hold an https URL.
    """
    if secret_id:
        secrets = boto3.client("secretsmanager", endpoint_url=endpoint_url, region_name=region)
        where = f"secret {secret_id!r}"
        try:
            stored = secrets.get_secret_value(SecretId=secret_id)["SecretString"]
        except (ClientError, BotoCoreError, KeyError) as exc:
            raise ConfigurationError(
                f"Cannot read the Slack webhook from {where}: {exc}",
                hint="Check the secret exists and this role may call secretsmanager:GetSecretValue.",
            ) from exc
        try:
            document = json.loads(stored)
        except json.JSONDecodeError:
            document = stored
        if isinstance(document, dict):
            document = document.get("webhook_url") or document.get("url") or ""
    elif ssm_parameter:
        ssm = boto3.client("ssm", endpoint_url=endpoint_url, region_name=region)
        where = f"SSM parameter {ssm_parameter!r}"
        try:
            document = ssm.get_parameter(Name=ssm_parameter, WithDecryption=True)["Parameter"]["Value"]
        except (ClientError, BotoCoreError, KeyError) as exc:
            raise ConfigurationError(
                f"Cannot read the Slack webhook from {where}: {exc}",
                hint="Check the parameter exists and this role may call ssm:GetParameter (and kms:Decrypt).",
            ) from exc
    else:
        raise ConfigurationError(
            "No Slack webhook configured.",
            hint="Set SPE_SLACK_WEBHOOK_SECRET_ID (Secrets Manager) or SPE_SLACK_WEBHOOK_SSM_PARAMETER (SSM).",
        )
    url = str(document).strip()
    if not url.startswith("https://"):
        raise ConfigurationError(
            f"{where} does not hold an https URL (it starts {url[:12]!r}).",
            hint='Store the incoming-webhook URL itself, or JSON {"url": "https://hooks.slack.com/services/..."}.',
        )
    return url


class SlackNotifier:
    """Post alerts to a Slack incoming webhook (Block Kit).

    Parameters
    ----------
    webhook_url : str
        The incoming webhook's URL (see :func:`slack_webhook_url`).
    timeout : float, default 5.0
        Seconds to wait for Slack (connect and read).
    session : requests.Session, optional
    """

    name = "slack"

    def __init__(self, webhook_url: str, *, timeout: float = 5.0, session: requests.Session | None = None) -> None:
        self.webhook_url = webhook_url
        self.timeout = timeout
        self.session = session or requests.Session()

    def send(self, alert: Alert) -> str:
        """Post ``alert``; returns Slack's answer (``"ok"``).

        Raises
        ------
        NotificationError
            On a network error or any status but 2xx (Slack names the problem in the body:
            ``invalid_payload``, ``no_service``, ``channel_is_archived``, ...).
        """
        try:
            answer = self.session.post(self.webhook_url, json=slack_payload(alert), timeout=self.timeout)
        except requests.RequestException as exc:
            raise NotificationError(
                f"Slack could not be reached for alert {alert.dedup_key!r}: {type(exc).__name__}: {exc}",
                hint="Check the network and the webhook URL; the alert is kept in the local log.",
            ) from exc
        if not 200 <= answer.status_code < 300:
            raise NotificationError(
                f"Slack refused alert {alert.dedup_key!r}: HTTP {answer.status_code} {answer.text[:200]!r}.",
                hint="400 invalid_payload: a block is malformed; 403/404/410: the webhook was revoked or its "
                "channel archived (store a new URL in the secret); 5xx: retry later.",
            )
        return answer.text or "ok"
