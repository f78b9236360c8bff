"""The bundled default spec on a universe smaller than its own: narrowed, caps widened only where infeasible.

:func:`narrow_universe` keeps the run's assets of the spec's universe; :func:`fit_caps_to_universe` widens only
the caps that no fully invested portfolio could meet on it (to twice equal weight), and the concentration limits
follow only a cap that was widened. Both return every change they made (:class:`FittedSpec`), so a run can
record and print them. Specs users write are never adapted: theirs fail with the constraint named.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization.constraints import Constraints
from portfolio_engine.optimization.spec import PortfolioSpec

__all__ = ["FittedSpec", "check_caps_reach_budget", "fit_caps_to_universe", "narrow_universe"]


@dataclass(frozen=True)
class FittedSpec:
    """A spec adapted to a universe, with every change made, in words (empty: the spec is unchanged).

    Attributes
    ----------
    spec : PortfolioSpec
    adaptations : tuple of str
        E.g. ``"weight cap 0.15 -> 0.667 (3 assets cannot be fully invested under 0.15 each)"``.
    """

    spec: PortfolioSpec
    adaptations: tuple[str, ...] = ()


def _listed(symbols: Sequence[str], most: int = 8) -> str:
    return ", ".join(symbols[:most]) + (", ..." if len(symbols) > most else "")


def narrow_universe(spec: PortfolioSpec, symbols: Sequence[str]) -> FittedSpec:
    """The spec on the run's ``symbols``: its own assets the run has, else the run's symbols.

    Only for the bundled default portfolio, whose universe is the bundled stocks: a run on fewer of them
    (``--symbols AAPL,MSFT``) holds those, symbols outside the spec's universe (factor ETFs ingested for
    attribution) never enter it, and a run sharing none of them (a user's file) holds the run's symbols.
    A user's spec is never narrowed: a symbol it names that the run lacks is an error of the caller's.

    Parameters
    ----------
    spec : PortfolioSpec
    symbols : sequence of str
        The run's assets (its validated symbols minus the index).

    Returns
    -------
    FittedSpec
        Unchanged (no adaptation) when the spec has no universe or the run has all of it.
    """
    run = [str(s) for s in symbols]
    if spec.universe is None or not run:
        return FittedSpec(spec)
    kept = [a for a in spec.universe if a in run]
    if kept == spec.universe:
        return FittedSpec(spec)
    if kept:
        missing = [a for a in spec.universe if a not in run]
        extra = [s for s in run if s not in spec.universe]
        note = (
            f"universe narrowed to the run's {len(kept)} symbols of the spec's {len(spec.universe)} "
            f"({_listed(kept)}); the run lacks {_listed(missing)}"
        )
        if extra:
            note += f"; the run's {_listed(extra)} not in the spec's universe, left out"
    else:
        kept = list(dict.fromkeys(run))
        note = (
            f"universe replaced by the run's {len(kept)} symbols ({_listed(kept)}): the run has none of the "
            f"spec's {len(spec.universe)}"
        )
    return FittedSpec(spec.model_copy(update={"universe": kept}), (note,))


def _max_total(constraints: Constraints, universe: Sequence[str]) -> float:
    """The largest total weight the caps allow on ``universe`` (asset and group upper bounds; an LP).

    ``inf`` without binding caps, NaN when the lower bounds already conflict (left to the optimizer to name).
    """
    from scipy.optimize import linprog

    names = list(universe)
    default_lo, default_hi = constraints.weight_bounds or (None, None)
    pairs = [constraints.asset_bounds.get(a, (default_lo, default_hi)) for a in names]
    lower = [(0.0 if lo is None else max(lo, 0.0)) if constraints.long_only else lo for lo, _ in pairs]
    upper = [hi for _, hi in pairs]
    rows, caps = [], []
    for group, (_, hi) in constraints.group_bounds.items():
        members = set(constraints.groups.get(group, ()))
        if hi is not None:
            rows.append([1.0 if a in members else 0.0 for a in names])
            caps.append(hi)
    if not rows and all(hi is not None for hi in upper):
        return float(sum(hi for hi in upper if hi is not None))
    result = linprog(
        c=[-1.0] * len(names),
        A_ub=rows or None,
        b_ub=caps or None,
        bounds=list(zip(lower, upper, strict=True)),
        method="highs",
    )
    if result.status == 3:  # unbounded: no cap binds the total
        return math.inf
    return -float(result.fun) if result.status == 0 else math.nan


def _fit_caps(spec: PortfolioSpec, universe: Sequence[str], *, fit_limits: bool) -> FittedSpec:
    names = [str(a) for a in universe]
    n, c = len(names), spec.constraints
    notes: list[str] = []
    changes: dict[str, Any] = {}
    groups = {g: [m for m in members if m in names] for g, members in c.groups.items()}
    dropped = [g for g, members in groups.items() if not members]
    if dropped:
        # A group with no held asset cannot be bounded (Constraints.resolve refuses it): it has nothing to limit.
        notes.append(f"groups with no asset in the universe dropped: {', '.join(dropped)}")
        groups = {g: members for g, members in groups.items() if members}
        changes["groups"] = groups
        changes["group_bounds"] = {g: b for g, b in c.group_bounds.items() if g in groups}
    budget, cap = c.budget, (c.weight_bounds[1] if c.weight_bounds is not None else None)
    fitted = c.replace(**changes) if changes else c
    if budget is None or not n:
        return FittedSpec(spec.model_copy(update={"constraints": fitted}), tuple(notes)) if notes else FittedSpec(spec)
    if cap is not None and _max_total(fitted.replace(group_bounds={}), names) < budget - 1e-12:
        # The asset caps alone cannot reach the budget: twice equal weight each (at most 1).
        wider = min(1.0, 2.0 / n)
        notes.append(f"weight cap {cap:.3g} -> {wider:.3g} ({n} assets cannot be fully invested under {cap:.3g} each)")
        changes["weight_bounds"] = (c.weight_bounds[0] if c.weight_bounds else None, wider)
        fitted = c.replace(**changes)
    widened: dict[str, float] = {}
    reach = _max_total(fitted, names) if fitted.group_bounds else math.inf
    if reach < budget - 1e-12:  # NaN (conflicting lower bounds) is left to the optimizer to name
        # The group caps cannot reach the budget: each cap below twice its held members' equal-weight share
        # rises to it (which always suffices: the caps then sum to at least the budget).
        bounds = dict(fitted.group_bounds)
        for group, (lo, hi) in fitted.group_bounds.items():
            floor = min(1.0, 2.0 * len(groups[group]) / n)
            if hi is not None and hi < floor:
                bounds[group] = (lo, floor)
                widened[group] = floor
                notes.append(
                    f"group cap {group} {hi:.3g} -> {floor:.3g} (the caps reach only {reach:.1%} of the budget "
                    f"on these {n} assets)"
                )
        changes["groups"], changes["group_bounds"] = groups, bounds
    if not changes:
        return FittedSpec(spec)
    update: dict[str, Any] = {"constraints": c.replace(**changes)}
    if fit_limits:
        # A limit follows only a cap that was widened: a weight the optimizer is allowed is no breach.
        limits = dict(spec.limits)
        followed = {
            "max_weight": changes["weight_bounds"][1] if "weight_bounds" in changes else None,
            "max_sector_weight": max(widened.values()) if widened else None,
        }
        for limit, value in followed.items():
            if value is not None and limit in limits and limits[limit] < value:
                notes.append(f"limit {limit} {limits[limit]:.3g} -> {value:.3g} (follows the widened cap)")
                limits[limit] = value
        update["limits"] = limits
    return FittedSpec(spec.model_copy(update=update), tuple(notes))


def fit_caps_to_universe(spec: PortfolioSpec, universe: Sequence[str]) -> FittedSpec:
    """The bundled default's caps on a universe where they cannot add up to a fully invested portfolio.

    The default's 15% per asset and 35% per sector suit the bundled 20 stocks, and there nothing changes.
    On ``spe run --symbols AAPL,MSFT`` they cannot reach the budget: only then does a cap widen, to twice
    equal weight (``2/n`` for an asset, ``2k/n`` for a group of ``k`` held assets, at most 1): the asset cap
    when ``n`` times it is below the budget, the group caps below that floor when the caps together cannot
    reach the budget. Groups with no held asset are dropped. The ``max_weight`` and ``max_sector_weight``
    limits follow a cap only when it was widened. Regime policies' own constraint overrides are fitted the
    same way (their limits follow in the spec in force, which is fitted after the policy applies). Specs users
    write are never passed here: theirs fail with the constraint named.

    Parameters
    ----------
    spec : PortfolioSpec
    universe : sequence of str
        The assets the portfolio holds.

    Returns
    -------
    FittedSpec
        The spec, with every change in words (none on a universe the caps suit).
    """
    base = _fit_caps(spec, universe, fit_limits=True)
    notes = list(base.adaptations)
    policies: dict[str, dict[str, Any]] = {}
    for key, override in base.spec.regime_policies.items():
        if "constraints" not in override:
            policies[key] = override
            continue
        own = base.spec._with_policy(key)
        fitted = _fit_caps(own, universe, fit_limits=False)
        if not fitted.adaptations:
            policies[key] = override
            continue
        before, after = own.constraints.model_dump(), fitted.spec.constraints.model_dump()
        changed = {f: after[f] for f in ("weight_bounds", "groups", "group_bounds") if after[f] != before[f]}
        policies[key] = {**override, "constraints": {**dict(override["constraints"] or {}), **changed}}
        notes += [f"regime_policies[{key!r}]: {note}" for note in fitted.adaptations]
    if not notes:
        return FittedSpec(spec)
    return FittedSpec(base.spec.model_copy(update={"regime_policies": policies}), tuple(notes))


def check_caps_reach_budget(spec: PortfolioSpec) -> None:
    """Refuse a spec whose caps cannot hold its budget on its own universe, in any regime policy.

    What a spec is checked for when it is saved: ``max_weight 0.2`` on three assets can never be fully invested,
    whatever the data. A spec without a universe (every asset a run has) is not checked here.

    Raises
    ------
    SpecificationError
        Naming the policy (or the spec's own settings) and the largest total the caps allow.
    """
    if not spec.universe:
        return
    variants = [("its own settings", spec)] + [
        (f"regime policy {key!r}", spec.for_regime(key)) for key in spec.regime_policies
    ]
    for where, variant in variants:
        budget = variant.constraints.budget
        if budget is None:
            continue
        reach = _max_total(variant.constraints, spec.universe)
        if math.isfinite(reach) and reach < budget - 1e-9:
            raise SpecificationError(
                f"Portfolio {spec.name!r} cannot be invested under {where}: its caps allow at most {reach:.4g} of a "
                f"budget of {budget:g} on its {len(spec.universe)} assets.",
                hint="Raise weight_bounds/asset_bounds or the group caps, or add assets to the universe.",
            )
