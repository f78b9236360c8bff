"""Alert notifiers: SNS, a local log, their fan-out, and de-duplication with a cool-down.

* :class:`SnsNotifier` (in :mod:`~portfolio_engine.adapters.alert_channels`, re-exported here) publishes the
  alert as JSON with ``severity``/``portfolio``/``limit`` message attributes (subscribers filter on them).
* :class:`LocalLogNotifier` logs a structured record and appends it to a JSONL file.
* :class:`AlertDispatcher` fans an alert out to every channel, reports each channel's outcome, always writes
  the local log (so an alert is never lost when a channel fails), and drops duplicates: the same
  ``portfolio/limit`` is not re-sent within the cool-down unless its severity escalates. A claim whose every
  remote delivery failed is released, so the next evaluation tries again.

The Alert step publishes to SNS only (:func:`build_alert_dispatcher`); Slack is a subscriber of the topic
(``functions/notify_slack``, which posts :func:`slack_payload` through :class:`SlackNotifier`, both re-exported
here). The de-duplication state sits behind :class:`~portfolio_engine.ports.AlertStateStore`: the store of
record (:func:`~portfolio_engine.adapters.store.build_store`: SQLite under the data directory, DynamoDB on AWS,
both claiming atomically), or memory (``adapters.alert_state``) for tests and one-off monitors.
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

from portfolio_engine.adapters.alert_channels import (
    SlackNotifier,
    SnsNotifier,
    alert_from_sns_message,
    slack_payload,
    slack_webhook_url,
    sns_subject,
)
from portfolio_engine.adapters.alert_state import MemoryAlertStateStore
from portfolio_engine.adapters.store import build_store
from portfolio_engine.exceptions import ConfigurationError, NotificationError
from portfolio_engine.ports import AlertStateStore, Notifier
from portfolio_engine.risk.alerts import Alert
from portfolio_engine.settings import Settings

__all__ = [
    "AlertDispatcher",
    "ChannelOutcome",
    "DispatchOutcome",
    "LocalLogNotifier",
    "MemoryAlertStateStore",
    "SlackNotifier",
    "SnsNotifier",
    "alert_from_sns_message",
    "build_alert_dispatcher",
    "slack_payload",
    "slack_webhook_url",
    "sns_subject",
]

logger = logging.getLogger(__name__)
_LOG_LEVELS = {"warning": logging.WARNING, "breach": logging.ERROR, "critical": logging.CRITICAL}


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
        Remote channels (SNS), tried in order; one failing does not stop the others.
    local : LocalLogNotifier
        Records every alert, its status and each channel's outcome, whatever happens.
    store : AlertStateStore
        De-duplication state (the store of record, or memory).
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
    settings: Settings,
    *,
    store: AlertStateStore | None = None,
    lake: object | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> AlertDispatcher:
    """The dispatcher the settings describe: SNS when ``SPE_ALERTS_TOPIC_ARN`` is set, the local log always.

    Slack is not a channel of this dispatcher: ``functions/notify_slack`` posts what the topic receives.

    Parameters
    ----------
    settings : Settings
    store : AlertStateStore, optional
        The cool-down state; the store of record the settings name (``build_store``) when None.
    lake : object, optional
        Ignored: the cool-down state moved from the lake to the store of record. Accepted until every caller
        stops passing it.
    clock : callable returning an aware datetime, optional

    Raises
    ------
    ConfigurationError
        If the store URI is not one the engine knows.
    """
    del lake  # see the docstring
    channels: list[Notifier] = []
    if settings.alerts_topic_arn:
        channels.append(
            SnsNotifier(settings.alerts_topic_arn, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region)
        )
    return AlertDispatcher(
        channels,
        local=LocalLogNotifier(settings.data_dir / "alerts" / "alerts.jsonl"),
        store=store if store is not None else build_store(settings),
        cooldown_seconds=settings.alert_cooldown_seconds,
        clock=clock,
    )
