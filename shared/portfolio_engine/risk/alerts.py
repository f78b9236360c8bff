"""The alert a limit evaluation or a failed run raises: plain data, the same for every notifier (SNS, Slack, a log).

Two kinds share one model: a limit at or above its warning band (:meth:`Alert.from_breach`), and a failed run
(:meth:`Alert.for_run_failure`: the limit is :data:`RUN_FAILED`, the severity ``critical``, no value or
threshold). De-duplication works on :attr:`Alert.dedup_key` ``portfolio/limit/severity``: a notifier's state
store remembers when each key was last sent; :attr:`Alert.stream_key` ``portfolio/limit`` groups the severities
of one limit so that an escalation (``warning`` -> ``breach`` -> ``critical``) is recognised, and a portfolio's
failed runs are one stream of their own (``portfolio/run_failed``).

:meth:`Alert.to_dict` is the wire form (the SNS message body, a line of the local log);
:meth:`Alert.from_dict` reads it back (the Slack subscriber).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk.limits import SEVERITY_RANK, Breach, Severity

__all__ = ["RUN_FAILED", "Alert", "AlertKind", "alerts_from_breaches"]

RUN_FAILED = "run_failed"
"""The ``limit`` of a run-failure alert (SNS subscribers can filter on the ``limit`` attribute)."""

AlertKind = Literal["limit", "run_failure"]


@dataclass(frozen=True)
class Alert:
    """One limit of one portfolio at or above its warning band, or one failed run of a portfolio.

    Attributes
    ----------
    portfolio : str
        The portfolio's name (its specification's ``name``).
    limit : str
        The limit's name (``"max_cvar_99_10d"``), or :data:`RUN_FAILED`.
    value : float or None
        The measured value, in the limit's units; None for a run failure.
    threshold : float or None
        The limit; None for a run failure.
    severity : {"warning", "breach", "critical"}
        See :mod:`portfolio_engine.risk.limits`.
    message : str
        One human-readable line naming the portfolio, the limit, the value and the threshold.
    run_id : str or None
        The run that measured it, if any.
    as_of : datetime or None
        When the value was measured (the bar's time), if known.
    details : dict
        Anything else worth showing (a hedge proposal's summary; a failure's state, error and cause);
        JSON-ready values only.

    Raises
    ------
    RiskInputError
        If the severity is unknown, the portfolio or limit is empty, or a limit alert lacks its value or threshold.
    """

    portfolio: str
    limit: str
    value: float | None
    threshold: float | None
    severity: Severity
    message: str
    run_id: str | None = None
    as_of: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise RiskInputError(
                f"Alert severity must be one of {list(SEVERITY_RANK)}; got {self.severity!r}.",
                hint="Build alerts from breaches (alerts_from_breaches).",
            )
        if not self.portfolio or not self.limit:
            raise RiskInputError(
                f"An alert needs a portfolio and a limit; got portfolio={self.portfolio!r}, limit={self.limit!r}.",
                hint="Name the portfolio (its specification's name) and the limit.",
            )
        if self.kind == "limit" and (self.value is None or self.threshold is None):
            raise RiskInputError(
                f"The alert of limit {self.limit!r} needs a value and a threshold; got {self.value!r} and "
                f"{self.threshold!r}.",
                hint="Build limit alerts from breaches (Alert.from_breach); only run failures have neither.",
            )

    @property
    def kind(self) -> AlertKind:
        """``"run_failure"`` for a failed run (:data:`RUN_FAILED`), else ``"limit"``."""
        return "run_failure" if self.limit == RUN_FAILED else "limit"

    @property
    def rank(self) -> int:
        """Severity as a number: 1 warning, 2 breach, 3 critical."""
        return SEVERITY_RANK[self.severity]

    @property
    def dedup_key(self) -> str:
        """``portfolio/limit/severity``: alerts with the same key are duplicates within a cool-down."""
        return f"{self.portfolio}/{self.limit}/{self.severity}"

    @property
    def stream_key(self) -> str:
        """``portfolio/limit``: the key under which a notifier's state remembers the last alert sent."""
        return f"{self.portfolio}/{self.limit}"

    @property
    def title(self) -> str:
        """A short title: ``"CRITICAL core: max_var_95_1d"``, ``"CRITICAL core: run failed at Optimize"``."""
        if self.kind == "run_failure":
            return f"{self.severity.upper()} {self.portfolio}: run failed at {self.details.get('failed_state') or '?'}"
        return f"{self.severity.upper()} {self.portfolio}: {self.limit}"

    @classmethod
    def from_breach(
        cls,
        portfolio: str,
        breach: Breach,
        *,
        run_id: str | None = None,
        as_of: datetime | None = None,
        details: dict[str, Any] | None = None,
    ) -> Alert:
        """The alert of one breach of ``portfolio``."""
        return cls(
            portfolio=portfolio,
            limit=breach.limit,
            value=float(breach.value),
            threshold=float(breach.threshold),
            severity=breach.severity,
            message=f"{portfolio}: {breach.message}",
            run_id=run_id,
            as_of=as_of,
            details=dict(details or {}),
        )

    @classmethod
    def for_run_failure(
        cls,
        portfolio: str,
        *,
        run_id: str,
        failed_state: str | None,
        error: str,
        reason: str,
        as_of: datetime | None = None,
        details: dict[str, Any] | None = None,
    ) -> Alert:
        """The critical alert of a failed run: "run X of portfolio P failed at state S: ErrorName: reason".

        Parameters
        ----------
        portfolio, run_id : str
        failed_state : str or None
            The state machine state that failed (``"Optimize"``); None when unknown (shown as ``(unknown)``).
        error : str
            The error's name (Lambda's ``errorType``, e.g. ``"Infeasible"``, or ``"States.Timeout"``).
        reason : str
            The error's message, one line.
        as_of : datetime, optional
            When the run failed.
        details : dict, optional
            More to keep with the alert (the full cause); ``failed_state`` and ``error`` are added.
        """
        return cls(
            portfolio=portfolio,
            limit=RUN_FAILED,
            value=None,
            threshold=None,
            severity="critical",
            message=f"run {run_id} of portfolio {portfolio} failed at state {failed_state or '(unknown)'}: "
            f"{error}: {reason}",
            run_id=run_id,
            as_of=as_of,
            details={**(details or {}), "failed_state": failed_state, "error": error},
        )

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Alert:
        """The alert of its :meth:`to_dict` form (``dedup_key`` and unknown keys are ignored).

        Raises
        ------
        RiskInputError
            If ``document`` is not an alert's JSON form.
        """
        try:
            as_of = document.get("as_of")
            return cls(
                portfolio=str(document["portfolio"]),
                limit=str(document["limit"]),
                value=None if document.get("value") is None else float(document["value"]),
                threshold=None if document.get("threshold") is None else float(document["threshold"]),
                severity=document["severity"],
                message=str(document["message"]),
                run_id=None if document.get("run_id") is None else str(document["run_id"]),
                as_of=datetime.fromisoformat(as_of) if as_of else None,
                details=dict(document.get("details") or {}),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RiskInputError(
                f"Not an alert document ({type(exc).__name__}: {exc}): {str(document)[:200]!r}.",
                hint="Publish alerts with Alert.to_dict() as the JSON body (SnsNotifier does).",
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the SNS message body and the local log hold)."""
        return {
            "portfolio": self.portfolio,
            "limit": self.limit,
            "value": None if self.value is None else float(self.value),
            "threshold": None if self.threshold is None else float(self.threshold),
            "severity": self.severity,
            "message": self.message,
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat() if self.as_of is not None else None,
            "dedup_key": self.dedup_key,
            "details": self.details,
        }


def alerts_from_breaches(
    portfolio: str,
    breaches: Iterable[Breach],
    *,
    min_severity: Severity = "breach",
    run_id: str | None = None,
    as_of: datetime | None = None,
) -> list[Alert]:
    """Alerts for the breaches of ``portfolio`` at or above ``min_severity`` (warnings are dropped by default).

    Raises
    ------
    RiskInputError
        If ``min_severity`` is not a severity.
    """
    if min_severity not in SEVERITY_RANK:
        raise RiskInputError(
            f"min_severity must be one of {list(SEVERITY_RANK)}; got {min_severity!r}.", hint="Use 'breach'."
        )
    floor = SEVERITY_RANK[min_severity]
    return [
        Alert.from_breach(portfolio, b, run_id=run_id, as_of=as_of)
        for b in breaches
        if SEVERITY_RANK[b.severity] >= floor
    ]
