"""``spe data``: ingest, validate and show market data through the same handlers Lambda runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from portfolio_engine.cli._common import (
    BenchmarksOpt,
    DataDirOpt,
    DayOpt,
    FileOpt,
    JsonOpt,
    PolicyOpt,
    SourceOpt,
    SymbolsOpt,
    benchmarks_list,
    coverage_table,
    emit,
    errors_to_exit,
    invoke,
    open_lake,
    out,
    parse_request,
    setup,
    symbols_list,
)

data_app = typer.Typer(help="Market data: ingest, validate, show.", no_args_is_help=True)


@data_app.command("ingest")
def data_ingest(
    source: SourceOpt = "bundled",
    symbols: SymbolsOpt = None,
    benchmarks: BenchmarksOpt = None,
    start: DayOpt = None,
    end: DayOpt = None,
    interval: Annotated[str, typer.Option(help="1d, or intraday 1h/30m/15m/5m/1m (Yahoo).")] = "1d",
    file: FileOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest new bars into the lake's raw zone through the ingest_prices handler (as the schedule does)."""
    setup(data_dir)
    from portfolio_engine.contracts import IngestInput, RunRequest

    with errors_to_exit(as_json):
        request = parse_request(
            RunRequest,
            source=source,
            symbols=symbols_list(symbols),
            benchmarks=benchmarks_list(benchmarks),
            start=start,
            end=end,
            interval=interval,
            file_uri=file,
        )
        result = invoke("ingest_prices", IngestInput(request=request).model_dump(mode="json"), "ingest")
    if as_json:
        emit(result, True)
    else:
        out.print(
            f"Ingested from '{result['source']}': {result['rows_fetched']:,} rows fetched, {result['rows_new']:,} new, "
            f"{result['rows_updated']:,} updated; {result['first_date']} .. {result['last_date']}; "
            f"up to date: {', '.join(result['up_to_date']) or 'none'}"
        )
        if result.get("rows_quarantined") or result.get("rows_dropped"):
            out.print(
                f"Not stored: {result['rows_quarantined']:,} row(s) quarantined (a bad price for a day stored valid; "
                f"the stored value is kept), {result['rows_dropped']:,} row(s) dropped (not bars). "
                f"Every one is listed in {result['report_key']}."
            )


@data_app.command("validate")
def data_validate(
    source: SourceOpt = "bundled",
    symbols: SymbolsOpt = None,
    policy: PolicyOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate the raw bars in the lake, write the curated zone and print the validation report."""
    setup(data_dir)
    from portfolio_engine.contracts import ValidateInput
    from portfolio_engine.exceptions import EmptyDataError

    with errors_to_exit(as_json):
        lake = open_lake()
        wanted = symbols_list(symbols) or [c.symbol for c in lake.inventory(source, zone="raw")]
        if not wanted:
            raise EmptyDataError(f"The lake has no raw prices from '{source}'.", hint="Run `spe data ingest` first.")
        run_id = f"validate-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        task = parse_request(ValidateInput, run_id=run_id, source=source, symbols=wanted, validation_policy=policy)
        result = invoke("validate_prices", task.model_dump(mode="json"), "validate")
        report = lake.get_json(result["report_key"])
    document = {**result, "report": report}
    if as_json:
        emit(document, True)
        return
    verdict = "[green]passed[/]" if result["passed"] else "[red]failed[/]"
    out.print(f"Validation of {len(wanted)} symbols ({result['policy']}): {verdict}; report: {result['report_key']}")
    table = Table(title="Issues")
    for col in ("check", "symbol", "severity", "count", "first", "last", "detail"):
        table.add_column(col)
    for issue in report.get("issues", []):
        table.add_row(
            *(
                str(issue.get(k, ""))
                for k in ("check", "symbol", "severity", "count", "first_date", "last_date", "detail")
            )
        )
    out.print(table)


@data_app.command("show")
def data_show(
    source: SourceOpt = "bundled",
    zone: Annotated[str, typer.Option(help="curated (validated, what is used) or raw.")] = "curated",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what the lake holds: universe, date range, row counts, feature sets."""
    setup(data_dir)
    from portfolio_engine.ports import describe

    with errors_to_exit(as_json):
        lake = open_lake()
        if zone not in ("raw", "curated"):
            from portfolio_engine.exceptions import ConfigurationError

            raise ConfigurationError(f"Unknown zone {zone!r}.", hint="Use --zone curated or --zone raw.")
        document = {
            "lake": lake.uri,
            "source": source,
            "zone": zone,
            "sources": lake.sources(zone=zone),  # type: ignore[arg-type]
            **describe(lake.inventory(source, zone=zone)),  # type: ignore[arg-type]
            "feature_sets": lake.feature_sets(),
        }
    if as_json:
        emit(document, True)
        return
    out.print(
        f"Lake {document['lake']} ({zone}), source '{source}': {document['n_symbols']} symbols, "
        f"{document['first_date']} .. {document['last_date']}, {document['rows']:,} rows; "
        f"feature sets: {', '.join(document['feature_sets']) or 'none'}"
    )
    out.print(coverage_table(document["per_symbol"], f"{zone.capitalize()} prices per symbol"))
