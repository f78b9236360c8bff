"""``spe risk monitor``: the portfolio's holdings marked bar by bar, risk updated incrementally on each bar.

It feeds the lake's bars (daily, or intraday after ``spe data ingest --interval 5m``) one at a time to
:class:`~portfolio_engine.risk.monitor.RiskMonitor`, which keeps the value, running peak, drawdown and
EWMA volatility in O(assets) per bar and grades the limits it can measure on every bar.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from portfolio_engine.cli._common import (
    DataDirOpt,
    DayOpt,
    JsonOpt,
    SourceOpt,
    emit,
    errors_to_exit,
    open_lake,
    out,
    setup,
)

#: Bars in a 6.5-hour session, by interval (annualising the per-bar EWMA variance).
BARS_PER_DAY = {"1d": 1.0, "1h": 6.5, "30m": 13.0, "15m": 26.0, "5m": 78.0, "1m": 390.0}


def monitor(
    portfolio: Annotated[str, typer.Option(help="The portfolio whose stored holdings are monitored.")] = "default",
    source: SourceOpt = "bundled",
    interval: Annotated[str, typer.Option(help="Bars: 1d, or intraday 1h/30m/15m/5m/1m.")] = "1d",
    since: DayOpt = None,
    last: Annotated[int, typer.Option(help="How many of the last bars to list.")] = 10,
    alert: Annotated[bool, typer.Option("--alert/--no-alert", help="Send the last bar's breaches.")] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay the bars since a day through the incremental risk monitor of the portfolio's holdings."""
    setup(data_dir)
    import pandas as pd

    from portfolio_engine.cli.portfolio import open_store
    from portfolio_engine.exceptions import ConfigurationError, EmptyDataError
    from portfolio_engine.pipeline.portfolios import read_book
    from portfolio_engine.pipeline.risk_checks import sector_map, spec_in_force
    from portfolio_engine.risk.monitor import RiskMonitor

    with errors_to_exit(as_json):
        if interval not in BARS_PER_DAY:
            raise ConfigurationError(f"Unknown interval {interval!r}.", hint=f"Use one of {list(BARS_PER_DAY)}.")
        lake = open_lake()
        held = read_book(open_store(), portfolio).holdings
        if held is None or held.run_id is None:
            raise EmptyDataError(f"Portfolio {portfolio!r} holds nothing yet.", hint="Run `spe run` first.")
        weights = pd.Series(held.weights, dtype=float)
        weights = weights[weights.abs() > 0]
        # The limits of the spec in force when the run that set the holdings decided them.
        limits = spec_in_force(lake, f"portfolios/{portfolio}/runs/{held.run_id}.json").limits
        start = since.date() if isinstance(since, datetime) else None
        bars = lake.read_bars(source, list(weights.index), start=start, interval=interval)
        prices = bars.pivot(index="date", columns="symbol", values="adj_close").sort_index().dropna()
        if len(prices) < 2:
            raise EmptyDataError(
                f"Fewer than two {interval} bars of the holdings since {start or 'the start'}.",
                hint="Pick an earlier --since, or ingest the bars (`spe data ingest --interval ...`).",
            )
        tracker = RiskMonitor(
            weights,
            limits,
            bar_kind="price",
            bars_per_day=BARS_PER_DAY[interval],
            sector_map=sector_map(lake, list(weights.index)) or None,
        )
        snapshots = [s for s in (tracker.update(row, timestamp=t) for t, row in prices.iterrows()) if s is not None]
        final = snapshots[-1]
        document: dict[str, Any] = {
            "portfolio": portfolio,
            "interval": interval,
            "bars": len(snapshots),
            "first": str(snapshots[0].timestamp),
            "last": str(final.timestamp),
            "value": final.value,
            "drawdown": final.drawdown,
            "max_drawdown": final.max_drawdown,
            "volatility": final.volatility,
            "measured": dict(final.measured),
            "breaches": [b.to_dict() for b in final.breaches],
            "unmonitored": sorted(tracker.unmonitored),
            "history": [
                {"timestamp": str(s.timestamp), "value": s.value, "drawdown": s.drawdown, "volatility": s.volatility}
                for s in snapshots[-last:]
            ],
        }
        if alert and final.breaches:
            document["alerts"] = _send(lake, portfolio, final.breaches)
    if as_json:
        emit(document, True)
        return
    table = Table(title=f"{portfolio}: {document['bars']} {interval} bars, {document['first']} .. {document['last']}")
    for column in ("bar", "value", "drawdown", "EWMA vol"):
        table.add_column(column, justify="left" if column == "bar" else "right")
    for row in document["history"]:
        table.add_row(row["timestamp"], f"{row['value']:.4f}", f"{row['drawdown']:.2%}", f"{row['volatility']:.1%}")
    out.print(table)
    verdict = ", ".join(f"{b['limit']} {b['value']:.3g} ({b['severity']})" for b in document["breaches"])
    out.print(f"Max drawdown {document['max_drawdown']:.2%}; limits: {verdict or 'within'}")


def _send(lake: Any, portfolio: str, breaches: Any) -> dict[str, int]:
    from portfolio_engine.adapters.notifiers import build_alert_dispatcher
    from portfolio_engine.risk.alerts import alerts_from_breaches
    from portfolio_engine.settings import Settings

    dispatcher = build_alert_dispatcher(Settings(), lake=lake)
    outcomes = [dispatcher.dispatch(a) for a in alerts_from_breaches(portfolio, breaches, min_severity="warning")]
    return {status: sum(o.status == status for o in outcomes) for status in ("sent", "suppressed", "failed")}


def register(risk_app: typer.Typer) -> None:
    risk_app.command("monitor")(monitor)
