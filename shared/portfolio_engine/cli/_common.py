"""What every ``spe`` command shares: options, environment set-up, output, error handling, in-process invokes."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from datetime import datetime
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


def setup(data_dir: Path | None, verbose: bool = False) -> None:
    """Environment for in-process handlers: the data directory, quiet powertools locally."""
    if data_dir is not None:
        os.environ["SPE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    # A failed step publishes no metric; powertools warns about that, which says nothing locally.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO" if verbose else "WARNING")


def open_lake() -> ParquetLake:
    """The lake the settings point at (read after ``_setup`` has set the data directory)."""
    from portfolio_engine.adapters.factory import build_lake
    from portfolio_engine.settings import Settings

    return build_lake(Settings())


def symbols_list(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def benchmarks_list(value: str | None) -> list[str] | None:
    return None if value is None else (symbols_list(value) or [])


def emit(document: Any, as_json: bool) -> None:
    """Print ``document`` as JSON on stdout when ``--json`` was given."""
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


@contextlib.contextmanager
def errors_to_exit(as_json: bool) -> Iterator[None]:
    """Typed errors become a clear message and exit code 1 (JSON on stdout with --json)."""
    try:
        yield
    except PortfolioEngineError as exc:
        # A failed step reports the step's own error name (UnknownSymbolError, DataValidationError, ...).
        kind = exc.error if isinstance(exc, StateMachineError) and exc.error else type(exc).__name__
        if as_json:
            emit({"error": kind, "message": exc.message, "hint": exc.hint}, True)
        else:
            err.print(f"[bold red]{kind}[/]: {escape(exc.message)}")
            if exc.hint:
                err.print(f"[yellow]Hint[/]: {escape(exc.hint)}")
        raise typer.Exit(1) from None


@contextlib.contextmanager
def handler_output_to_stderr() -> Iterator[None]:
    # Handlers log JSON to stdout (as on Lambda); keep stdout for the command's own output.
    with contextlib.redirect_stdout(sys.stderr):
        yield


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def parse_request(model: Any, **values: Any) -> Any:
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


def coverage_table(per_symbol: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("symbol", "first date", "last date", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for row in per_symbol:
        table.add_row(row["symbol"], row["first_date"], row["last_date"], f"{row['rows']:,}")
    return table


def invoke(function: str, event: dict[str, Any], label: str) -> dict[str, Any]:
    """Invoke one handler in-process, as Lambda would, and turn a Lambda error into a typed error."""
    from portfolio_engine.local.runner import InProcessLambda, step_error

    with progress_bar() as progress, handler_output_to_stderr():
        progress.add_task(label, total=None)
        payload, function_error = InProcessLambda().invoke(function, event)
    if function_error:
        body = json.loads(payload)
        raise step_error(body["errorType"], payload.decode(), f"{function} failed")
    return json.loads(payload)
