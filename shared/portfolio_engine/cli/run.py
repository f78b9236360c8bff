"""``spe run``: the rebalance state machine, executed locally."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Optional

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
    handler_output_to_stderr,
    open_lake,
    out,
    parse_request,
    progress_bar,
    setup,
    symbols_list,
)

STEP_NAMES = {
    "start_run": "StartRun",
    "ingest_prices": "IngestPrices",
    "validate_prices": "ValidatePrices",
    "build_features": "BuildFeatures",
    "detect_regime": "DetectRegime",
    "optimize_portfolio": "Optimize",
    "plan_risk": "PlanRisk",
    "simulate_risk_shard": "MonteCarlo",
    "aggregate_risk": "AggregateRisk",
    "stress_test": "StressTest",
    "check_limits": "CheckLimits",
    "propose_hedge": "ProposeHedge",
    "send_alerts": "Alert",
    "commit_run": "CommitRun",
}


def register(app: typer.Typer) -> None:
    app.command()(run)


def run(
    portfolio: Annotated[
        str, typer.Option(help="The stored portfolio to rebalance ('default' is created on first use).")
    ] = "default",
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
    """Rebalance a portfolio: run the rebalance state machine locally and commit the result to the store.

    The one command that moves holdings. Each run is recorded (`spe runs list`), committed once at the end or,
    if a step fails, recorded as failed with the book left as it was.
    """
    setup(data_dir, verbose)
    from portfolio_engine.contracts import RunRequest
    from portfolio_engine.exceptions import StateMachineError
    from portfolio_engine.local.runner import LocalStateMachineRunner
    from portfolio_engine.pipeline.summary import summarize_run

    with errors_to_exit(as_json):
        request = parse_request(
            RunRequest,
            portfolio=portfolio,
            source=source,
            symbols=symbols_list(symbols),
            benchmarks=benchmarks_list(benchmarks),
            start=start,
            end=end,
            file_uri=file,
            validation_policy=policy,
        )
        name = run_id or f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        with progress_bar() as progress, handler_output_to_stderr():
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
        try:
            output = result.raise_for_status()
        except StateMachineError as exc:
            if exc.error == "DuplicateError":
                raise
            recorded = f"The failed run is recorded: `spe runs show {name}`."
            raise StateMachineError(
                exc.message, error=exc.error, cause=exc.cause, hint=f"{exc.hint} {recorded}" if exc.hint else recorded
            ) from exc
        summary = summarize_run(output, open_lake(), seconds=result.seconds)
    if as_json:
        emit(summary, True)
    else:
        _print_run(summary)


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
    regime = summary.get("regime") or {}
    if regime.get("available"):
        probabilities = ", ".join(f"{name} {p:.1%}" for name, p in regime["probabilities"].items())
        out.print(
            f"Regime ({regime['symbol']}, model {regime['model_name']} {regime['model_version']}"
            f"{', trained now' if regime['trained_now'] else ''}): [bold]{regime['regime']}[/] on {regime['as_of']}"
            f" ({probabilities}; filtered, data to that day only)"
        )
    elif regime:
        out.print(f"Regime: not available ({regime.get('reason')})")
    out.print(coverage_table(summary["curated"]["per_symbol"], "Curated prices per symbol"))
    portfolio = summary.get("portfolio")
    if portfolio:
        out.print(_portfolio_table(portfolio))
        for change in portfolio.get("adaptations") or []:
            out.print(f"[yellow]Default spec adapted to this run:[/] {change}")
    _print_risk(summary)
    commit = summary.get("commit") or {}
    if commit:
        moved = "holdings moved to the target" if commit["holdings_moved"] else "holdings kept"
        promoted = f"; regime model {commit['champion_promoted']} promoted" if commit.get("champion_promoted") else ""
        out.print(
            f"[bold]Committed[/] run {summary['run_id']} ({summary['status']}): {moved}{promoted}; "
            f"portfolio stream at version {commit['version']} (`spe runs show {summary['run_id']}`)"
        )


def _print_risk(summary: dict[str, Any]) -> None:
    risk, stress, limits = summary.get("risk"), summary.get("stress"), summary.get("limits")
    if not risk:
        return
    mc = risk["monte_carlo"]
    tails = ", ".join(
        f"VaR {level} {mc[f'var_{level}']:.1%} / CVaR {mc[f'cvar_{level}']:.1%}"
        for level in ("0.95", "0.99")
        if f"var_{level}" in mc
    )
    out.print(
        f"Risk over {risk['horizon_days']} days ({risk['n_paths']:,} regime-switching Monte Carlo paths): {tails}; "
        f"P(drawdown > 10%) {mc.get('p_drawdown_gt_0.1', float('nan')):.1%}"
    )
    if stress:
        out.print(f"Stress: worst historical scenario {stress['worst_scenario']} ({-stress['worst_loss']:+.1%})")
    if limits:
        breaches = limits["breaches"]
        verdict = (
            "within limits"
            if not breaches
            else ", ".join(
                f"{b['limit']} {b['value']:.3g} > {b['threshold']:.3g} ({b['severity']})"
                if b["severity"] != "warning"
                else f"{b['limit']} {b['value']:.3g} near {b['threshold']:.3g} (warning)"
                for b in breaches
            )
        )
        out.print(f"Limits: {verdict}")
    hedge = summary.get("hedge")
    if hedge:
        out.print(f"Hedge proposal (not executed): {hedge['message']}")
    alerts = summary.get("alerts")
    if alerts:
        out.print(f"Alerts: {alerts['sent']} sent, {alerts['suppressed']} suppressed, {alerts['failed']} failed")


def _regime_policy_text(portfolio: dict[str, Any]) -> str:
    """``state_3 = turbulent, policy 'turbulent'``: the state, its role by volatility rank, the policy key applied."""
    state, role, key = portfolio["regime"], portfolio.get("regime_role"), portfolio.get("policy")
    where = f"{state} = {role}" if role and role != state else str(state)
    return f"{where}, policy {key!r}" if key else f"{where}, no policy"


def _portfolio_table(portfolio: dict[str, Any]) -> Table:
    decision = portfolio["decision"]
    title = (
        f"Portfolio {portfolio['portfolio']} on {portfolio['as_of']}: {portfolio['method']}"
        f"{' (regime-aware, ' + _regime_policy_text(portfolio) + ')' if portfolio['regime_aware'] else ''}; "
        f"expected return {portfolio['expected_return']:.1%}, volatility {portfolio['volatility']:.1%}, "
        f"Sharpe {portfolio['sharpe']:.2f}; {'rebalance' if decision['rebalance'] else 'hold'} ({decision['reason']})"
    )
    table = Table(title=title)
    for col in ("symbol", "target", "held", "risk share"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    target, held, risk = portfolio["target_weights"], portfolio["holdings"], portfolio["risk_contributions"]
    for symbol in sorted(target, key=lambda s: -target[s]):
        if abs(target[symbol]) > 1e-6 or abs(held.get(symbol, 0.0)) > 1e-6:
            table.add_row(
                symbol, f"{target[symbol]:.2%}", f"{held.get(symbol, 0.0):.2%}", f"{risk.get(symbol, 0.0):.1%}"
            )
    return table
