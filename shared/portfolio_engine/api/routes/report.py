"""``/portfolios/<name>/report``: the latest committed run as a self-contained HTML page.

The committed result comes from the store (the portfolio view's ``latest``); the Monte Carlo fan chart's
quantiles, the stress scenarios and the limits in force come from what the run left in the lake
(``risk/<run>/report.json``, ``risk/<run>/stress.json``, ``portfolios/<name>/runs/<run>.json``). A missing
artefact leaves its chart out, not the page. matplotlib and pandas load on the first report, never at start-up.
"""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from portfolio_engine.api.routes.portfolios import Name
from portfolio_engine.api.routing import operation, services
from portfolio_engine.exceptions import LakeError, RecordNotFoundError
from portfolio_engine.pipeline.portfolios import get_portfolio

logger = logging.getLogger(__name__)

router = Router()

_HTML = {
    200: {
        "description": "A self-contained HTML page (inline CSS, charts as data: URIs)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}


def _lake_document(key: str) -> Any:
    """A JSON document the run stored, or None when the lake does not hold it (or cannot be read)."""
    try:
        lake = services().lake()
        return lake.get_json(key) if lake.exists(key) else None
    except LakeError as exc:
        logger.warning("report without %s: %s", key, exc)
        return None


def _page(name: str) -> str:
    view = get_portfolio(services().store, name)
    latest = view.latest
    if latest is None:
        raise RecordNotFoundError(
            f"Portfolio {name!r} has no committed run yet: there is no report to show.",
            hint=f"Run it (POST /portfolios/{name}/runs, or `spe run`) and read the report once the run committed.",
        )
    from portfolio_engine.reports.latest import latest_report_html

    run_id = latest.get("run_id")
    risk = _lake_document(f"risk/{run_id}/report.json") or {}
    result = _lake_document(f"portfolios/{name}/runs/{run_id}.json") or {}
    return latest_report_html(
        name,
        latest,
        held=None if view.holdings is None else view.holdings.weights,
        fan_chart=risk.get("fan_chart"),
        stress=_lake_document(f"risk/{run_id}/stress.json"),
        limits=(result.get("spec_in_force") or {}).get("limits"),
    )


@operation(
    router, "GET", "/portfolios/<name>/report", role="viewer",
    summary="The latest committed run's report: regime, weights, risk with the fan chart, stress, limits, alerts",
    tags=["portfolios"], errors=(404,), responses=_HTML,
)  # fmt: skip
def report(name: Name):  # no return annotation: powertools would make it JSON
    """404 when the portfolio is unknown or has no committed run yet."""
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=_page(name))
