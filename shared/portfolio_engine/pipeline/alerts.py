"""Alert: warnings, breaches and failed runs sent through the alert dispatcher, de-duplicated with a cool-down.

Its own module: the Alert function's cold start imports only the alert model, not the optimizer and
simulation stack the other risk steps need. Two use cases share the dispatcher (SNS and the local log,
cool-down state in the store of record):

* :func:`send_alerts`, the Alert step: the warnings and breaches of a limit check;
* :func:`alert_run_failure`, for the failure-recording step: "run X of portfolio P failed at state S:
  ErrorName: message", one critical alert per portfolio within the cool-down.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from portfolio_engine.risk.alerts import Alert, alerts_from_breaches
from portfolio_engine.risk.limits import Breach

if TYPE_CHECKING:
    from portfolio_engine.contracts.risk import AlertInput, AlertOutput

__all__ = ["AlertDispatch", "DispatchResult", "alert_run_failure", "send_alerts"]

_MAX_REASON = 500  # characters of the error message in the alert's one line
_MAX_CAUSE = 4000  # characters of the raw cause kept in the alert's details


class DispatchResult(Protocol):
    """What a dispatcher reports for one alert (``adapters.notifiers.DispatchOutcome``)."""

    @property
    def status(self) -> str:
        """``"sent"``, ``"failed"`` or ``"suppressed"``."""
        ...

    def to_dict(self) -> dict[str, Any]: ...


class AlertDispatch(Protocol):
    """Sends an alert through every channel unless it is a duplicate (``adapters.notifiers.AlertDispatcher``)."""

    def dispatch(self, alert: Alert) -> DispatchResult: ...


def send_alerts(task: AlertInput, *, dispatcher: AlertDispatch) -> AlertOutput:
    """Turn the breaches into alerts and dispatch them (warnings included); count the outcomes."""
    # Imported here: the contracts pull in pandas, which the failure alert's callers need not load.
    from portfolio_engine.contracts.risk import AlertOutput

    breaches = [Breach(**{k: b[k] for k in ("limit", "value", "threshold", "severity")}) for b in task.limits.breaches]
    details = {"hedge": task.hedge.chosen, "hedge_message": task.hedge.message} if task.hedge else {}
    alerts = [
        dataclasses.replace(alert, details={**alert.details, **details})
        for alert in alerts_from_breaches(task.limits.portfolio, breaches, min_severity="warning", run_id=task.run_id)
    ]
    outcomes = [dispatcher.dispatch(alert) for alert in alerts]
    counts = {status: sum(o.status == status for o in outcomes) for status in ("sent", "suppressed", "failed")}
    return AlertOutput(
        run_id=task.run_id,
        sent=counts["sent"],
        suppressed=counts["suppressed"],
        failed=counts["failed"],
        outcomes=[o.to_dict() for o in outcomes],
    )


def _failure_reason(cause: str) -> tuple[str, str | None]:
    """The one-line message and the hint of a failed state's ``Cause``.

    ``cause`` is Lambda's error payload as JSON (``errorType``, ``errorMessage``; an engine error's message
    ends in ``Hint: ...``) or plain text (errors raised by Step Functions itself, ``States.Timeout``).
    """
    try:
        document = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        document = None
    message = str(document.get("errorMessage", cause)) if isinstance(document, dict) else str(cause)
    message, _, hint = message.partition(" Hint: ")
    message = " ".join(message.split()) or "(no message)"
    if len(message) > _MAX_REASON:
        message = message[: _MAX_REASON - 3] + "..."
    return message, hint.strip() or None


def alert_run_failure(
    dispatcher: AlertDispatch,
    *,
    portfolio: str,
    run_id: str,
    error: str,
    cause: str,
    failed_state: str | None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Alert that a run failed: "run X of portfolio P failed at state S: ErrorName: message" (critical).

    The alert goes through the dispatcher like a limit's (SNS when configured, the local log always) with the
    limit ``run_failed``, so a portfolio's failures are de-duplicated on ``<portfolio>/run_failed``: a second
    failure within the cool-down is logged as suppressed, not re-sent.

    Parameters
    ----------
    dispatcher : AlertDispatch
        ``adapters.notifiers.build_alert_dispatcher(settings)``.
    portfolio : str
        What the run worked on (a portfolio; for other machines, the subject of their stream).
    run_id : str
    error : str
        The error's name, as the state machine's ``Catch`` reports it (``Error``: ``"Infeasible"``,
        ``"States.Timeout"``).
    cause : str
        The ``Cause``: Lambda's error payload as JSON, or its message alone, or Step Functions' text. The
        message is shown (cut at 500 characters); its ``Hint:`` and the raw cause (cut at 4,000) are kept in
        the alert's details.
    failed_state : str or None
        The state that failed (``"Optimize"``); None when unknown.
    as_of : datetime, optional
        When the run failed.

    Returns
    -------
    dict
        The dispatch outcome: ``{"alert": {...}, "status": "sent" | "failed" | "suppressed", "channels": {...}}``.

    Raises
    ------
    StoreError
        If the cool-down state cannot be read or written (a channel's failure never raises: it is reported).
    """
    reason, hint = _failure_reason(cause)
    details: dict[str, Any] = {"cause": cause[:_MAX_CAUSE]}
    if hint:
        details["hint"] = hint
    alert = Alert.for_run_failure(
        portfolio, run_id=run_id, failed_state=failed_state, error=error, reason=reason, as_of=as_of, details=details
    )
    return dispatcher.dispatch(alert).to_dict()
