"""``spe``: the engine's command line. Every command takes ``--json``; long work shows progress.

Commands run the same code as AWS: ``spe run`` executes ``state_machines/rebalance.asl.json`` with the
local runner, and ``spe data ingest``/``validate`` invoke the Lambda handlers in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from portfolio_engine.exceptions import PortfolioEngineError, StateMachineError

if TYPE_CHECKING:
    from portfolio_engine.adapters.lake import ParquetLake

app = typer.Typer(help="Stochastic Portfolio Engine.", no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Market data: ingest, validate, show.", no_args_is_help=True)
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)

BenchmarksOpt = Annotated[
    Optional[str],
    typer.Option(help="Comma-separated benchmarks, the first the index for beta (default ^GSPC; none for a file)."),
]
DayOpt = Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="A day, YYYY-MM-DD.")]
FileOpt = Annotated[Optional[str], typer.Option(help="CSV/Parquet (path or s3:// URI) for --source file.")]
PolicyOpt = Annotated[Optional[str], typer.Option(help="reject, forward_fill or quarantine.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
DataDirOpt = Annotated[
    Optional[Path], typer.Option("--data-dir", help="Local data directory (default .spe, or SPE_DATA_DIR).")
]
SourceOpt = Annotated[str, typer.Option(help="bundled, yahoo, alpha_vantage, nasdaq_data_link or file.")]
SymbolsOpt = Annotated[Optional[str], typer.Option(help="Comma-separated tickers (default: the bundled 20 stocks).")]
STEP_NAMES = {"ingest_prices": "IngestPrices", "validate_prices": "ValidatePrices", "build_features": "BuildFeatures"}


def _setup(data_dir: Path | None, verbose: bool = False) -> None:
    """Environment for in-process handlers: the data directory, quiet powertools locally."""
    if data_dir is not None:
        os.environ["SPE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    # A failed step publishes no metric; powertools warns about that, which says nothing locally.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO" if verbose else "WARNING")


def _lake() -> ParquetLake:
    """The lake the settings point at (read after ``_setup`` has set the data directory)."""
    from portfolio_engine.adapters.factory import build_lake
    from portfolio_engine.settings import Settings

    return build_lake(Settings())


def _symbols(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def _benchmarks(value: str | None) -> list[str] | None:
    return None if value is None else (_symbols(value) or [])


def _emit(document: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


@contextlib.contextmanager
def _errors_to_exit(as_json: bool) -> Iterator[None]:
    """Typed errors become a clear message and exit code 1 (JSON on stdout with --json)."""
    try:
        yield
    except PortfolioEngineError as exc:
        # A failed step reports the step's own error name (UnknownSymbolError, DataValidationError, ...).
        kind = exc.error if isinstance(exc, StateMachineError) and exc.error else type(exc).__name__
        if as_json:
            _emit({"error": kind, "message": exc.message, "hint": exc.hint}, True)
        else:
            err.print(f"[bold red]{kind}[/]: {escape(exc.message)}")
            if exc.hint:
                err.print(f"[yellow]Hint[/]: {escape(exc.hint)}")
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _handler_output_to_stderr() -> Iterator[None]:
    # Handlers log JSON to stdout (as on Lambda); keep stdout for the command's own output.
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@app.command()
def run(
    source: SourceOpt = "bundled",
    symbols: SymbolsOpt = None,
    benchmarks: BenchmarksOpt = None,
    start: DayOpt = None,
    end: DayOpt = None,
    file: FileOpt = None,
    policy: PolicyOpt = None,
    run_id: Annotated[Optional[str], typer.Option(help="Execution name (default: run-<UTC time>).")] = None,
    data_dir: DataDirOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the rebalance state machine locally on the embedded default and print a summary."""
    _setup(data_dir, verbose)
    from portfolio_engine.contracts import RunRequest
    from portfolio_engine.local.runner import LocalStateMachineRunner
    from portfolio_engine.pipeline.summary import summarize_run, task_steps

    with _errors_to_exit(as_json):
        request = _request(
            RunRequest,
            source=source,
            symbols=_symbols(symbols),
            benchmarks=_benchmarks(benchmarks),
            start=start,
            end=end,
            file_uri=file,
            validation_policy=policy,
        )
        name = run_id or f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        with _progress() as progress, _handler_output_to_stderr():
            task = progress.add_task("rebalance", total=len(STEP_NAMES))

            def listener(event: str, function: str, _detail: dict[str, Any]) -> None:
                step = STEP_NAMES.get(function, function)
                if event == "start":
                    progress.update(task, description=f"rebalance: {step}")
                else:
                    progress.advance(task)

            result = LocalStateMachineRunner(listener=listener).run(
                "rebalance", request.model_dump(mode="json"), name=name
            )
        output = result.raise_for_status()
        lake = _lake()
        summary = summarize_run(output, lake, seconds=result.seconds, steps=task_steps(result.history))
        lake.put_json(f"reports/runs/{name}.json", summary)
    if as_json:
        _emit(summary, True)
    else:
        _print_run(summary)


def _request(model: Any, **values: Any) -> Any:
    from pydantic import ValidationError

    from portfolio_engine.exceptions import ConfigurationError

    clean = {k: (v.date() if isinstance(v, datetime) else v) for k, v in values.items() if v is not None}
    try:
        return model(**clean)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(
            f"Invalid options: {problems}.", hint="See `spe --help` for each option's values."
        ) from exc


def _print_run(summary: dict[str, Any]) -> None:
    u, ingest, val, feat = summary["universe"], summary["ingest"], summary["validation"], summary["features"]
    out.print(f"[bold]Run {summary['run_id']}[/] finished in {summary['seconds']:.2f} s  (lake: {summary['lake']})")
    out.print(
        f"Universe: {u['n_symbols']} symbols from '{summary['source']}', {u['first_date']} .. {u['last_date']}, "
        f"{u['rows']:,} rows; benchmarks: {', '.join(summary['benchmarks']) or 'none'}"
    )
    out.print(
        f"Ingest: {ingest['rows_fetched']:,} rows fetched, {ingest['rows_new']:,} new, "
        f"{ingest['rows_updated']:,} updated, "
        f"{ingest['rows_unchanged']:,} unchanged; up to date: {len(ingest['up_to_date'])}"
    )
    verdict = "[green]passed[/]" if val["passed"] else "[red]failed[/]"
    out.print(
        f"Validation ({val['policy']}): {verdict}, {val['errors']} errors, {val['warnings']} warnings, "
        f"{val['forward_filled']} values forward-filled, quarantined: {', '.join(val['quarantined']) or 'none'}"
    )
    out.print(
        f"Features: version {feat['feature_version']}, {feat['rows']:,} rows x {len(feat['columns'])} features, "
        f"{feat['first_date']} .. {feat['last_date']} -> {feat['feature_key']}"
    )
    out.print(_coverage_table(summary["curated"]["per_symbol"], "Curated prices per symbol"))


def _coverage_table(per_symbol: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("symbol", "first date", "last date", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for row in per_symbol:
        table.add_row(row["symbol"], row["first_date"], row["last_date"], f"{row['rows']:,}")
    return table


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
    _setup(data_dir)
    from portfolio_engine.contracts import IngestInput, RunRequest

    with _errors_to_exit(as_json):
        request = _request(
            RunRequest,
            source=source,
            symbols=_symbols(symbols),
            benchmarks=_benchmarks(benchmarks),
            start=start,
            end=end,
            interval=interval,
            file_uri=file,
        )
        result = _invoke("ingest_prices", IngestInput(request=request).model_dump(mode="json"), "ingest")
    if as_json:
        _emit(result, True)
    else:
        out.print(
            f"Ingested from '{result['source']}': {result['rows_fetched']:,} rows fetched, {result['rows_new']:,} new, "
            f"{result['rows_updated']:,} updated; {result['first_date']} .. {result['last_date']}; "
            f"up to date: {', '.join(result['up_to_date']) or 'none'}"
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
    _setup(data_dir)
    from portfolio_engine.contracts import ValidateInput
    from portfolio_engine.exceptions import EmptyDataError

    with _errors_to_exit(as_json):
        lake = _lake()
        wanted = _symbols(symbols) or [c.symbol for c in lake.inventory(source, zone="raw")]
        if not wanted:
            raise EmptyDataError(f"The lake has no raw prices from '{source}'.", hint="Run `spe data ingest` first.")
        run_id = f"validate-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        task = _request(ValidateInput, run_id=run_id, source=source, symbols=wanted, validation_policy=policy)
        result = _invoke("validate_prices", task.model_dump(mode="json"), "validate")
        report = lake.get_json(result["report_key"])
    document = {**result, "report": report}
    if as_json:
        _emit(document, True)
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
    _setup(data_dir)
    from portfolio_engine.ports import describe

    with _errors_to_exit(as_json):
        lake = _lake()
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
        _emit(document, True)
        return
    out.print(
        f"Lake {document['lake']} ({zone}), source '{source}': {document['n_symbols']} symbols, "
        f"{document['first_date']} .. {document['last_date']}, {document['rows']:,} rows; "
        f"feature sets: {', '.join(document['feature_sets']) or 'none'}"
    )
    out.print(_coverage_table(document["per_symbol"], f"{zone.capitalize()} prices per symbol"))


def _invoke(function: str, event: dict[str, Any], label: str) -> dict[str, Any]:
    """Invoke one handler in-process, as Lambda would, and turn a Lambda error into a typed error."""
    from portfolio_engine.local.runner import InProcessLambda, step_error

    with _progress() as progress, _handler_output_to_stderr():
        progress.add_task(label, total=None)
        payload, function_error = InProcessLambda().invoke(function, event)
    if function_error:
        body = json.loads(payload)
        raise step_error(body["errorType"], payload.decode(), f"{function} failed")
    return json.loads(payload)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
