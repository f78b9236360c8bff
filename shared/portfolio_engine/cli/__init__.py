"""``spe``: the engine's command line. Every command takes ``--json``; long work shows progress.

Commands run the same code as AWS: ``spe run`` executes ``state_machines/rebalance.asl.json`` with the
local runner, and ``spe data ingest``/``validate`` invoke the Lambda handlers in-process.
"""

from __future__ import annotations

import typer

from portfolio_engine.cli import api, backtest, optimize, risk_monitor, run, runs, schedule
from portfolio_engine.cli.data import data_app
from portfolio_engine.cli.portfolio import portfolio_app
from portfolio_engine.cli.regime import regime_app
from portfolio_engine.cli.risk import risk_app
from portfolio_engine.cli.runs import runs_app

app = typer.Typer(help="Stochastic Portfolio Engine.", no_args_is_help=True, pretty_exceptions_enable=False)
run.register(app)
optimize.register(app)
backtest.register(app)
schedule.register(app)
runs.register(app)
api.register(app)
app.add_typer(data_app, name="data")
app.add_typer(regime_app, name="regime")
risk_monitor.register(risk_app)
app.add_typer(risk_app, name="risk")
app.add_typer(portfolio_app, name="portfolio")
app.add_typer(runs_app, name="runs")


def main() -> None:  # pragma: no cover - console entry point
    app()


__all__ = ["app", "main"]
