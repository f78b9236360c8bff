"""What validation reports: its issues, the report that accounts for every change, the result.

An :class:`Issue` is a check's finding for a symbol and what the policy did about it; the
:class:`ValidationReport` accounts for every change to the input; :class:`ValidationResult` pairs it with the bars.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from portfolio_engine.data import _findings

__all__ = ["Action", "Issue", "Severity", "ValidationReport", "ValidationResult"]

Severity = Literal["error", "warning"]
Action = Literal["none", "forward_filled", "quarantined", "dropped"]


def _iso(value: pd.Timestamp | None) -> str | None:
    if value is None:
        return None
    return value.date().isoformat() if value == value.normalize() else value.isoformat()


@dataclass(frozen=True)
class Issue:
    """One check's finding for one symbol (or for the whole table when ``symbol`` is None).

    Attributes
    ----------
    check : str
        Check name, one of ``CHECKS``.
    symbol : str or None
        Affected symbol; None for table-level issues (schema, rows without a key).
    severity : {"error", "warning"}
    count : int
        Offending bars (for ``calendar_gap``: missing sessions, or dates without a calendar; for
        ``missing_symbol``: 1).
    first_date, last_date : Timestamp or None
        First and last offending bar.
    detail : str
        What was seen, in words.
    action : {"none", "forward_filled", "quarantined", "dropped"}
        What the policy did about it: ``"dropped"`` for rows without a key under quarantine and
        for off-calendar bars under forward_fill. An error with action "none" is unresolved.
    """

    check: str
    symbol: str | None
    severity: Severity
    count: int
    first_date: pd.Timestamp | None
    last_date: pd.Timestamp | None
    detail: str = ""
    action: Action = "none"

    @property
    def unresolved(self) -> bool:
        return self.severity == "error" and self.action == "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "symbol": self.symbol,
            "severity": self.severity,
            "count": int(self.count),
            "first_date": _iso(self.first_date),
            "last_date": _iso(self.last_date),
            "detail": self.detail,
            "action": self.action,
        }


@dataclass(frozen=True)
class ValidationReport:
    """Everything validation found and did.

    Attributes
    ----------
    mode : str
        The policy's mode.
    issues : tuple of Issue
        In check order, then symbol order.
    symbol_status : dict of str to str
        Per symbol: ``"quarantined"``, ``"error"`` (unresolved), ``"filled"`` (repaired: prices or
        bars forward-filled, off-calendar bars dropped; maybe with warnings), ``"warning"`` or ``"ok"``.
    changes : dict of str to int
        Every change made to the table: ``forward_filled`` (price cells), ``rows_inserted``,
        ``rows_dropped`` (rows without a key, off-calendar bars dropped under ``forward_fill``, the
        input rows of quarantined symbols), ``symbols_quarantined``, ``duplicates_dropped``,
        ``columns_coerced``, ``columns_added``, ``columns_dropped``. Always
        ``n_rows_out = n_rows_in - duplicates_dropped - rows_dropped + rows_inserted``.
    quarantined : tuple of str
        Symbols removed from the cleaned table.
    n_rows_in, n_rows_out : int
        Rows received and rows returned.
    policy : dict
        The policy, as JSON.
    """

    mode: str
    issues: tuple[Issue, ...]
    symbol_status: dict[str, str]
    changes: dict[str, int]
    quarantined: tuple[str, ...]
    n_rows_in: int
    n_rows_out: int
    policy: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when no error is left unresolved (warnings never fail validation)."""
        return not any(issue.unresolved for issue in self.issues)

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def n_errors(self) -> int:
        """Error issues found, whatever the policy did about them."""
        return len(self.errors)

    @property
    def n_warnings(self) -> int:
        return len(self.warnings)

    @property
    def forward_filled(self) -> int:
        """Price cells filled forward in the cleaned table."""
        return int(self.changes.get("forward_filled", 0))

    def issues_for(
        self, check: str | None = None, *, symbol: str | None = None, severity: str | None = None
    ) -> tuple[Issue, ...]:
        """Issues filtered by check, symbol and severity (None: any)."""
        return tuple(
            i
            for i in self.issues
            if (check is None or i.check == check)
            and (symbol is None or i.symbol == symbol)
            and (severity is None or i.severity == severity)
        )

    def count(self, check: str, *, severity: str | None = None, action: str | None = None) -> int:
        """Total offending bars of one check (summed over symbols)."""
        return sum(i.count for i in self.issues_for(check, severity=severity) if action is None or i.action == action)

    def summary(self) -> str:
        """One line: verdict, error and warning counts by check, quarantined symbols."""

        def by_check(issues: Iterable[Issue]) -> str:
            counts: dict[str, int] = {}
            for issue in issues:
                counts[issue.check] = counts.get(issue.check, 0) + 1
            return ", ".join(f"{check} x{n}" for check, n in counts.items()) or "none"

        verdict = "passed" if self.passed else "failed"
        unresolved = [i for i in self.issues if i.unresolved]
        text = (
            f"{verdict} ({self.mode}): {len(unresolved)} unresolved error issue(s) [{by_check(unresolved)}], "
            f"{self.n_errors} error issue(s), {self.n_warnings} warning issue(s) [{by_check(self.warnings)}]"
        )
        if self.forward_filled:
            text += f", {self.forward_filled} price cell(s) forward-filled"
        dropped = self.count(_findings.OFF_CALENDAR, action="dropped")
        if dropped:
            text += f", {dropped} off-calendar bar(s) dropped"
        if self.quarantined:
            text += f", quarantined {list(self.quarantined)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready Python objects."""
        return {
            "passed": self.passed,
            "mode": self.mode,
            "summary": self.summary(),
            "n_rows_in": int(self.n_rows_in),
            "n_rows_out": int(self.n_rows_out),
            "n_errors": self.n_errors,
            "n_warnings": self.n_warnings,
            "changes": {k: int(v) for k, v in self.changes.items()},
            "quarantined": list(self.quarantined),
            "symbol_status": dict(self.symbol_status),
            "issues": [i.to_dict() for i in self.issues],
            "policy": self.policy,
        }


@dataclass(frozen=True)
class ValidationResult:
    """The cleaned bars and the report that accounts for every difference from the input.

    Attributes
    ----------
    bars : DataFrame of shape (n_rows_out, 8)
        Canonical bar table sorted by ``(symbol, date)``.
    report : ValidationReport
    """

    bars: pd.DataFrame
    report: ValidationReport
