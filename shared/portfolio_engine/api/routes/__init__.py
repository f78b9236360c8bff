"""The API's routes, one module per resource; ``ROUTERS`` is what ``app.build_app`` includes."""

from __future__ import annotations

from portfolio_engine.api.routes import alerts, api_keys, backtests, health, portfolios, regime, report, runs, what_if

ROUTERS = [
    health.router,
    portfolios.router,
    report.router,
    runs.router,
    backtests.router,
    alerts.router,
    regime.router,
    api_keys.router,
    what_if.router,
]
