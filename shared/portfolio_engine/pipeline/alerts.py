"""Alert: warnings and breaches sent through the configured notifiers, de-duplicated with a cool-down.

Its own module: the Alert function's cold start imports only the alert model, not the optimizer and
simulation stack the other risk steps need.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from portfolio_engine.contracts.risk import AlertInput, AlertOutput
from portfolio_engine.risk.alerts import alerts_from_breaches
from portfolio_engine.risk.limits import Breach


def send_alerts(task: AlertInput, *, dispatcher: Any) -> AlertOutput:
    """Turn the breaches into alerts and dispatch them (warnings included); count the outcomes."""
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
