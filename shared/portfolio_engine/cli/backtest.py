"""``spe backtest``: the backtest state machine, executed locally, and its report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from portfolio_engine.cli._common import (
    BenchmarksOpt,
    DataDirOpt,
    DayOpt,
    JsonOpt,
    SourceOpt,
    SymbolsOpt,
    benchmarks_list,
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

#: Rows of the printed metrics table (the JSON and the report carry every row).
SHOWN = ("CAGR", "volatility", "Sharpe", "Sortino", "max drawdown", "Calmar", "turnover (annual)")


def register(app: typer.Typer) -> None:
    app.command()(backtest)


def backtest(
    spec: Annotated[Optional[Path], typer.Option(help="Portfolio spec YAML (default: the bundled default).")] = None,
    source: SourceOpt = "bundled",
    symbols: SymbolsOpt = None,
    benchmarks: BenchmarksOpt = None,
    start: DayOpt = None,
    end: DayOpt = None,
    frequency: Annotated[str, typer.Option(help="daily, weekly, monthly, quarterly or yearly.")] = "monthly",
    window: Annotated[str, typer.Option(help="rolling or expanding estimation window.")] = "rolling",
    window_length: Annotated[int, typer.Option(help="Trading days of the estimation window.")] = 252,
    cost_bps: Annotated[float, typer.Option(help="Proportional transaction cost, basis points.")] = 10.0,
    windows: Annotated[int, typer.Option("--windows", help="Walk-forward windows run by the Map.")] = 8,
    policy: Annotated[str, typer.Option(help="spec or regime_aware.")] = "spec",
    risk_free: Annotated[
        Optional[str],
        typer.Option(
            help="Annual risk-free rate of the cash and the Sharpe ratios: a decimal (0.02) or treasury_3m "
            "(the lake's 3-month Treasury yields, forward-filled). Default 0."
        ),
    ] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write a self-contained HTML report here.")] = None,
    figures: Annotated[
        Optional[Path], typer.Option(help="Write the report's figures here, one PNG each (created if missing).")
    ] = None,
    run_id: Annotated[Optional[str], typer.Option(help="Execution name (default: backtest-<UTC time>).")] = None,
    data_dir: DataDirOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the backtest state machine locally on curated prices and print the metrics table."""
    setup(data_dir, verbose)
    import yaml

    from portfolio_engine.contracts.backtest import BacktestRequest
    from portfolio_engine.exceptions import SpecificationError
    from portfolio_engine.local.runner import LocalStateMachineRunner

    with errors_to_exit(as_json):
        spec_dict = None
        if spec is not None:
            try:
                spec_dict = yaml.safe_load(spec.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise SpecificationError(f"Cannot read the spec {spec}: {exc}", hint="Pass a YAML file.") from exc
        request = parse_request(
            BacktestRequest,
            source=source,
            symbols=symbols_list(symbols),
            benchmarks=benchmarks_list(benchmarks),
            spec=spec_dict,
            start=start,
            end=end,
            frequency=frequency,
            window=window,
            window_length=window_length,
            cost_bps=cost_bps,
            n_windows=windows,
            policy=policy,
            risk_free=risk_free,
        )
        name = run_id or f"backtest-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        with progress_bar() as progress, handler_output_to_stderr():
            task = progress.add_task("backtest", total=None)

            def listener(event: str, function: str, _detail: dict[str, Any]) -> None:
                if event == "start":
                    progress.update(task, description=f"backtest: {function}")

            result = LocalStateMachineRunner(listener=listener).run(
                "backtest", request.model_dump(mode="json"), name=name
            )
        output = result.raise_for_status()
        lake = open_lake()
        stored = lake.get_json(output["result"]["result_key"])
        summary = {
            "run_id": name,
            "seconds": result.seconds,
            "result_key": lake.key_uri(output["result"]["result_key"]),
            **{k: output["result"][k] for k in ("strategy", "first_date", "last_date", "n_days", "n_decisions")},
            "n_windows": len(output["windows"]),
            "columns": output["result"]["columns"],
            "metrics": stored["metrics"],
            "skipped": stored.get("skipped", []),
        }
        if report is not None or figures is not None:
            inputs = _figure_inputs(lake, output, stored)
        if report is not None:
            report.write_text(_report_html(inputs, output, stored))
            summary["report"] = str(report)
        if figures is not None:
            summary["figures"] = _write_figures(inputs, figures)
    if as_json:
        emit(summary, True)
    else:
        out.print(_metrics_table(summary))
        if report is not None:
            out.print(f"Report: {report}")
        if figures is not None:
            out.print(f"Figures: {', '.join(summary['figures'])}")


def _metrics_table(summary: dict[str, Any]) -> Table:
    title = (
        f"Backtest {summary['run_id']}: {summary['strategy']}, {summary['first_date']} .. {summary['last_date']}, "
        f"{summary['n_decisions']} decisions in {summary['n_windows']} windows, {summary['seconds']:.1f} s"
    )
    table = Table(title=title)
    columns = summary["columns"]
    table.add_column("metric")
    for column in columns:
        table.add_column(column, justify="right")
    for metric in SHOWN:
        values = [summary["metrics"][c].get(metric) for c in columns]
        if any(v is not None for v in values):
            table.add_row(metric, *("" if v is None else f"{v:.3f}" for v in values))
    return table


def report_inputs(stored: dict[str, Any], days: Any) -> dict[str, Any]:
    """The report's ``regimes``, ``attribution`` and ``oos`` arguments from a stored ``result.json``.

    ``regimes``: the states chosen at the decisions as a one-hot step frame over ``days`` (None without regimes);
    ``attribution``: the Fama-French summary and the Brinson-Fachler linked totals by name (None without either);
    ``oos``: the in-sample against out-of-sample summary (None when skipped).
    """
    import pandas as pd

    from portfolio_engine.pipeline.backtest_analysis import regime_frame

    chosen = stored.get("regimes") or {}
    regimes = regime_frame(chosen, pd.DatetimeIndex(days)) if any(chosen.values()) else None
    stored_attribution = stored.get("attribution") or {}
    attribution: dict[str, Any] = {}
    factor = stored_attribution.get("fama_french")
    if factor:
        name = f"Fama-French 3 factors (R2 {factor['r_squared']:.2f}, {factor['months']} months)"
        attribution[name] = pd.DataFrame.from_dict(factor["summary"], orient="index").astype(float)
    etf = stored_attribution.get("etf_factors")
    if etf:
        name = f"Factor ETFs, daily (R2 {etf['r_squared']:.2f}, {etf['days']} days)"
        attribution[name] = pd.DataFrame.from_dict(etf["summary"], orient="index").astype(float)
    brinson = stored_attribution.get("brinson")
    if brinson:
        total = pd.Series(brinson["total"], dtype="float64", name="linked effect")
        attribution[f"Brinson-Fachler by sector vs {brinson['benchmark']} (Carino-linked)"] = total
    oos = stored.get("out_of_sample")
    return {
        "regimes": regimes,
        "attribution": attribution or None,
        "oos": pd.DataFrame.from_dict(oos, orient="index").astype(float) if oos else None,
    }


def window_table(stored: dict[str, Any]) -> Any:
    """The stored per-window figures (``window_results``) as a table, one row per window (None without them)."""
    from portfolio_engine.pipeline.backtest_analysis import windows_frame

    windows = stored.get("windows")
    return windows_frame(windows) if windows else None


def _figure_inputs(lake: Any, output: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The arguments the figures and the report share: equity, net returns, weights, regimes, attribution."""
    import pandas as pd

    from portfolio_engine.contracts.backtest import BacktestWindowOutput
    from portfolio_engine.pipeline.backtest import load_backtest

    result = load_backtest(lake, [BacktestWindowOutput.model_validate(w) for w in output["windows"]])
    equity = pd.DataFrame({name: pd.Series(stored["equity"][name]) for name in output["result"]["columns"]})
    equity.index = pd.DatetimeIndex(equity.index)
    return {
        "title": f"Backtest {output['run_id']}: {stored['strategy']}",
        "equity": equity,
        "net_returns": result.net_returns,
        "weights": result.weights,
        **report_inputs(stored, result.net_returns.index),
    }


def _write_figures(inputs: dict[str, Any], folder: Path) -> list[str]:
    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.reports.backtest import backtest_figures_png

    pngs = backtest_figures_png(**{k: v for k, v in inputs.items() if k != "oos"})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for key, png in pngs.items():
            path = folder / f"{key}.png"
            path.write_bytes(png)
            paths.append(str(path))
    except OSError as exc:
        message = f"Cannot write the figures to {folder}: {exc}"
        raise ConfigurationError(message, hint="Pass a writable folder.") from exc
    return paths


def _report_html(inputs: dict[str, Any], output: dict[str, Any], stored: dict[str, Any]) -> str:
    import pandas as pd

    from portfolio_engine.reports.backtest import backtest_report_html

    return backtest_report_html(
        metrics=pd.DataFrame(stored["metrics"])[output["result"]["columns"]].astype(float),
        windows=window_table(stored),
        **inputs,
    )
