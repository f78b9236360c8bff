"""Response models several route modules share: pages of portfolios, runs, events and alerts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from portfolio_engine.ports import Page
from portfolio_engine.records.views import PortfolioView, RunView

__all__ = ["AlertList", "EventList", "PortfolioList", "RunAccepted", "RunList"]

CURSOR = "Pass it back as `cursor` for the next page; null on the last page."


class PortfolioList(BaseModel):
    """A page of portfolios, by name."""

    items: list[PortfolioView]
    cursor: str | None = Field(description=CURSOR)


class RunList(BaseModel):
    """A page of runs, newest first."""

    items: list[RunView]
    cursor: str | None = Field(description=CURSOR)

    @classmethod
    def of(cls, page: Page) -> RunList:
        return cls(items=[RunView.model_validate(r) for r in page.items], cursor=page.cursor)


class EventList(BaseModel):
    """Events of a stream, oldest first."""

    items: list[dict[str, Any]] = Field(description="type, version, run_id, recorded_at, data.")
    next_after: int | None = Field(description="Pass it as `after` for the next page; null on the last page.")


class Alert(BaseModel):
    """One alert a run sent (or suppressed as a repeat, or failed to deliver)."""

    id: str
    stream: str
    subject: str = Field(description="The portfolio (or model) the alert is about.")
    run_id: str | None
    at: str = Field(description="When it was recorded (ISO 8601, UTC).")
    limit: str | None = None
    severity: str | None = None
    status: str | None = Field(default=None, description="sent, suppressed or failed.")
    value: float | None = None
    threshold: float | None = None
    message: str | None = None


class AlertList(BaseModel):
    """A page of alerts, newest first."""

    items: list[Alert]
    cursor: str | None = Field(description=CURSOR)


class RunAccepted(BaseModel):
    """A run started (or the one the same Idempotency-Key started before): follow ``location``."""

    run_id: str
    machine: str
    status: str = Field(description="QUEUED, RUNNING, SUCCEEDED or FAILED.")
    location: str = Field(description="Where to read the run: /runs/{run_id} or /backtests/{run_id}.")
    replayed: bool = Field(description="True when the Idempotency-Key had already started this run.")
