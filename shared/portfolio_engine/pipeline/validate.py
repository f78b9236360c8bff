"""ValidatePrices: raw zone -> validation report + curated zone. Bad data is never used silently."""

from __future__ import annotations

import logging

from portfolio_engine.contracts import ValidateInput, ValidateOutput
from portfolio_engine.data.validation import ValidationPolicy, validate_bars
from portfolio_engine.exceptions import DataValidationError
from portfolio_engine.ports import Lake

logger = logging.getLogger(__name__)


def validate_prices(task: ValidateInput, *, lake: Lake, policy: ValidationPolicy) -> ValidateOutput:
    """Validate the run's raw bars, store the report, and write what passed to the curated zone.

    The report is written whatever the verdict, so a rejected run can be inspected.

    Raises
    ------
    DataValidationError
        Under the ``reject`` policy when any check fails at error severity; nothing is curated.
    EmptyDataError
        If the raw zone holds none of the symbols.
    """
    raw = lake.read_bars(task.source, task.symbols, zone="raw", interval=task.interval)
    report_key = f"reports/validation/{task.run_id}.json"
    try:
        result = validate_bars(raw, policy, expected_symbols=task.symbols)
    except DataValidationError as exc:
        rejected = getattr(exc, "report", None)
        if rejected is None:
            raise
        lake.put_json(report_key, {"run_id": task.run_id, "source": task.source, **rejected.to_dict()})
        raise DataValidationError(
            f"Validation rejected run {task.run_id}: {rejected.summary()}. Report: {lake.key_uri(report_key)}.",
            hint=exc.hint,
        ) from exc
    report = result.report
    lake.put_json(report_key, {"run_id": task.run_id, "source": task.source, **report.to_dict()})
    # The run validated the symbols' whole raw history: their curated history becomes exactly what
    # passed, and a quarantined symbol has none.
    lake.write_bars(result.bars, task.source, zone="curated", interval=task.interval, replace=task.symbols)
    cleared = sorted(set(result.bars["symbol"].astype(str)))
    logger.info(
        "validated", extra={"run_id": task.run_id, "errors": report.n_errors, "quarantined": report.quarantined}
    )
    return ValidateOutput(
        run_id=task.run_id,
        source=task.source,
        policy=policy.mode,
        passed=report.passed,
        symbols=[s for s in task.symbols if s in cleared],
        quarantined=sorted(report.quarantined),
        errors=report.n_errors,
        warnings=report.n_warnings,
        forward_filled=report.forward_filled,
        report_key=report_key,
    )
