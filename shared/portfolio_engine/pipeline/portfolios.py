"""Portfolios in the store of record: save a spec (validated completely), archive, restore, reset, read.

A spec is validated when it is saved, not when a run first trips on it: its limits must be ones the risk
stage can measure (names from ``risk.limits``), its regime policies must name states of the regime model in
force (roles ``calm``/``normal``/``turbulent`` or a state's name), and its universe must be in the lake. Every
change is an event of the portfolio's stream; saving the spec in force again changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portfolio_engine.exceptions import (
    ConcurrencyError,
    InvalidTransitionError,
    RecordNotFoundError,
    SpecificationError,
)
from portfolio_engine.ports import Lake, ModelRegistry, Store
from portfolio_engine.records.events import Event, NewEvent, portfolio_stream
from portfolio_engine.records.views import Holdings, PortfolioView
from portfolio_engine.risk.limits import parse_limits

if TYPE_CHECKING:  # reading a portfolio (the API's read path) must not import the optimizers
    from portfolio_engine.optimization import PortfolioSpec

__all__ = [
    "Book",
    "archive_portfolio",
    "get_portfolio",
    "portfolio_events",
    "read_book",
    "reset_holdings",
    "restore_portfolio",
    "save_portfolio",
    "spec_at",
    "validate_for_save",
]


@dataclass(frozen=True)
class Book:
    """What a run reads from the store about its portfolio: the spec at the run's version, and the holdings.

    Empty (all None) for a portfolio the store does not hold yet (a what-if before the first run).
    """

    name: str
    spec: dict[str, Any] | None = None
    spec_version: int | None = None
    spec_origin: str | None = None
    holdings: Holdings | None = None


def spec_at(store: Store, name: str, version: int) -> tuple[dict[str, Any], str]:
    """The spec (and its origin) the portfolio had at spec version ``version``, from its event log.

    Raises
    ------
    RecordNotFoundError
        If the portfolio never had that version.
    """
    seen = 0
    for event in store.events(portfolio_stream(name)):
        if event.type in ("PortfolioCreated", "SpecChanged"):
            seen += 1
            if seen == version:
                return dict(event.data["spec"]), str(event.data.get("origin", "cli"))
    raise RecordNotFoundError(f"Portfolio {name!r} has no spec version {version} (it has {seen}).")


def read_book(store: Store, name: str, spec_version: int | None = None) -> Book:
    """The portfolio's spec (at ``spec_version``, default the one in force) and holdings, as the store holds them."""
    raw = store.view("portfolio", name)
    if raw is None:
        return Book(name)
    view = PortfolioView.model_validate(raw)
    spec, origin, version = view.spec, view.spec_origin, view.spec_version
    if spec_version is not None and spec_version != view.spec_version:
        (spec, origin), version = spec_at(store, name, spec_version), spec_version
    return Book(name, spec, version, origin, view.holdings)


def get_portfolio(store: Store, name: str) -> PortfolioView:
    """The portfolio's read model.

    Raises
    ------
    RecordNotFoundError
        If the store holds no portfolio of that name.
    """
    raw = store.view("portfolio", name)
    if raw is None:
        known = [p["name"] for p in store.views("portfolio", limit=20).items]
        raise RecordNotFoundError(
            f"No portfolio {name!r} in the store {store.uri}.",
            hint=f"Known: {known or 'none'}. `spe run` creates 'default'; `spe optimize --spec F --save` saves one.",
        )
    return PortfolioView.model_validate(raw)


def portfolio_events(store: Store, name: str, *, after: int = 0) -> list[Event]:
    """The portfolio's event log, oldest first (its whole audit trail)."""
    get_portfolio(store, name)
    return store.events(portfolio_stream(name), after=after)


def _state_names(registry: ModelRegistry | None, model: str) -> list[str] | None:
    if registry is None:
        return None
    version = registry.champion(model)
    if version is None:
        return None
    summary = registry.metadata(model, version).get("summary") or {}
    names = summary.get("state_names")
    return [str(n) for n in names] if names else None


def validate_for_save(
    spec: PortfolioSpec,
    *,
    lake: Lake | None,
    registry: ModelRegistry | None,
    source: str = "bundled",
    model: str = "market",
) -> list[str]:
    """Check everything a run would check later, now; return what was checked.

    Raises
    ------
    SpecificationError
        An unknown limit name, caps that cannot hold the budget (in any regime policy), a regime policy that
        matches no state of the champion regime model, or a universe symbol the lake does not hold (each
        named, with a hint).
    """
    from portfolio_engine.optimization.spec_fitting import check_caps_reach_budget

    checked = []
    parse_limits(spec.limits)
    checked.append(f"limits {sorted(spec.limits)}")
    check_caps_reach_budget(spec)
    checked.append("caps reach the budget in every regime policy")
    states = _state_names(registry, model)
    if spec.regime_policies and states is not None:
        spec.check_regime_policies(states)
        checked.append(f"regime policies {sorted(spec.regime_policies)} against states {states}")
    if spec.universe and lake is not None:
        held = {c.symbol for c in lake.inventory(source, zone="curated")}
        missing = sorted(set(spec.universe) - held)
        if missing:
            raise SpecificationError(
                f"Portfolio {spec.name!r} holds {missing}, which the lake has no curated prices for (source "
                f"'{source}').",
                hint=f"Ingest them first: `spe data ingest --source {source} --symbols {','.join(missing)}` then "
                "`spe data validate`, or remove them from the universe.",
            )
        checked.append(f"universe of {len(spec.universe)} symbols in the lake")
    return checked


def save_portfolio(
    store: Store,
    spec: PortfolioSpec,
    *,
    lake: Lake | None,
    registry: ModelRegistry | None,
    origin: str = "cli",
    source: str = "bundled",
    expected_spec_version: int | None = None,
) -> tuple[PortfolioView, bool]:
    """Create the portfolio ``spec.name`` or change its spec; return its view and whether anything changed.

    Raises
    ------
    SpecificationError
        The spec fails :func:`validate_for_save`.
    ConcurrencyError
        ``expected_spec_version`` is given and the stored spec has another version (someone saved first).
    InvalidTransitionError
        The portfolio is archived.
    """
    validate_for_save(spec, lake=lake, registry=registry, source=source)
    stream = portfolio_stream(spec.name)
    document = spec.to_dict()
    raw = store.view("portfolio", spec.name)
    if raw is None:
        if expected_spec_version not in (None, 0):
            raise ConcurrencyError(
                f"Portfolio {spec.name!r} does not exist (expected spec version {expected_spec_version})."
            )
        store.append(
            stream, [NewEvent(type="PortfolioCreated", data={"spec": document, "origin": origin})], expected_version=0
        )
        return get_portfolio(store, spec.name), True
    view = PortfolioView.model_validate(raw)
    if expected_spec_version is not None and expected_spec_version != view.spec_version:
        raise ConcurrencyError(
            f"Portfolio {spec.name!r} is at spec version {view.spec_version}, not {expected_spec_version}.",
            hint="Read it again (`spe portfolio show`) and apply your change to the current spec.",
        )
    if view.spec == document:
        return view, False
    if view.status == "archived":
        raise InvalidTransitionError(
            f"Portfolio {spec.name!r} is archived.", hint=f"Restore it first: `spe portfolio restore {spec.name}`."
        )
    event = NewEvent(
        type="SpecChanged", data={"spec": document, "origin": origin, "previous_version": view.spec_version}
    )
    store.append(stream, [event], expected_version=view.version)
    return get_portfolio(store, spec.name), True


def _change(store: Store, name: str, event: NewEvent, allowed: Sequence[str], why: str) -> PortfolioView:
    view = get_portfolio(store, name)
    if view.status not in allowed:
        raise InvalidTransitionError(f"Portfolio {name!r} is {view.status}: {why}.")
    store.append(portfolio_stream(name), [event], expected_version=view.version)
    return get_portfolio(store, name)


def archive_portfolio(store: Store, name: str, *, reason: str | None = None) -> PortfolioView:
    """Archive a portfolio: it keeps its history and holdings but is no longer run or changed."""
    return _change(
        store, name, NewEvent(type="PortfolioArchived", data={"reason": reason}), ["active"], "already archived"
    )


def restore_portfolio(store: Store, name: str) -> PortfolioView:
    """Make an archived portfolio active again."""
    return _change(store, name, NewEvent(type="PortfolioRestored"), ["archived"], "it is not archived")


def reset_holdings(
    store: Store, name: str, *, reason: str | None = None
) -> tuple[PortfolioView, dict[str, Any] | None]:
    """Forget the holdings (the next run starts as a first one); return the view and the holdings forgotten.

    The holdings before the reset stay in the log (``spe portfolio history``).
    """
    view = get_portfolio(store, name)
    before = None if view.holdings is None else view.holdings.model_dump(mode="json")
    event = NewEvent(type="HoldingsReset", data={"weights": None, "previous": before, "reason": reason})
    return _change(store, name, event, ["active", "archived"], "cannot be reset"), before
