"""``/portfolios``: create, read, update (versioned), list, archive and restore; latest result, holdings, history.

Handlers call the same use cases as ``spe portfolio`` and ``spe optimize --save`` (``pipeline.portfolios``): a
spec is validated exactly as the CLI validates it, a change names the spec version it was made on (409 if
another writer saved first), and nothing here moves holdings: only a committed run does.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from portfolio_engine.api.models import EventList, PortfolioList, RunList
from portfolio_engine.api.routing import operation, principal, services
from portfolio_engine.pipeline.listing import filtered_page
from portfolio_engine.pipeline.portfolios import get_portfolio, portfolio_events
from portfolio_engine.records.events import portfolio_stream
from portfolio_engine.records.views import Holdings, PortfolioView

router = Router()

Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="The portfolio's name.")]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=2048, description="The previous page's `cursor`.")]
#: Seconds a latest-result read may be served from the cache (a commit also replaces the entry's key).
LATEST_TTL = 30


class PortfolioCreate(BaseModel):
    """A new portfolio: its spec (``PortfolioSpec`` as JSON; its ``name`` names the portfolio)."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="A PortfolioSpec (see PortfolioSpec in the schemas).")


class PortfolioUpdate(BaseModel):
    """A new spec for an existing portfolio, made on the spec version read (409 if it has moved since)."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="A PortfolioSpec; its name must be the portfolio's.")
    expected_spec_version: int = Field(ge=1, description="The spec_version the change was made on.")


class SavedPortfolio(BaseModel):
    """A portfolio after a change, and whether the change changed anything."""

    portfolio: PortfolioView
    changed: bool


class Latest(BaseModel):
    """A portfolio's latest committed result: weights held, regime, risk, stress, limits, breaches, hedge."""

    portfolio: str
    spec_version: int
    holdings: Holdings | None
    latest: dict[str, Any] | None = Field(description="The last committed run's result (None before the first).")


class HoldingsOut(BaseModel):
    """What a portfolio holds (None before its first committed run or after a reset)."""

    portfolio: str
    holdings: Holdings | None


def _spec(document: dict[str, Any]) -> Any:
    from portfolio_engine.exceptions import SpecificationError
    from portfolio_engine.optimization import PortfolioSpec
    from portfolio_engine.records.events import check_name

    spec = PortfolioSpec.from_dict(document)
    try:
        check_name(spec.name)  # the spec accepts any name; the store's streams do not (a 500 before, fuzzed)
    except ValueError as exc:
        raise SpecificationError(str(exc), hint="Name it like risk-parity_2026 (at most 64 characters).") from exc
    return spec


def _save(spec: Any, expected: int | None) -> tuple[PortfolioView, bool]:
    from portfolio_engine.pipeline.portfolios import save_portfolio

    bound = services()
    return save_portfolio(
        bound.store, spec, lake=bound.lake(), registry=bound.registry(), origin="api", expected_spec_version=expected
    )


def _created(view: PortfolioView, changed: bool, status: int) -> Response[SavedPortfolio]:
    body = SavedPortfolio(portfolio=view, changed=changed)
    headers = {"Location": f"/portfolios/{view.name}", "ETag": f'"{view.spec_version}"'}
    return Response(status_code=status, content_type="application/json", body=body, headers=headers)


@operation(router, "GET", "/portfolios", role="viewer", summary="List portfolios", tags=["portfolios"])
def list_portfolios(
    include_archived: Annotated[bool, Query(description="Include archived portfolios.")] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PortfolioList:
    page = filtered_page(
        services().store,
        "portfolio",
        limit=limit,
        cursor=cursor,
        keep=lambda p: include_archived or p["status"] == "active",
        descending=False,
    )
    return PortfolioList(items=[PortfolioView.model_validate(p) for p in page.items], cursor=page.cursor)


@operation(
    router, "POST", "/portfolios", role="manager", summary="Create a portfolio", tags=["portfolios"],
    status_code=201, errors=(409,),
)  # fmt: skip
def create_portfolio(body: PortfolioCreate) -> Response[SavedPortfolio]:
    """Validated as `spe optimize --spec F --save` validates it; 409 if the name is taken."""
    from portfolio_engine.exceptions import DuplicateError

    spec = _spec(body.spec)
    if services().store.view("portfolio", spec.name) is not None:
        raise DuplicateError(
            f"Portfolio {spec.name!r} exists.", hint=f"Change it with PUT /portfolios/{spec.name} instead."
        )
    view, changed = _save(spec, 0)
    return _created(view, changed, 201)


@operation(router, "GET", "/portfolios/<name>", role="viewer", summary="Read a portfolio", tags=["portfolios"],
           errors=(404,))  # fmt: skip
def read_portfolio(name: Name) -> Response[PortfolioView]:
    view = get_portfolio(services().store, name)
    return Response(
        status_code=200, content_type="application/json", body=view,
        headers={"ETag": f'"{view.spec_version}"'},
    )  # fmt: skip


@operation(
    router, "PUT", "/portfolios/<name>", role="manager", summary="Change a portfolio's spec (a new spec version)",
    tags=["portfolios"], errors=(404, 409),
)  # fmt: skip
def update_portfolio(name: Name, body: PortfolioUpdate) -> Response[SavedPortfolio]:
    """409 when the spec moved past ``expected_spec_version`` or the portfolio is archived."""
    from portfolio_engine.exceptions import SpecificationError

    get_portfolio(services().store, name)
    spec = _spec(body.spec)
    if spec.name != name:
        raise SpecificationError(
            f"The spec is named {spec.name!r}, not {name!r}.", hint="A portfolio keeps its name; create a new one."
        )
    view, changed = _save(spec, body.expected_spec_version)
    return _created(view, changed, 200)


@operation(router, "POST", "/portfolios/<name>/archive", role="admin", summary="Archive a portfolio",
           tags=["portfolios"], errors=(404, 409))  # fmt: skip
def archive(
    name: Name, reason: Annotated[str | None, Query(max_length=500, description="Kept in the history.")] = None
) -> PortfolioView:
    """Its history and holdings stay; it is no longer run or changed. 409 if already archived."""
    from portfolio_engine.pipeline.portfolios import archive_portfolio

    return archive_portfolio(services().store, name, reason=reason or f"by {principal(router).subject}")


@operation(router, "POST", "/portfolios/<name>/restore", role="admin", summary="Restore an archived portfolio",
           tags=["portfolios"], errors=(404, 409))  # fmt: skip
def restore(name: Name) -> PortfolioView:
    from portfolio_engine.pipeline.portfolios import restore_portfolio

    return restore_portfolio(services().store, name)


@operation(router, "GET", "/portfolios/<name>/latest", role="viewer",
           summary="Latest weights, regime, risk and breaches", tags=["portfolios"], errors=(404,))  # fmt: skip
def latest(name: Name) -> Response[Latest]:
    """Served from the cache (Redis when REDIS_URL is set) for up to 30 s, keyed by the portfolio's version."""
    bound = services()
    store, cache = bound.store, bound.cache
    key = f"api:latest:{name}:{store.stream_version(portfolio_stream(name))}"
    cached = cache.get(key) if cache is not None else None
    if cached is None:
        view = get_portfolio(store, name)
        cached = (
            Latest(portfolio=name, spec_version=view.spec_version, holdings=view.holdings, latest=view.latest)
            .model_dump_json()
            .encode()
        )
        if cache is not None:
            cache.set(key, cached, LATEST_TTL)
    return Response(status_code=200, content_type="application/json", body=json.loads(cached))


@operation(router, "GET", "/portfolios/<name>/holdings", role="viewer", summary="The weights held",
           tags=["portfolios"], errors=(404,))  # fmt: skip
def holdings(name: Name) -> HoldingsOut:
    return HoldingsOut(portfolio=name, holdings=get_portfolio(services().store, name).holdings)


@operation(router, "GET", "/portfolios/<name>/runs", role="viewer", summary="The portfolio's runs, newest first",
           tags=["portfolios"], errors=(404,))  # fmt: skip
def portfolio_runs(
    name: Name,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: Annotated[str | None, Query(pattern="^(RUNNING|SUCCEEDED|FAILED)$")] = None,
) -> RunList:
    store = services().store
    get_portfolio(store, name)
    page = filtered_page(
        store, "run", owner=portfolio_stream(name), limit=limit, cursor=cursor,
        keep=lambda r: status is None or r["status"] == status,
    )  # fmt: skip
    return RunList.of(page)


@operation(router, "GET", "/portfolios/<name>/events", role="viewer",
           summary="The portfolio's event log (its audit trail), oldest first", tags=["portfolios"],
           errors=(404,))  # fmt: skip
def events(
    name: Name,
    after: Annotated[int, Query(ge=0, description="Only events after this version.")] = 0,
    limit: Limit = 100,
) -> EventList:
    found = portfolio_events(services().store, name, after=after)
    page = found[:limit]
    return EventList(
        items=[json.loads(e.model_dump_json()) for e in page],
        next_after=page[-1].version if len(found) > limit else None,
    )
