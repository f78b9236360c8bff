"""``spe schedule``: the EventBridge schedules CDK deploys, fired on this machine.

The schedules come from ``infra/cdk/cdk.json`` (``--config`` for another file of the same shape). A state
machine target runs with the local runner under its deterministic execution name
(``<schedule>-<%Y%m%dT%H%MZ>``), and is skipped when the store of record already holds a run with that id; a
function target is invoked in-process and relies on its own idempotency (see
:mod:`portfolio_engine.local.scheduler`).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from portfolio_engine.cli._common import DataDirOpt, JsonOpt, err, errors_to_exit, handler_output_to_stderr, out, setup

if TYPE_CHECKING:
    from portfolio_engine.local.runner import LocalStateMachineRunner
    from portfolio_engine.local.scheduler import Outcome, RunReport, Schedule, ScheduledRun, Scheduler


def register(app: typer.Typer) -> None:
    app.command("schedule")(schedule)


# The clock, the sleep and the runner, read when the command runs: tests replace them.
def now() -> datetime:
    return datetime.now(UTC)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def make_runner() -> LocalStateMachineRunner:
    from portfolio_engine.local.runner import LocalStateMachineRunner

    return LocalStateMachineRunner()


def default_config() -> Path:
    from portfolio_engine.local.runner import REPO_ROOT

    return REPO_ROOT / "infra" / "cdk" / "cdk.json"


class LocalLauncher:
    """Run a scheduled run to its end: a state machine with the local runner, a function in-process."""

    def __init__(self, runner: LocalStateMachineRunner) -> None:
        self.runner = runner

    def __call__(self, run: ScheduledRun) -> Outcome:
        from portfolio_engine.local.scheduler import Outcome

        schedule = run.schedule
        with handler_output_to_stderr():
            if schedule.function:
                payload, function_error = self.runner.lambdas.invoke(schedule.function, run.payload())
                if not function_error:
                    return Outcome("SUCCEEDED")
                body = json.loads(payload)
                return Outcome("FAILED", error=str(body.get("errorType")), cause=str(body.get("errorMessage")))
            assert schedule.definition is not None
            machine = schedule.definition.removesuffix(".asl.json")
            result = self.runner.run(machine, run.payload(), name=run.run_id)
        return Outcome(result.status, error=result.error, cause=result.cause)


def _select(schedules: tuple[Schedule, ...], only: list[str] | None) -> list[Schedule]:
    from portfolio_engine.exceptions import ConfigurationError

    if not only:
        return [s for s in schedules if s.enabled]
    by_name = {s.name: s for s in schedules}
    unknown = sorted(set(only) - set(by_name))
    if unknown:
        raise ConfigurationError(f"No schedule named {unknown}.", hint=f"Known: {', '.join(by_name)}.")
    disabled = sorted(name for name in set(only) if not by_name[name].enabled)
    if disabled:
        raise ConfigurationError(
            f"Schedule(s) {disabled} are disabled.", hint="Set their 'enabled' to true in the configuration first."
        )
    return [s for s in schedules if s.name in set(only)]


def _check_definitions(schedules: list[Schedule], runner: LocalStateMachineRunner) -> None:
    from portfolio_engine.exceptions import ConfigurationError

    for s in schedules:
        if s.definition is None:
            continue
        path = runner.state_machines_dir / s.definition
        if not s.definition.endswith(".asl.json") or not path.exists():
            raise ConfigurationError(
                f"Schedule {s.name!r}: state machine {s.state_machine!r} has no definition {path}.",
                hint="spe.stateMachines maps a name to a <file>.asl.json under state_machines/.",
            )


def _print_report(report: RunReport, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
        sys.stdout.flush()
        return
    when = f"{report.scheduled_for:%Y-%m-%d %H:%M} UTC"
    head = f"{report.schedule} ({when}) {report.run_id}"
    if report.action == "skipped":
        out.print(f"[dim]{escape(head)}: skipped, it already ran[/]")
    elif not report.failed:
        out.print(f"[green]{escape(head)}: {report.status}[/] in {report.seconds:.1f} s")
    else:
        out.print(f"[red]{escape(head)}: {report.status}[/]: {escape(f'{report.error}: {report.cause}')}")


def schedule(
    once: Annotated[
        bool, typer.Option("--once", help="Run each schedule's latest due fire time if it has not run yet, then exit.")
    ] = False,
    only: Annotated[
        Optional[list[str]], typer.Option("--only", help="Only this schedule (repeat for several).")
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="The CDK configuration (default infra/cdk/cdk.json).")
    ] = None,
    data_dir: DataDirOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the EventBridge schedules of the CDK configuration locally, until interrupted (Ctrl-C).

    Runs are named <schedule>-<fire time UTC as %Y%m%dT%H%MZ>.
    A state machine run that the store already holds is skipped.
    --once exits with code 1 if a run failed.
    """
    setup(data_dir, verbose)
    from portfolio_engine.local.scheduler import Scheduler, load_schedules

    reports: list[RunReport] = []

    def report(item: RunReport) -> None:
        reports.append(item)
        _print_report(item, as_json)
        if not once and not as_json and scheduler is not None:
            upcoming = scheduler.next_fire(item.scheduled_for)
            if upcoming:
                names = ", ".join(s.name for s in upcoming[1])
                err.print(f"Next: {escape(names)} at {upcoming[0]:%Y-%m-%d %H:%M} UTC.")

    scheduler: Scheduler | None = None

    try:
        with errors_to_exit(as_json):
            path = config or default_config()
            selected = _select(load_schedules(path), only)
            runner = make_runner()
            _check_definitions(selected, runner)
            store = None
            if any(s.state_machine for s in selected):
                from portfolio_engine.adapters.store import build_store
                from portfolio_engine.settings import Settings

                store = build_store(Settings())

            def already_ran(run: ScheduledRun) -> bool:
                # State machines record their runs under the execution name; functions record none.
                return (
                    store is not None and run.schedule.state_machine is not None and bool(store.view("run", run.run_id))
                )

            scheduler = Scheduler(
                selected, launch=LocalLauncher(runner), already_ran=already_ran, now=now, sleep=sleep, report=report
            )
            if once:
                scheduler.run_due()
            else:
                _announce(scheduler, path)
                scheduler.run_forever()
                err.print("No schedule fires again.")
    except KeyboardInterrupt:
        err.print(f"Stopped (Ctrl-C) after {len(reports)} run(s).")
        raise typer.Exit(0) from None
    if once and any(r.failed for r in reports):
        raise typer.Exit(1)


def _announce(scheduler: Scheduler, path: Path) -> None:
    upcoming = scheduler.next_fire()
    names = ", ".join(s.name for s in scheduler.schedules) or "none"
    first = f"; next: {', '.join(s.name for s in upcoming[1])} at {upcoming[0]:%Y-%m-%d %H:%M} UTC" if upcoming else ""
    err.print(f"Scheduling {escape(names)} from {escape(str(path))}{escape(first)}. Ctrl-C to stop.")
