"""The alert a limit evaluation raises: plain data, the same for every notifier (SNS, Slack, a local log).

De-duplication works on :attr:`Alert.dedup_key` ``portfolio/limit/severity``: a notifier's state store
remembers when each key was last sent; :attr:`Alert.stream_key` ``portfolio/limit`` groups the severities
of one limit so that an escalation (``warning`` -> ``breach`` -> ``critical``) is recognised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk.limits import SEVERITY_RANK, Breach, Severity

__all__ = ["Alert", "alerts_from_breaches"]


@dataclass(frozen=True)
class Alert:
    """One limit of one portfolio at or above its warning band.

    Attributes
    ----------
    portfolio : str
        The portfolio's name (its specification's ``name``).
    limit : str
        The limit's name (``"max_cvar_99_10d"``).
    value : float
        The measured value, in the limit's units.
    threshold : float
        The limit.
    severity : {"warning", "breach", "critical"}
        See :mod:`portfolio_engine.risk.limits`.
    message : str
        One human-readable line naming the portfolio, the limit, the value and the threshold.
    run_id : str or None
        The run that measured it, if any.
    as_of : datetime or None
        When the value was measured (the bar's time), if known.
    details : dict
        Anything else worth showing (a hedge proposal's summary); JSON-ready values only.
    """

    portfolio: str
    limit: str
    value: float
    threshold: float
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
        """A short title, e.g. ``"CRITICAL core-equity: max_var_95_1d"``."""
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the SNS message body and the local log hold)."""
        return {
            "portfolio": self.portfolio,
            "limit": self.limit,
            "value": float(self.value),
            "threshold": float(self.threshold),
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
