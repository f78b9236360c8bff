"""``spe portfolio``: the portfolios in the store of record: list, show, holdings, history, reset, archive, restore.

Reads never change anything; ``reset``, ``archive`` and ``restore`` each append one event. A spec is saved with
``spe optimize --spec FILE --save`` (validated completely), holdings move only through ``spe run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from portfolio_engine.cli._common import DataDirOpt, JsonOpt, emit, errors_to_exit, out, setup

if TYPE_CHECKING:
    from portfolio_engine.ports import Store

portfolio_app = typer.Typer(help="Portfolios in the store: list, show, holdings, history, reset.", no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="The portfolio's name (its spec's name).")]


def open_store() -> Store:
    """The store of record the settings point at (read after ``setup`` has set the data directory)."""
    from portfolio_engine.adapters.store import build_store
    from portfolio_engine.settings import Settings

    return build_store(Settings())


def _weights_table(title: str, weights: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("symbol")
    table.add_column("weight", justify="right")
    for symbol, weight in sorted(weights.items(), key=lambda kv: -abs(kv[1])):
        if abs(weight) >= 5e-5:
            table.add_row(symbol, f"{weight:.2%}")
    return table


@portfolio_app.command("list")
def list_portfolios(
    archived: Annotated[bool, typer.Option("--all", help="Include archived portfolios.")] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The stored portfolios, with their spec version, holdings date and last run."""
    setup(data_dir)
    with errors_to_exit(as_json):
        store = open_store()
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = store.views("portfolio", limit=100, cursor=cursor)
            items += [p for p in page.items if archived or p["status"] == "active"]
            if page.cursor is None:
                break
            cursor = page.cursor
    if as_json:
        emit(items, True)
        return
    table = Table(title=f"Portfolios in {store.uri}")
    for column in ("name", "status", "method", "spec version", "holdings as of", "last run"):
        table.add_column(column)
    for p in items:
        holdings, last = p.get("holdings") or {}, p.get("last_run") or {}
        table.add_row(
            p["name"],
            p["status"],
            str(p["spec"].get("method")),
            str(p["spec_version"]),
            str(holdings.get("as_of") or "-"),
            f"{last.get('run_id')} ({last.get('status')})" if last else "-",
        )
    out.print(table if items else "No portfolios yet: `spe run` creates 'default'.")


@portfolio_app.command("show")
def show(name: NameArg, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The portfolio's spec in force, its holdings, and its latest committed result."""
    setup(data_dir)
    from portfolio_engine.pipeline.portfolios import get_portfolio

    with errors_to_exit(as_json):
        view = get_portfolio(open_store(), name)
    document = view.model_dump(mode="json")
    if as_json:
        emit(document, True)
        return
    spec = view.spec
    out.print(
        f"[bold]{view.name}[/] ({view.status}) spec v{view.spec_version} from {view.spec_origin}: "
        f"{spec.get('method')}, universe {len(spec.get('universe') or [])} symbols, "
        f"limits {sorted(spec.get('limits') or {})}"
    )
    if view.holdings is not None:
        out.print(
            _weights_table(f"Holdings as of {view.holdings.as_of} (run {view.holdings.run_id})", view.holdings.weights)
        )
    else:
        out.print("Holdings: none (the next run starts from cash).")
    latest = view.latest or {}
    if latest:
        regime = latest.get("regime") or {}
        out.print(
            f"Latest result: run {latest.get('run_id')} as of {latest.get('as_of')}, {latest.get('method')}"
            f"{', regime ' + str(regime.get('regime')) if regime.get('regime') else ''}; "
            f"{'traded' if latest.get('rebalanced') else 'held'} ({latest.get('decision_reason')})"
        )
        breaches = latest.get("breaches") or []
        out.print(
            "Limits: within limits"
            if not breaches
            else "Limits: "
            + ", ".join(f"{b['limit']} {b['value']:.3g} vs {b['threshold']:.3g} ({b['severity']})" for b in breaches)
        )
    if view.last_run:
        out.print(f"Last run: {view.last_run['run_id']} {view.last_run['status']} at {view.last_run['at']}")


@portfolio_app.command("holdings")
def holdings(name: NameArg, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The weights the portfolio holds (moved only by a committed run)."""
    setup(data_dir)
    from portfolio_engine.pipeline.portfolios import get_portfolio

    with errors_to_exit(as_json):
        view = get_portfolio(open_store(), name)
    document = None if view.holdings is None else view.holdings.model_dump(mode="json")
    if as_json:
        emit({"portfolio": name, "holdings": document}, True)
    elif view.holdings is None:
        out.print(f"{name} holds nothing yet (the next run starts from cash).")
    else:
        out.print(
            _weights_table(f"{name} as of {view.holdings.as_of} (run {view.holdings.run_id})", view.holdings.weights)
        )


def _summary(event: Any) -> str:
    data = event.data
    if event.type in ("PortfolioCreated", "SpecChanged"):
        return f"spec {data['spec'].get('method')} ({data.get('origin')})"
    if event.type == "RunStarted":
        return f"{data.get('machine')} by {data.get('trigger')}"
    if event.type == "TargetProposed":
        return f"{data.get('method')} target, decision {data.get('decision', {}).get('reason')}"
    if event.type == "RunCommitted":
        return "holdings moved" if data.get("holdings_moved") else "holdings kept"
    if event.type == "RunFailed":
        return f"{data.get('error')} at {data.get('failed_state')}"
    if event.type == "AlertSent":
        return f"{data.get('limit')} {data.get('severity')}: {data.get('status')}"
    if event.type == "HoldingsReset":
        return f"holdings cleared ({data.get('reason') or 'no reason given'})"
    return ""


@portfolio_app.command("history")
def history(
    name: NameArg,
    limit: Annotated[int, typer.Option(min=1, help="The most recent events to show.")] = 50,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The portfolio's event log: every spec change, run, decision and alert, oldest first."""
    setup(data_dir)
    from portfolio_engine.pipeline.portfolios import portfolio_events

    with errors_to_exit(as_json):
        events = portfolio_events(open_store(), name)[-limit:]
    if as_json:
        emit([e.model_dump(mode="json") for e in events], True)
        return
    table = Table(title=f"{name}: the last {len(events)} events")
    for column in ("version", "recorded at", "event", "run", "what"):
        table.add_column(column)
    for event in events:
        table.add_row(
            str(event.version),
            f"{event.recorded_at:%Y-%m-%d %H:%M:%S}",
            event.type,
            event.run_id or "",
            _summary(event),
        )
    out.print(table)


@portfolio_app.command("reset")
def reset(
    name: NameArg,
    reason: Annotated[str, typer.Option(help="Why (kept in the log).")] = "reset from the CLI",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Forget the holdings: the next run trades from cash. The holdings before stay in the history."""
    setup(data_dir)
    from portfolio_engine.pipeline.portfolios import reset_holdings

    with errors_to_exit(as_json):
        view, before = reset_holdings(open_store(), name, reason=reason)
    if as_json:
        emit({"portfolio": name, "holdings_before": before, "version": view.version}, True)
    else:
        out.print(
            f"{name}: holdings cleared (they were {'none' if before is None else 'as of ' + str(before['as_of'])})."
        )


@portfolio_app.command("archive")
def archive(name: NameArg, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Archive a portfolio: its history stays, it is no longer run."""
    setup(data_dir)
    from portfolio_engine.pipeline.portfolios import archive_portfolio

    with errors_to_exit(as_json):
        view = archive_portfolio(open_store(), name)
    emit(view.model_dump(mode="json"), as_json) if as_json else out.print(f"{name} archived.")


@portfolio_app.command("restore")
def restore(name: NameArg, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Make an archived portfolio active again."""
    setup(data_dir)
    from portfolio_engine.pipeline.portfolios import restore_portfolio

    with errors_to_exit(as_json):
        view = restore_portfolio(open_store(), name)
    emit(view.model_dump(mode="json"), as_json) if as_json else out.print(f"{name} restored.")
