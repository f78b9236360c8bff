"""Alert notifiers (SNS, Slack, a local log), their fan-out, and de-duplication with a cool-down.

* :class:`SnsNotifier` publishes the alert as JSON with ``severity``/``portfolio``/``limit`` message
  attributes (subscribers filter on them) and a subject of at most 100 ASCII characters.
* :class:`SlackNotifier` posts a Block Kit message to an incoming webhook whose URL comes from Secrets
  Manager or SSM Parameter Store (:func:`slack_webhook_url`); any answer but 2xx is a ``NotificationError``.
* :class:`LocalLogNotifier` logs a structured record and appends it to a JSONL file.
* :class:`AlertDispatcher` fans an alert out to every channel, reports each channel's outcome, always writes
  the local log (so an alert is never lost when a channel fails), and drops duplicates: the same
  ``portfolio/limit`` is not re-sent within the cool-down unless its severity escalates. A claim whose every
  remote delivery failed is released, so the next evaluation tries again.

The de-duplication state sits behind :class:`~portfolio_engine.ports.AlertStateStore`: in memory, or one JSON
document in the lake (``adapters.alert_state``, re-exported here). Where several writers share it (Lambda), a
DynamoDB table keyed on ``portfolio/limit`` with conditional writes is the natural store (see that module).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError

from portfolio_engine.adapters.alert_state import LakeAlertStateStore, MemoryAlertStateStore
from portfolio_engine.exceptions import ConfigurationError, NotificationError
from portfolio_engine.ports import AlertStateStore, Lake, Notifier
from portfolio_engine.risk.alerts import Alert
from portfolio_engine.settings import Settings

__all__ = [
    "AlertDispatcher",
    "ChannelOutcome",
    "DispatchOutcome",
    "LakeAlertStateStore",
    "LocalLogNotifier",
    "MemoryAlertStateStore",
    "SlackNotifier",
    "SnsNotifier",
    "build_alert_dispatcher",
    "slack_payload",
    "slack_webhook_url",
    "sns_subject",
]

logger = logging.getLogger(__name__)
_LOG_LEVELS = {"warning": logging.WARNING, "breach": logging.ERROR, "critical": logging.CRITICAL}
_EMOJI = {"warning": ":large_yellow_circle:", "breach": ":red_circle:", "critical": ":rotating_light:"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


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


# -------------------------------------------------------------------------------------------- Slack
def _escape(text: str) -> str:
    # Slack's mrkdwn reserves these three characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The Block Kit message of an alert: a header, the figures as fields, the message, and a context line."""
    fields = [
        ("Portfolio", alert.portfolio),
        ("Limit", f"`{alert.limit}`"),
        ("Value", f"{alert.value:.6g}"),
        ("Threshold", f"{alert.threshold:.6g}"),
        ("Severity", alert.severity),
    ]
    if alert.run_id:
        fields.append(("Run", alert.run_id))
    context = f"dedup key `{_escape(alert.dedup_key)}`"
    if alert.as_of is not None:
        context += f" | as of {alert.as_of.isoformat()}"
    return {
        "text": _escape(alert.message),  # the fallback shown in notifications
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150], "emoji": True}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{_escape(value)}"} for label, value in fields],
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"{_EMOJI[alert.severity]} {_escape(alert.message)}"},
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


# ---------------------------------------------------------------------------------------- local log
class LocalLogNotifier:
    """Log alerts (structured, through :mod:`logging`) and append them to a JSONL file.

    Parameters
    ----------
    path : Path
        The JSONL file (e.g. ``<data_dir>/alerts/alerts.jsonl``); its folder is created on first write.
    """

    name = "local"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, alert: Alert, *, status: str, channels: dict[str, Any] | None = None) -> str:
        """Log and append one record: the alert, a ``status`` and each channel's outcome. Returns the path."""
        entry = {**alert.to_dict(), "status": status, "channels": channels or {}, "recorded_at": _utcnow().isoformat()}
        level = logging.INFO if status == "suppressed" else _LOG_LEVELS[alert.severity]  # duplicates stay quiet
        logger.log(level, "risk alert %s: %s", status, alert.message, extra={"alert": entry})
        line = json.dumps(entry, sort_keys=True, default=str)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        return str(self.path)

    def send(self, alert: Alert) -> str:
        return self.record(alert, status="sent")

    def entries(self) -> list[dict[str, Any]]:
        """Every record written so far (oldest first)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------- dispatcher
@dataclass(frozen=True)
class ChannelOutcome:
    """How one channel handled one alert: a receipt when delivered, else the error's message."""

    channel: str
    delivered: bool
    receipt: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "receipt": self.receipt, "error": self.error}


@dataclass(frozen=True)
class DispatchOutcome:
    """What happened to one alert.

    ``status`` is ``"sent"`` (at least one remote channel delivered it, or there are none), ``"failed"``
    (every remote channel failed; it is in the local log and the next evaluation will try again) or
    ``"suppressed"`` (a duplicate within the cool-down).
    """

    alert: Alert
    status: Literal["sent", "failed", "suppressed"]
    channels: tuple[ChannelOutcome, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert.to_dict(),
            "status": self.status,
            "channels": {c.channel: c.to_dict() for c in self.channels},
        }


class AlertDispatcher:
    """Fan alerts out to several notifiers, with de-duplication and a cool-down (see the module docstring).

    Parameters
    ----------
    channels : sequence of Notifier
        Remote channels (SNS, Slack), tried in order; one failing does not stop the others.
    local : LocalLogNotifier
        Records every alert, its status and each channel's outcome, whatever happens.
    store : AlertStateStore
        De-duplication state.
    cooldown_seconds : float, default 3600
        An alert of the same portfolio and limit, not more severe, is suppressed for this long after one sent.
    clock : callable returning an aware datetime, optional
        Injected for tests; UTC now by default.
    """

    def __init__(
        self,
        channels: Sequence[Notifier],
        *,
        local: LocalLogNotifier,
        store: AlertStateStore,
        cooldown_seconds: float = 3600.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if cooldown_seconds < 0:
            raise ConfigurationError(
                f"cooldown_seconds must be >= 0; got {cooldown_seconds!r}.", hint="Use 0 to send every alert."
            )
        self.channels = list(channels)
        self.local = local
        self.store = store
        self.cooldown = timedelta(seconds=cooldown_seconds)
        self.clock = clock

    def dispatch(self, alert: Alert) -> DispatchOutcome:
        """Send ``alert`` unless it is a duplicate; never raises for a channel's failure."""
        now = self.clock()
        if not self.store.claim(alert.stream_key, rank=alert.rank, now=now, cooldown=self.cooldown):
            self.local.record(alert, status="suppressed")
            return DispatchOutcome(alert, "suppressed")
        outcomes = []
        for channel in self.channels:
            try:
                outcomes.append(ChannelOutcome(channel.name, True, receipt=channel.send(alert)))
            except NotificationError as exc:
                logger.warning("alert channel %s failed: %s", channel.name, exc, extra={"alert": alert.dedup_key})
                outcomes.append(ChannelOutcome(channel.name, False, error=exc.message))
        status: Literal["sent", "failed"] = "sent" if not outcomes or any(o.delivered for o in outcomes) else "failed"
        if status == "failed":
            self.store.release(alert.stream_key, sent_at=now)
        self.local.record(alert, status=status, channels={o.channel: o.to_dict() for o in outcomes})
        return DispatchOutcome(alert, status, tuple(outcomes))

    def dispatch_all(self, alerts: Sequence[Alert]) -> list[DispatchOutcome]:
        """:meth:`dispatch` each alert in turn."""
        return [self.dispatch(alert) for alert in alerts]


def build_alert_dispatcher(
    settings: Settings, *, lake: Lake | None = None, clock: Callable[[], datetime] = _utcnow
) -> AlertDispatcher:
    """The dispatcher the settings describe: SNS and Slack when configured, the local log always.

    The log is ``<data_dir>/alerts/alerts.jsonl``; de-duplication state lives in ``lake`` when given
    (``alerts/state.json``), else in memory.

    Raises
    ------
    ConfigurationError
        If the Slack webhook is configured but cannot be read.
    """
    channels: list[Notifier] = []
    if settings.alerts_topic_arn:
        channels.append(
            SnsNotifier(settings.alerts_topic_arn, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region)
        )
    if settings.slack_webhook_secret_id or settings.slack_webhook_ssm_parameter:
        url = slack_webhook_url(
            secret_id=settings.slack_webhook_secret_id,
            ssm_parameter=settings.slack_webhook_ssm_parameter,
            endpoint_url=settings.aws_endpoint_url,
            region=settings.aws_region,
        )
        channels.append(SlackNotifier(url))
    store: AlertStateStore = LakeAlertStateStore(lake) if lake is not None else MemoryAlertStateStore()
    return AlertDispatcher(
        channels,
        local=LocalLogNotifier(settings.data_dir / "alerts" / "alerts.jsonl"),
        store=store,
        cooldown_seconds=settings.alert_cooldown_seconds,
        clock=clock,
    )
