"""Validation of canonical bar tables: checks, a report, and a policy for what to do with bad data.

Bad data is never used silently. :func:`validate_bars` runs every check on a long bar table
(``portfolio_engine.data.schema``), then applies a :class:`ValidationPolicy`:

``reject``
    raise :class:`~portfolio_engine.exceptions.DataValidationError` (carrying the report as
    ``error.report``) if any check fails at error severity;
``forward_fill``
    repair missing bars and NaN/inf/non-positive prices by carrying the last good price of the same
    symbol forward, at most ``max_ffill`` bars in a row and never backward, and drop bars on days
    that are not sessions of the calendar, then check again; every repair is counted in the
    report's ``changes`` and listed as an issue. What cannot be repaired is handled by
    ``on_unfixable`` (``reject`` or ``quarantine``);
``quarantine``
    drop every symbol with an error, and list it in the report.

The trading calendar
--------------------
Every symbol is checked against the sessions of its exchange, ``ValidationPolicy.calendar``
(``"XNYS"``, the New York Stock Exchange, by default; any code of the ``exchange_calendars``
package, computed offline). Each symbol is checked on its own: what a symbol's bars look like after
validation never depends on which other symbols were validated with it.

* A bar on a day that is not a session (a weekend, a holiday, an unscheduled closure) is
  ``off_calendar``. The exchange made no such price: under ``forward_fill`` the bar is dropped
  (``changes["rows_dropped"]``, issue action ``"dropped"``); only a severity override to
  ``"warning"`` keeps it, reported.
* A session without a bar between a symbol's first and last bar is a ``calendar_gap``. Gaps every
  symbol shares (a source outage) and gaps of a single-symbol table are seen too. ``forward_fill``
  inserts the symbol's missing sessions only (runs up to ``max_ffill``), never another symbol's dates.
* Intraday bars (timestamps not at midnight, UTC) belong to the session of their date in the
  exchange's time zone; a session with no bar at all is a ``calendar_gap`` that filling does not
  repair (it would invent a day of bars). Missing bars inside a session are not checked: illiquid
  symbols legitimately skip intervals.

``calendar=None`` falls back to the union of the dates of the symbols validated together: for
sources with no exchange calendar (user data mixing exchanges) it needs no calendar, but it cannot
see gaps shared by every symbol and lets a stray bar of one symbol make gaps in all the others.
Crypto and FX can use the ``"24/7"`` and ``"24/5"`` calendars instead.

Checks and their default severity (``severity_overrides`` changes them, ``"off"`` skips a check):

====================  ========  =====================================================================
check                 severity  what it flags
====================  ========  =====================================================================
schema                error     a required column is missing or cannot be parsed (always raises);
                      warning   a column had to be parsed from text, or unknown columns were dropped
missing_key           error     rows with no date or no symbol
missing_symbol        error     an ``expected_symbols`` entry without a single bar
duplicate_timestamp   error     a repeated ``(symbol, date)``
non_monotonic         error     a bar earlier than the previous bar of its symbol, in input order
off_calendar          error     a bar on a day that is not a session of ``calendar`` (dropped under
                                ``forward_fill``)
calendar_gap          error     a session of ``calendar`` (without one: a date of the union of all
                                symbols' dates) that a symbol lacks between its first and last bar
                                (fillable for daily bars)
long_gap              warning   without a calendar only: more than ``max_gap_bdays`` business days
                                missing between two bars (closures, outages shared by all symbols)
non_finite            error     NaN/inf in close/adj_close, or a bar with some but not all of
                                open/high/low (fillable)
non_positive          error     a zero or negative price (fillable)
stale_price           warning   more than ``stale_bars`` bars in a row with the same adj_close
split_jump            error     a one-bar adj_close ratio near k or 1/k (k in ``split_ratios``) for a
                                source that adjusts (close differs from adj_close): a missed split;
                      warning   the same for a single-series source, where it may be a real move
price_spike           error     ``|log return| > jump_threshold`` that reverses by ``reversal_fraction``
                                within ``reversal_bars`` bars (a bad tick)
outlier               warning   robust z-score (median/MAD) of log returns above ``outlier_z``:
                                real market moves (1987, 2000, 2008, 2020) land here
ohlc_partial          warning   close-only bars of a symbol that has OHLC on other bars (ATR is NaN
                                on them)
ohlc_inconsistent     error     ``low <= open, close <= high`` violated
====================  ========  =====================================================================

On the bundled real data (20 stocks and the S&P 500 index, 1990-2022) the default policy passes with
warnings only. Its 8,313 dates are exactly the 8,313 NYSE sessions from 2 Jan 1990 to 28 Dec 2022,
closures included (11-14 Sep 2001, Hurricane Sandy 29-30 Oct 2012, the days of mourning for Nixon,
Reagan, Ford and G. H. W. Bush); the factor ETFs (2014-2022) and the index's OHLCV file (1999-2018)
match too. The warnings: ``outlier`` (154 bars), ``stale_price`` (RRC's illiquid early 1990s, 581
bars; JPM, 6), one ``split_jump`` (RRC, 10 Apr 1990, a move by exactly 1/3 of a price quoted in
eighths of a dollar) and, where the index's OHLC (1999-2018) is merged with its closes,
``ohlc_partial`` for the close-only bars.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from portfolio_engine.data import _calendar as calendars
from portfolio_engine.data import _checks, _findings
from portfolio_engine.data._calendar import TradingCalendar
from portfolio_engine.data._ffill import FillLog, forward_fill
from portfolio_engine.data._findings import CHECKS, STRUCTURAL_CHECKS, CheckParams, Finding
from portfolio_engine.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, conform_bars, empty_bars
from portfolio_engine.data.validation_report import Action, Issue, Severity, ValidationReport, ValidationResult
from portfolio_engine.exceptions import DataValidationError, EmptyDataError, SchemaError

logger = logging.getLogger(__name__)

Mode = Literal["reject", "forward_fill", "quarantine"]

__all__ = [
    "CHECKS",
    "Issue",
    "ValidationPolicy",
    "ValidationReport",
    "ValidationResult",
    "validate_bars",
]


class ValidationPolicy(BaseModel):
    """What validation does with bad data, and the thresholds of its checks.

    Parameters
    ----------
    mode : {"reject", "forward_fill", "quarantine"}, default "reject"
        See the module docstring.
    max_ffill : int, default 3
        Longest run of consecutive bars ``forward_fill`` repairs in one column of one symbol; longer
        runs are left alone and stay errors. 0 repairs nothing.
    on_unfixable : {"reject", "quarantine"}, default "reject"
        Under ``forward_fill``, what happens to errors that filling cannot repair.
    calendar : str or None, default "XNYS"
        Exchange calendar (an ``exchange_calendars`` code or alias, stored as the code) whose
        sessions daily bars must fall on and cover: ``off_calendar`` and ``calendar_gap``. None
        falls back to the union of the validated symbols' dates (see the module docstring), for
        sources with no exchange calendar, e.g. user data across exchanges.
    max_gap_bdays : int, default 3
        Without a calendar, ``long_gap`` warns when more business days than this are missing between
        two bars (an ordinary holiday weekend misses 1, Hurricane Sandy 2, the 2001 closure 4).
    stale_bars : int, default 5
        ``stale_price`` warns on more than this many consecutive bars with the same adj_close.
    outlier_z : float, default 10.0
        Robust z-score threshold of ``outlier``. Daily returns are fat-tailed: at 10 MADs the bundled
        stocks show a handful of moves each, all of them real.
    jump_threshold : float, default 0.4
        ``|log return|`` above which a reversing move is a ``price_spike`` (0.4 is -33% / +49%).
    reversal_bars : int, default 5
        Bars after a jump within which a reversal counts.
    reversal_fraction : float, default 0.5
        Share of the jump (in log) that must be given back to call it a reversal.
    split_ratios : tuple of int, default (2, ..., 10)
        k of the k-for-1 splits (ratio 1/k) and 1-for-k reverse splits (ratio k) looked for.
    split_tolerance : float, default 0.03
        Distance in log units between a one-bar ratio and a split ratio that counts as "near".
        Wider catches more split days (a split day also carries the day's market move) and more real
        moves (Apple fell to 0.4815x on 29 Sep 2000, 0.037 from 1/2).
    ohlc_tolerance : float, default 1e-6
        Relative slack of the OHLC consistency check, for sources that round fields separately.
    severity_overrides : dict of str to {"error", "warning", "off"}, default {}
        Per-check severity. ``schema``, ``missing_key`` and ``duplicate_timestamp`` cannot be changed:
        ignoring them would drop or de-duplicate rows without an error.

    Raises
    ------
    pydantic.ValidationError
        On a negative threshold, an unknown check name or calendar, or an override of a structural check.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode = "reject"
    max_ffill: int = Field(default=3, ge=0)
    on_unfixable: Literal["reject", "quarantine"] = "reject"
    calendar: str | None = "XNYS"
    max_gap_bdays: int = Field(default=3, ge=0)
    stale_bars: int = Field(default=5, ge=1)
    outlier_z: float = Field(default=10.0, gt=0)
    jump_threshold: float = Field(default=0.4, gt=0)
    reversal_bars: int = Field(default=5, ge=1)
    reversal_fraction: float = Field(default=0.5, gt=0, le=1)
    split_ratios: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)
    split_tolerance: float = Field(default=0.03, gt=0, lt=0.2)
    ohlc_tolerance: float = Field(default=1e-6, ge=0)
    severity_overrides: dict[str, Literal["error", "warning", "off"]] = Field(default_factory=dict)

    @field_validator("split_ratios")
    @classmethod
    def _ratios_above_one(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(k < 2 for k in value):
            raise ValueError(f"split ratios must be integers >= 2 (k of a k-for-1 split); got {value}")
        return tuple(sorted(set(value)))

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in calendars.calendar_names():
            raise ValueError(
                f"unknown exchange calendar {value!r}: use a code of the exchange_calendars package, e.g. 'XNYS' "
                "(NYSE), 'XNAS' (Nasdaq), 'XLON' (London), '24/7' (crypto), or None for the union of the symbols' dates"
            )
        return calendars.canonical_calendar_name(value)

    @field_validator("severity_overrides")
    @classmethod
    def _known_checks(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CHECKS))
        if unknown:
            raise ValueError(f"unknown check(s) {unknown}; known: {list(CHECKS)}")
        fixed = sorted(set(value) & STRUCTURAL_CHECKS)
        if fixed:
            raise ValueError(f"the severity of {fixed} cannot be changed: rows would be dropped silently")
        return value

    def severity(self, check: str, default: str) -> Severity | None:
        """Return the severity of ``check`` under this policy (None: the check is off)."""
        chosen = self.severity_overrides.get(check, default)
        if chosen == "off":
            return None
        return "warning" if chosen == "warning" else "error"

    def check_params(self) -> CheckParams:
        return CheckParams(
            max_gap_bdays=self.max_gap_bdays,
            stale_bars=self.stale_bars,
            outlier_z=self.outlier_z,
            jump_threshold=self.jump_threshold,
            reversal_bars=self.reversal_bars,
            reversal_fraction=self.reversal_fraction,
            split_ratios=self.split_ratios,
            split_tolerance=self.split_tolerance,
            ohlc_tolerance=self.ohlc_tolerance,
        )


# ---------------------------------------------------------------------------------------------------------------------
# assembling issues
# ---------------------------------------------------------------------------------------------------------------------
def _issues_from(finding: Finding, policy: ValidationPolicy, action: Action = "none") -> list[Issue]:
    severity = policy.severity(finding.check, finding.severity)
    if severity is None or finding.empty:
        return []
    frame = pd.DataFrame({"symbol": finding.symbols.astype(object), "date": finding.dates})
    out = []
    for symbol, group in frame.groupby("symbol", sort=True):
        dates = group["date"].dropna()
        name = str(symbol)
        out.append(
            Issue(
                check=finding.check,
                symbol=name,
                severity=severity,
                count=len(group),
                first_date=pd.Timestamp(dates.min()) if len(dates) else None,
                last_date=pd.Timestamp(dates.max()) if len(dates) else None,
                detail=finding.details.get(name, ""),
                action=action,
            )
        )
    return out


def _order(issues: Iterable[Issue]) -> tuple[Issue, ...]:
    rank = {check: i for i, check in enumerate(CHECKS)}
    return tuple(sorted(issues, key=lambda i: (rank[i.check], i.symbol or "", i.action != "forward_filled")))


def _rejection(report: ValidationReport, message: str, hint: str | None = None) -> DataValidationError:
    error = DataValidationError(message, hint=hint)
    # DataValidationError is shared by every step; state machines match its class name, so the report
    # rides along as an attribute instead of through a subclass.
    setattr(error, "report", report)  # noqa: B010
    return error


def _calendar(policy: ValidationPolicy, bars: pd.DataFrame) -> TradingCalendar | None:
    """The policy's exchange calendar over the span of ``bars`` (None without one, or without bars).

    Raises
    ------
    ConfigurationError
        If ``exchange_calendars`` cannot build the calendar over those dates.
    """
    if policy.calendar is None or bars.empty:
        return None
    return calendars.trading_calendar(
        policy.calendar, pd.Timestamp(bars["date"].min()), pd.Timestamp(bars["date"].max())
    )


def _drop_off_calendar(
    bars: pd.DataFrame, calendar: TradingCalendar | None, policy: ValidationPolicy
) -> tuple[pd.DataFrame, list[Issue]]:
    """Under forward_fill, drop bars on days that are not sessions: the repair of ``off_calendar``.

    Nothing is dropped when the check is off or lowered to a warning: the bars are then kept (and, as
    a warning, reported).
    """
    drop = calendars.off_calendar_mask(bars, calendar)
    if not drop.any() or policy.severity(_findings.OFF_CALENDAR, "error") != "error":
        return bars, []
    finding = calendars.off_calendar(bars, calendar)
    issues = [
        replace(issue, detail=f"{issue.detail}; {issue.count} bar(s) dropped")
        for issue in _issues_from(finding, policy, action="dropped")
    ]
    logger.warning("off-calendar bars dropped", extra={"rows": int(drop.sum()), "calendar": policy.calendar})
    return bars.loc[~drop].reset_index(drop=True), issues


# ---------------------------------------------------------------------------------------------------------------------
# schema stage
# ---------------------------------------------------------------------------------------------------------------------
def _schema_stage(bars: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[Issue], dict[str, int]]:
    """Conform the table to the canonical schema, reporting what had to change.

    Returns the conformed table (sorted by symbol and date), the parsed ``(symbol, date)`` keys in
    input order, the schema issues and the counts of changed columns.

    Raises
    ------
    SchemaError
        From ``conform_bars``: a required column is missing or cannot be parsed.
    """
    extra = [c for c in bars.columns if c not in BAR_COLUMNS]
    added = [c for c in NUMERIC_COLUMNS if c not in bars.columns]
    parsed: list[str] = []
    coerced = 0
    for column in BAR_COLUMNS:
        if column not in bars.columns:
            continue
        dtype = bars[column].dtype
        if column == "symbol":
            coerced += int(not isinstance(dtype, pd.StringDtype))
        elif column == "date":
            if not pd.api.types.is_datetime64_dtype(dtype):
                parsed.append(f"date ({dtype})")
            coerced += int(str(dtype) != "datetime64[ns]")
        else:
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                parsed.append(f"{column} ({dtype})")
            coerced += int(str(dtype) != "float64")
    conformed = conform_bars(bars)
    # conform_bars sorts by (symbol, date); the monotonicity check needs the input order, parsed the same way.
    dates = pd.to_datetime(bars["date"])
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    in_order = pd.DataFrame({"symbol": bars["symbol"].astype("string").to_numpy(), "date": dates.to_numpy()})
    issues: list[Issue] = []
    if parsed or extra:
        parts = []
        if parsed:
            parts.append("parsed from text: " + ", ".join(parsed))
        if extra:
            parts.append("unknown columns dropped: " + ", ".join(map(str, extra)))
        issues.append(Issue(_findings.SCHEMA, None, "warning", len(parsed) + len(extra), None, None, "; ".join(parts)))
    changes = {"columns_coerced": coerced, "columns_added": len(added), "columns_dropped": len(extra)}
    return conformed, in_order, issues, changes


# ---------------------------------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------------------------------
def validate_bars(
    bars: pd.DataFrame,
    policy: ValidationPolicy | None = None,
    *,
    expected_symbols: Sequence[str] | None = None,
) -> ValidationResult:
    """Check a bar table and apply a policy to what fails.

    Parameters
    ----------
    bars : DataFrame of shape (n_rows, n_columns)
        Long bar table: ``date``, ``symbol`` and ``close`` and/or ``adj_close`` at least (see
        ``portfolio_engine.data.schema``), in any row order.
    policy : ValidationPolicy, optional
        Default ``ValidationPolicy()``: reject on any error.
    expected_symbols : sequence of str, optional
        Symbols that must be present; each one without a bar is a ``missing_symbol`` error.

    Returns
    -------
    ValidationResult
        ``bars``: canonical table of shape (n_rows_out, 8), sorted by ``(symbol, date)``, with
        duplicates, quarantined symbols and unrepairable rows removed and repairs applied;
        ``report``: every issue and every change.

    Raises
    ------
    DataValidationError
        Under ``reject`` (or ``forward_fill`` with ``on_unfixable="reject"``) when an error is left
        unresolved; on a schema error under any policy; when quarantine leaves no symbol. The
        report is attached as ``error.report``.
    EmptyDataError
        If ``bars`` has no rows.
    ConfigurationError
        If the policy's calendar cannot be built over the bars' dates.
    """
    policy = policy or ValidationPolicy()
    if len(bars) == 0:
        raise EmptyDataError(
            "The bar table to validate has no rows.", hint="Check the source's date range and symbols."
        )
    n_rows_in = len(bars)
    policy_json = policy.model_dump(mode="json")

    try:
        conformed, in_order, issues, changes = _schema_stage(bars)
    except SchemaError as exc:
        issue = Issue(_findings.SCHEMA, None, "error", 1, None, None, exc.message)
        report = ValidationReport(policy.mode, (issue,), {}, {}, (), n_rows_in, 0, policy_json)
        raise _rejection(report, f"Bar table fails the schema check: {exc.message}", hint=exc.hint) from exc
    changes.update(forward_filled=0, rows_inserted=0, rows_dropped=0, symbols_quarantined=0, duplicates_dropped=0)

    # Rows without a key cannot belong to any symbol: they are an error, dropped under quarantine.
    keyless = (conformed["date"].isna() | conformed["symbol"].isna()).to_numpy()
    if keyless.any():
        issues.append(
            Issue(
                _findings.MISSING_KEY, None, "error", int(keyless.sum()), None, None, "rows without a date or a symbol"
            )
        )
        conformed = conformed.loc[~keyless].reset_index(drop=True)

    duplicate_finding, repeated = _checks.duplicate_timestamps(conformed)
    issues += _issues_from(duplicate_finding, policy)
    issues += _issues_from(_checks.non_monotonic(in_order), policy)
    if expected_symbols is not None:
        present = conformed["symbol"].astype(str).unique().tolist()
        issues += _issues_from(_checks.missing_symbols(present, expected_symbols), policy)

    # Value checks see one bar per key, oldest first; the repeats are already reported as errors.
    prepared = conformed.loc[~repeated].sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    changes["duplicates_dropped"] = int(repeated.sum())
    changes["rows_dropped"] = int(keyless.sum())
    params = policy.check_params()
    calendar = _calendar(policy, prepared)

    log: FillLog | None = None
    if policy.mode == "forward_fill":
        prepared, dropped = _drop_off_calendar(prepared, calendar, policy)
        issues += dropped
        changes["rows_dropped"] += sum(i.count for i in dropped)
        missing = calendars.missing_bars(prepared, calendar)
        insertable = (missing.symbols[missing.fillable], missing.dates[missing.fillable])
        prepared, log = forward_fill(prepared, policy.max_ffill, insertable)
        what = f"{policy.calendar} session(s)" if calendar is not None else "date(s) of the universe"
        fixes = [
            (Finding(_findings.CALENDAR_GAP, "error", *log.inserted, {}), f"missing {what} inserted, prices"),
            (Finding(_findings.NON_FINITE, "error", *log.non_finite, {}), "bar(s)"),
            (Finding(_findings.NON_POSITIVE, "error", *log.non_positive, {}), "bar(s)"),
        ]
        for fix, noun in fixes:
            for issue in _issues_from(fix, policy, action="forward_filled"):
                issues.append(
                    replace(issue, detail=f"{issue.count} {noun} forward-filled (runs <= {policy.max_ffill})")
                )
        changes["rows_inserted"] = log.rows_inserted
        changes["forward_filled"] = log.cells

    for finding in _checks.value_checks(prepared, params, calendar):
        issues += _issues_from(finding, policy)

    unresolved_mode = policy.on_unfixable if policy.mode == "forward_fill" else policy.mode
    symbols_in = sorted(set(conformed["symbol"].astype(str)) | {i.symbol for i in issues if i.symbol is not None})
    quarantined: tuple[str, ...] = ()
    if unresolved_mode == "quarantine":
        bad = sorted({i.symbol for i in issues if i.unresolved and i.symbol is not None})
        quarantined = tuple(bad)
        issues = [_quarantine_action(i) for i in issues]
        if bad:
            logger.warning("symbols quarantined", extra={"symbols": bad})
        keep = ~prepared["symbol"].astype(str).isin(bad).to_numpy()
        prepared = prepared.loc[keep].reset_index(drop=True)
        changes["symbols_quarantined"] = len(bad)
        inserted_bad = 0
        if log is not None:
            # Count only the repairs that survive in the returned table.
            changes["forward_filled"] = sum(n for s, n in log.cells_by_symbol.items() if s not in bad)
            changes["rows_inserted"] = sum(n for s, n in log.inserted_by_symbol.items() if s not in bad)
            inserted_bad = log.rows_inserted - changes["rows_inserted"]
        # Rows dropped are input rows: bars inserted for a quarantined symbol were never in the input.
        changes["rows_dropped"] += int((~keep).sum()) - inserted_bad

    ordered = _order(issues)
    status = _statuses(symbols_in, ordered, quarantined)
    report = ValidationReport(
        mode=policy.mode,
        issues=ordered,
        symbol_status=status,
        changes=changes,
        quarantined=quarantined,
        n_rows_in=n_rows_in,
        n_rows_out=len(prepared),
        policy=policy_json,
    )
    logger.info(
        "bars validated",
        extra={"mode": policy.mode, "passed": report.passed, "errors": report.n_errors, "warnings": report.n_warnings},
    )
    if not report.passed:
        raise _rejection(report, f"Bar table failed validation: {report.summary()}.")
    if quarantined and prepared.empty:
        raise _rejection(
            report,
            f"Every symbol failed validation and was quarantined: {list(quarantined)}.",
            hint="Read the report's issues; fix the source, raise max_ffill, or relax checks with severity_overrides.",
        )
    out = prepared if len(prepared) else empty_bars()
    return ValidationResult(bars=out, report=report)


def _quarantine_action(issue: Issue) -> Issue:
    """Mark what quarantine did with an unresolved error: its symbol dropped, or its keyless rows."""
    if not issue.unresolved:
        return issue
    return replace(issue, action="quarantined" if issue.symbol is not None else "dropped")


def _statuses(symbols: Sequence[str], issues: Sequence[Issue], quarantined: Sequence[str]) -> dict[str, str]:
    status = dict.fromkeys(symbols, "ok")
    rank = {"ok": 0, "warning": 1, "filled": 2, "error": 3, "quarantined": 4}
    for issue in issues:
        if issue.symbol is None:
            continue
        if issue.symbol in quarantined:
            level = "quarantined"
        elif issue.unresolved:
            level = "error"
        elif issue.action == "forward_filled" or (issue.action == "dropped" and issue.severity == "error"):
            level = "filled"
        elif issue.severity == "warning":
            level = "warning"
        else:
            level = "ok"
        current = status.get(issue.symbol, "ok")
        status[issue.symbol] = level if rank[level] > rank[current] else current
    return status
