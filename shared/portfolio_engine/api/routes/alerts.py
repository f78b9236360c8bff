"""``/alerts``: every alert runs sent (or suppressed as repeats, or failed to deliver), newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from portfolio_engine.api.models import Alert, AlertList
from portfolio_engine.api.routing import operation, services
from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.pipeline.listing import filtered_page
from portfolio_engine.records.events import portfolio_stream

router = Router()


def _utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


@operation(router, "GET", "/alerts", role="viewer", summary="Alerts, newest first, filtered", tags=["alerts"])
def list_alerts(
    portfolio: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
    severity: Annotated[str | None, Query(pattern="^(warning|breach|critical)$")] = None,
    since: Annotated[
        datetime | None, Query(description="Only alerts at or after (ISO 8601; UTC if no offset).")
    ] = None,
    until: Annotated[datetime | None, Query(description="Only alerts before (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> AlertList:
    """Listed by time, so ``since`` ends the listing early; ``severity`` and ``until`` filter as it reads."""
    low, high = _utc(since), _utc(until)
    if low and high and low >= high:
        raise SpecificationError(f"since {since} is not before until {until}.", hint="Swap them.")
    page = filtered_page(
        services().store,
        "alert",
        owner=portfolio_stream(portfolio) if portfolio else None,
        limit=limit,
        cursor=cursor,
        keep=lambda a: (severity is None or a.get("severity") == severity) and (high is None or a["at"] < high),
        stop=lambda a: low is not None and a["at"] < low,
    )
    return AlertList(items=[Alert.model_validate(a) for a in page.items], cursor=page.cursor)
