"""``/regime``: the current regime probabilities and model version; the champion and its admin controls.

"Current" is what the last committed rebalance detected (filtered probabilities, data to that day only), with
the champion in force now: they differ when a promotion, a pin or a rollback happened since.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from portfolio_engine.api.routing import operation, principal, services
from portfolio_engine.exceptions import ModelNotFoundError
from portfolio_engine.pipeline.listing import filtered_page
from portfolio_engine.records.events import portfolio_stream
from portfolio_engine.records.views import ChampionView

router = Router()

Model = Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="The regime model's name.")]


class CurrentRegime(BaseModel):
    """The regime the last committed rebalance detected, and the champion model now."""

    model: str
    champion: str | None = Field(description="The champion version in force now.")
    pinned: bool
    detected_by: str | None = Field(description="The model version that made the detection.")
    run_id: str | None
    portfolio: str | None
    as_of: str | None = Field(description="The last day of data the detection used.")
    regime: str | None
    probabilities: dict[str, float] | None = Field(description="Filtered P(state | data to as_of).")
    next_probabilities: dict[str, float] | None = Field(description="One step ahead, through the transition matrix.")
    state_names: list[str] | None


class PinRequest(BaseModel):
    """The version to pin (default: the champion)."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class RollbackRequest(BaseModel):
    """The earlier champion to return to (default: the one before), pinned unless ``pin`` is false."""

    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    pin: bool = True


def _champion(model: str) -> ChampionView:
    raw = services().store.view("champion", f"regime/{model}")
    if raw is None:
        raise ModelNotFoundError(f"No regime model {model!r} is registered.", hint="A first `spe run` trains one.")
    return ChampionView.model_validate(raw)


@operation(router, "GET", "/regime", role="viewer", summary="Current regime probabilities and model version",
           tags=["regime"], errors=(404,))  # fmt: skip
def current(
    model: Model = "market",
    portfolio: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
) -> CurrentRegime:
    champion = _champion(model)
    page = filtered_page(
        services().store, "run", limit=1, owner=portfolio_stream(portfolio) if portfolio else None,
        keep=lambda r: r["machine"] == "rebalance" and r["status"] == "SUCCEEDED"
        and ((r.get("result") or {}).get("regime") or {}).get("available") is True
        and (r["result"]["regime"].get("model") == model),
    )  # fmt: skip
    run: dict[str, Any] = page.items[0] if page.items else {}
    detected = (run.get("result") or {}).get("regime") or {}
    return CurrentRegime(
        model=model,
        champion=champion.champion,
        pinned=champion.pinned,
        detected_by=detected.get("model_version"),
        run_id=run.get("run_id"),
        portfolio=run.get("subject"),
        as_of=detected.get("as_of"),
        regime=detected.get("regime"),
        probabilities=detected.get("probabilities"),
        next_probabilities=detected.get("next_probabilities"),
        state_names=detected.get("state_names"),
    )


@operation(router, "GET", "/regime/champion", role="viewer", summary="The champion, its lineage and decisions",
           tags=["regime"], errors=(404,))  # fmt: skip
def champion(model: Model = "market") -> dict[str, Any]:
    from portfolio_engine.pipeline.champion import champion_report

    bound = services()
    _champion(model)
    return champion_report(bound.store, bound.registry(), model)


@operation(router, "POST", "/regime/champion/pin", role="admin", summary="Pin a champion (promotions refused)",
           tags=["regime"], errors=(404, 409))  # fmt: skip
def pin(body: PinRequest, model: Model = "market") -> ChampionView:
    from portfolio_engine.pipeline.champion import pin_champion

    bound = services()
    _champion(model)
    return pin_champion(bound.store, bound.registry(), model, body.version, by=principal(router).subject)


@operation(router, "POST", "/regime/champion/unpin", role="admin", summary="Let promotions replace the champion",
           tags=["regime"], errors=(404, 409))  # fmt: skip
def unpin(model: Model = "market") -> ChampionView:
    from portfolio_engine.pipeline.champion import unpin_champion

    _champion(model)
    return unpin_champion(services().store, model, by=principal(router).subject)


@operation(router, "POST", "/regime/champion/rollback", role="admin", summary="Return to an earlier champion",
           tags=["regime"], errors=(404, 409))  # fmt: skip
def rollback(body: RollbackRequest, model: Model = "market") -> ChampionView:
    from portfolio_engine.pipeline.champion import rollback_champion

    _champion(model)
    return rollback_champion(services().store, model, to=body.to, pin=body.pin, by=principal(router).subject)
