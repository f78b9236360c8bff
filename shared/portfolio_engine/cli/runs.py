"""``spe runs``: the runs recorded in the store of record (every machine, every trigger), newest first."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from portfolio_engine.cli._common import DataDirOpt, JsonOpt, emit, errors_to_exit, out, setup
from portfolio_engine.cli.portfolio import open_store

runs_app = typer.Typer(help="Runs in the store: list, show.", no_args_is_help=True)


@runs_app.command("list")
def list_runs(
    portfolio: Annotated[Optional[str], typer.Option(help="Only the runs of this portfolio.")] = None,
    status: Annotated[Optional[str], typer.Option(help="RUNNING, SUCCEEDED or FAILED.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Runs per page.")] = 20,
    cursor: Annotated[Optional[str], typer.Option(help="The next page's cursor, from the previous page.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs newest first: machine, subject, trigger, status, duration, error."""
    setup(data_dir)
    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.pipeline.listing import filtered_page
    from portfolio_engine.records.events import portfolio_stream

    with errors_to_exit(as_json):
        if status is not None and status.upper() not in ("RUNNING", "SUCCEEDED", "FAILED"):
            raise ConfigurationError(f"Unknown status {status!r}.", hint="Use RUNNING, SUCCEEDED or FAILED.")
        store = open_store()
        owner = portfolio_stream(portfolio) if portfolio else None
        # A status filter reads on until a page is full (the store lists by time, not by status).
        page = filtered_page(
            store,
            "run",
            owner=owner,
            limit=limit,
            cursor=cursor,
            keep=lambda r: status is None or r["status"] == status.upper(),
        )
        items: list[dict[str, Any]] = page.items
        next_cursor = page.cursor
    if as_json:
        emit({"runs": items, "cursor": next_cursor}, True)
        return
    table = Table(title=f"Runs in {store.uri}")
    for column in ("run id", "machine", "subject", "trigger", "status", "started", "seconds", "error"):
        table.add_column(column)
    for r in items:
        table.add_row(
            r["run_id"],
            r["machine"],
            r["subject"],
            r["trigger"],
            r["status"],
            str(r["started_at"])[:19].replace("T", " "),
            "" if r.get("seconds") is None else f"{r['seconds']:.1f}",
            f"{r.get('error')} at {r.get('failed_state')}" if r.get("error") else "",
        )
    out.print(table if items else "No runs recorded yet: `spe run` records one.")
    if next_cursor:
        out.print(f"More: --cursor {next_cursor}")


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run's id (the execution name).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One run: request, status, per-state timings, what it consumed, its result or its error."""
    setup(data_dir)
    from portfolio_engine.exceptions import RecordNotFoundError

    with errors_to_exit(as_json):
        run = open_store().view("run", run_id)
        if run is None:
            raise RecordNotFoundError(
                f"No run {run_id!r} in the store.", hint="`spe runs list` shows the recorded runs."
            )
    if as_json:
        emit(run, True)
        return
    out.print(
        f"[bold]{run['run_id']}[/]: {run['machine']} of {run['subject']} by {run['trigger']}, [bold]{run['status']}[/]"
        f", started {run['started_at']}" + (f", {run['seconds']:.2f} s" if run.get("seconds") is not None else "")
    )
    if run.get("error"):
        out.print(f"[red]{run['error']}[/] at {run.get('failed_state')}: {run.get('cause')}")
    if run.get("steps"):
        table = Table(title="States")
        for column in ("state", "status", "attempts", "seconds", "error"):
            table.add_column(column)
        for s in run["steps"]:
            seconds = "" if s.get("seconds") is None else f"{s['seconds']:.3f}"
            table.add_row(s["state"], s["status"], str(s.get("attempts", 1)), seconds, s.get("error") or "")
        out.print(table)
    inputs = run.get("inputs") or {}
    if inputs:
        shown = {k: v for k, v in inputs.items() if k != "packages"}
        out.print("Inputs: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    result = run.get("result") or {}
    if result.get("committed_weights"):
        weights = ", ".join(
            f"{k} {v:.1%}" for k, v in sorted(result["committed_weights"].items(), key=lambda kv: -kv[1]) if v >= 5e-4
        )
        out.print(f"Committed weights: {weights}")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)


def replay(
    run_id: Annotated[str, typer.Argument(help="A committed rebalance run (`spe runs list`).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute a committed run from its recorded inputs and report the largest difference (0: reproduced).

    Nothing stored changes: the replay reads the lake as of the run's last day and writes to a scratch folder.
    """
    setup(data_dir)
    import tempfile

    from portfolio_engine.adapters.lake import ParquetLake
    from portfolio_engine.adapters.model_registry import StoreModelRegistry
    from portfolio_engine.adapters.training_job import LocalTrainingJob
    from portfolio_engine.cli._common import handler_output_to_stderr, open_lake, progress_bar
    from portfolio_engine.pipeline.replay import replay_run
    from portfolio_engine.settings import Settings

    with errors_to_exit(as_json), tempfile.TemporaryDirectory(prefix="spe-replay-") as scratch:
        store, lake = open_store(), open_lake()
        registry = StoreModelRegistry(lake, store)
        with progress_bar() as progress, handler_output_to_stderr():
            progress.add_task(f"replaying {run_id}", total=None)
            report = replay_run(
                run_id,
                store=store,
                lake=lake,
                registry=registry,
                jobs=LocalTrainingJob(in_process=True),
                scratch=ParquetLake(scratch),
                deployed_version=Settings().code_version,
            )
    if as_json:
        emit(report, True)
        return
    verdict = "[green]reproduced[/]" if report["max_abs_diff"] <= 1e-12 else "[yellow]differs[/]"
    out.print(
        f"Run {run_id} ({report['portfolio']}, as of {report['as_of']}): {verdict}, "
        f"max |difference| {report['max_abs_diff']:.3g}"
    )
    for section, diff in report["diffs"].items():
        out.print(f"  {section}: {diff:.3g}")
    for change in report["inputs_changed"]:
        out.print(f"[yellow]Input changed since the run[/]: {change}")
    code = report["code_version"]
    if code["recorded"] != code["now"]:
        out.print(f"Code changed since the run: {code['recorded']} -> {code['now']}")
    for package, versions in report["packages_changed"].items():
        out.print(f"Package {package}: {versions['recorded']} -> {versions['now']}")
