"""``/backtests``: start a walk-forward backtest of a portfolio's spec (202 + Location), read and list them.

The backtest machine (plan, Map over windows, aggregate) runs what ``spe backtest`` runs; the result (metrics,
costs, benchmark comparison, factor attribution) is in the run's ``result`` once it has committed.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from portfolio_engine.api.models import RunAccepted, RunList
from portfolio_engine.api.routes.runs import IdempotencyKey, PendingRun, Symbol, accepted, read_run
from portfolio_engine.api.routing import operation, services
from portfolio_engine.pipeline.launching import launch_run
from portfolio_engine.pipeline.listing import filtered_page
from portfolio_engine.pipeline.portfolios import get_portfolio
from portfolio_engine.records.views import RunView

router = Router()


class StartBacktest(BaseModel):
    """A backtest of a stored portfolio's spec in force; the walk-forward options have the CLI's defaults."""

    model_config = ConfigDict(extra="forbid")

    portfolio: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="A stored portfolio.")
    source: Literal["bundled", "yahoo", "alpha_vantage", "nasdaq_data_link"] = "bundled"
    start: date | None = None
    end: date | None = None
    frequency: Literal["daily", "weekly", "monthly", "quarterly", "yearly"] = "monthly"
    window: Literal["rolling", "expanding"] = "rolling"
    window_length: int = Field(default=252, ge=20, le=5000, description="Trading days of history per decision.")
    cost_bps: float = Field(default=10.0, ge=0.0, le=1000.0)
    n_windows: int = Field(default=8, ge=1, le=64, description="Parallel blocks of decisions (Map items).")
    policy: Literal["spec", "regime_aware"] = "spec"
    risk_free: float = Field(default=0.0, gt=-1.0, lt=1.0, description="Annual rate, e.g. 0.02.")
    benchmarks: list[Symbol] = Field(default_factory=lambda: ["^GSPC"], max_length=10)

    @model_validator(mode="after")
    def _ordered(self) -> StartBacktest:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


@operation(router, "POST", "/backtests", role="manager", summary="Start a backtest", tags=["backtests"],
           status_code=202, errors=(404, 409))  # fmt: skip
def start_backtest(body: StartBacktest, idempotency_key: IdempotencyKey = None) -> Response[RunAccepted]:
    bound = services()
    view = get_portfolio(bound.store, body.portfolio)
    request: dict[str, Any] = body.model_dump(mode="json", exclude={"portfolio"}) | {"spec": view.spec}
    launched = launch_run(
        bound.store, bound.launcher, machine="backtest", subject=f"bt-{body.portfolio}", request=request,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    return accepted(launched, f"/backtests/{launched.run_id}")


@operation(router, "GET", "/backtests/<run_id>", role="viewer", summary="A backtest's status and result",
           tags=["backtests"], errors=(404,))  # fmt: skip
def get_backtest(
    run_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")],
) -> RunView | PendingRun:
    return read_run(run_id, ("backtest",))


@operation(router, "GET", "/backtests", role="viewer", summary="Backtests, newest first", tags=["backtests"])
def list_backtests(
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> RunList:
    page = filtered_page(services().store, "run", limit=limit, cursor=cursor, keep=lambda r: r["machine"] == "backtest")
    return RunList.of(page)
