"""What-if: optimize a portfolio on the lake's curated prices and say whether it would rebalance; move nothing.

The use case behind ``spe optimize``, ``spe risk report`` and ``POST /what-if``: resolve a spec (inline, else the
portfolio's stored spec, else the bundled one of that name; a method override on top), detect the current
regime as DetectRegime does (training a first model if none reads the latest feature set), build the Optimize
task and run :func:`~portfolio_engine.pipeline.optimize.optimize_portfolio` with the stored holdings. The
proposal is written to the lake as any optimization's; the store of record (specs, holdings) is only read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portfolio_engine.exceptions import ConfigurationError, EmptyDataError, SpecificationError

if TYPE_CHECKING:
    from portfolio_engine.contracts import DetectRegimeOutput, OptimizeInput
    from portfolio_engine.optimization import PortfolioSpec
    from portfolio_engine.ports import Lake, ModelRegistry, Store

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_INTERVAL",
    "ChosenSpec",
    "WhatIfSize",
    "check_method",
    "choose_spec",
    "curated_symbols",
    "current_regime",
    "index_symbol",
    "optimize_input",
    "regime_summary",
    "what_if",
    "what_if_size",
]

#: The bar interval a what-if optimizes on (the Optimize task's default).
DEFAULT_INTERVAL = "1d"


@dataclass(frozen=True)
class ChosenSpec:
    """The spec a what-if optimizes, where it came from, and the method override applied to it.

    ``inline`` specs (a file, a request body) are optimized as given; a stored or bundled spec is left to the
    Optimize use case to resolve (the bundled default adapted to the lake's universe, as in a run), with
    ``method`` passed on as the task's override.
    """

    spec: PortfolioSpec
    origin: str
    inline: bool
    method: str | None = None


@dataclass(frozen=True)
class WhatIfSize:
    """How large a what-if's problem is: assets in its universe, trading days of history its estimators read."""

    assets: int
    history_days: int


def check_method(method: str | None) -> None:
    """Refuse an unknown optimization method before any work.

    Raises
    ------
    SpecificationError
        ``method`` is not one of ``portfolio_engine.optimization.METHODS``.
    """
    from portfolio_engine.optimization import METHODS

    if method is not None and method not in METHODS:
        raise SpecificationError(f"Unknown method {method!r}.", hint=f"Choose one of {', '.join(METHODS)}.")


def curated_symbols(lake: Lake, source: str) -> list[str]:
    """The symbols the lake holds curated prices of from ``source``.

    Raises
    ------
    EmptyDataError
        The lake holds none.
    """
    symbols = [c.symbol for c in lake.inventory(source, zone="curated")]
    if not symbols:
        raise EmptyDataError(
            f"The lake {lake.uri} holds no curated prices from '{source}'.",
            hint="Run `spe run` first (it ingests, validates and stores them), or pick another --source.",
        )
    return symbols


def choose_spec(
    store: Store,
    *,
    spec: PortfolioSpec | dict[str, Any] | None = None,
    portfolio: str | None = None,
    method: str | None = None,
    origin: str = "inline",
) -> ChosenSpec:
    """The spec to optimize: ``spec`` inline, else the stored, else the bundled spec of ``portfolio``.

    Parameters
    ----------
    spec : PortfolioSpec or dict, optional
        An inline spec (a dict is validated as a ``PortfolioSpec``); ``portfolio`` then renames it.
    portfolio : str, optional
        The portfolio's name (default: the inline spec's name, else ``"default"``).
    method : str, optional
        Optimize with this method instead of the spec's.
    origin : str, default "inline"
        How to describe an inline spec's origin (the CLI names the file).

    Raises
    ------
    SpecificationError
        An unknown method, an invalid spec, or a portfolio that is neither stored nor bundled.
    """
    from portfolio_engine.optimization import PortfolioSpec
    from portfolio_engine.pipeline.optimize import bundled_spec
    from portfolio_engine.pipeline.portfolios import read_book

    check_method(method)
    base: PortfolioSpec
    if spec is not None:
        base = spec if isinstance(spec, PortfolioSpec) else PortfolioSpec.from_dict(spec)
        name = portfolio or base.name
    else:
        name = portfolio or "default"
        stored = read_book(store, name)
        if stored.spec is not None:
            base, origin = PortfolioSpec.from_dict(stored.spec), f"store (spec v{stored.spec_version})"
        else:
            found = bundled_spec(name)
            if found is None:
                raise SpecificationError(
                    f"No portfolio {name!r} in the store and no bundled spec of that name.",
                    hint="Give a spec file (--spec core.yaml) or an inline spec; saving it stores it as a portfolio.",
                )
            base, origin = found, "bundled"
    data = base.to_dict() | {"name": name}
    if method is not None:
        data["method"] = method
    return ChosenSpec(PortfolioSpec.from_dict(data), origin, spec is not None, method)


def what_if_size(chosen: ChosenSpec, lake: Lake, source: str, symbols: list[str]) -> WhatIfSize:
    """The size of the problem :func:`what_if` would solve, measured from the lake's inventory (no prices read).

    The universe is the spec's (else the curated symbols but the index); the history is the spec's
    ``lookback_days`` capped by the days of data the universe has, or all of those days without a lookback.
    The regime model's detection is not counted: its cost is fixed by the champion, not by the request.
    """
    spec = chosen.spec
    universe = spec.universe or [s for s in symbols if s != index_symbol(lake, source, symbols, None)]
    wanted = set(universe)
    days = max((c.rows for c in lake.inventory(source, zone="curated") if c.symbol in wanted), default=0)
    history = days if spec.lookback_days is None else min(spec.lookback_days, days)
    return WhatIfSize(assets=len(universe), history_days=history)


def index_symbol(lake: Lake, source: str, symbols: list[str], feature_key: str | None) -> str | None:
    """The index the use case keeps out of the universe: the feature set's, else ^GSPC if the lake holds it."""
    from portfolio_engine.regime.definition import RegimeModelSpec

    manifest = lake.feature_manifest(feature_key.removeprefix("features/")) if feature_key else None
    if manifest is None:
        from portfolio_engine.pipeline.regime import latest_feature_set

        found = latest_feature_set(lake, source=source)
        manifest = found[1] if found else {}
    index = manifest.get("index_symbol") or RegimeModelSpec().symbol
    return str(index) if index in symbols else None


def optimize_input(
    lake: Lake,
    chosen: ChosenSpec,
    *,
    run_id: str,
    source: str,
    symbols: list[str],
    detected: DetectRegimeOutput | None,
    feature_key: str | None,
    interval: str = DEFAULT_INTERVAL,
) -> OptimizeInput:
    """The Optimize task for ``chosen`` (from :func:`choose_spec`) on the lake's curated ``symbols``.

    Raises
    ------
    ConfigurationError
        Values the task contract refuses (a bad run id, source or symbol).
    """
    from pydantic import ValidationError

    from portfolio_engine.contracts import OptimizeInput

    values = {
        "run_id": run_id,
        "source": source,
        "symbols": symbols,
        "index_symbol": index_symbol(lake, source, symbols, feature_key),
        "interval": interval,
        "portfolio": chosen.spec.name,
        # A stored or bundled spec is left to the use case to resolve, as in `spe run`.
        "spec": chosen.spec.to_dict() if chosen.inline else None,
        "feature_key": feature_key,
        "regime": detected,
        # A method override of the stored or bundled spec stays that spec (adapted to the lake as a run would).
        "method": chosen.method if not chosen.inline else None,
    }
    try:
        return OptimizeInput(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(
            f"Invalid options: {problems}.", hint="See `spe --help` for each option's values."
        ) from exc


def current_regime(
    lake: Lake, registry: ModelRegistry, run_id: str, portfolio: str, source: str
) -> tuple[DetectRegimeOutput, str]:
    """DetectRegime on the latest feature set holding the champion's symbol (the source's own, if it has one)."""
    from portfolio_engine.adapters.training_job import LocalTrainingJob
    from portfolio_engine.contracts import DetectRegimeInput
    from portfolio_engine.pipeline.regime import (
        champion_spec,
        detect_regime,
        latest_feature_key,
        latest_feature_set,
        load_champion,
    )
    from portfolio_engine.regime.definition import RegimeModelSpec

    default = RegimeModelSpec()
    champion = load_champion(registry, default.name)
    symbol = champion_spec(champion).symbol if champion is not None else default.symbol
    found = latest_feature_set(lake, symbol=symbol, source=source)
    # The market's regime is market-wide: a feature set of another source serves when this one has none.
    key = found[0] if found else latest_feature_key(lake, symbol)
    manifest = lake.feature_manifest(key.removeprefix("features/")) or {}
    task = DetectRegimeInput(
        run_id=run_id, feature_key=key, portfolio=portfolio, index_symbol=manifest.get("index_symbol")
    )
    # In-process training: a first model on a cold lake takes ~2 s instead of ~4 s in a child interpreter.
    detected = detect_regime(task, lake=lake, registry=registry, jobs=LocalTrainingJob(in_process=True))
    return detected, key


def regime_summary(detected: DetectRegimeOutput | None, requested: bool) -> dict[str, Any] | None:
    """What a what-if reports of the regime model: None when not asked for, a reason when not available."""
    if detected is None:
        return None if not requested else {"available": False, "reason": "the spec is not regime-aware"}
    keys = (
        "available", "reason", "model_name", "model_version", "trained_now", "symbol", "as_of", "regime",
        "probabilities", "next_probabilities",
    )  # fmt: skip
    document = detected.model_dump(mode="json")
    return {k: document[k] for k in keys}


def what_if(
    chosen: ChosenSpec,
    *,
    store: Store,
    lake: Lake,
    registry: ModelRegistry,
    run_id: str,
    source: str,
    symbols: list[str],
    regime: bool = True,
) -> dict[str, Any]:
    """Optimize ``chosen`` on the lake's curated ``symbols`` against the stored holdings; change nothing stored.

    Returns
    -------
    dict
        The Optimize output (JSON mode) with ``spec_source``, ``spec_method``, ``feature_key`` and
        ``regime_model`` (the detection used, or why none was).

    Raises
    ------
    SpecificationError
        A spec the lake's symbols cannot satisfy.
    EmptyDataError
        No prices for the universe.
    OptimizationError
        Infeasible or unbounded problems, solver failures.
    """
    from portfolio_engine.pipeline.optimize import optimize_portfolio
    from portfolio_engine.pipeline.portfolios import read_book

    spec = chosen.spec
    book = read_book(store, spec.name)
    detected: DetectRegimeOutput | None = None
    feature_key: str | None = None
    if regime and spec.regime_aware:
        detected, feature_key = current_regime(lake, registry, run_id, spec.name, source)
    task = optimize_input(
        lake, chosen, run_id=run_id, source=source, symbols=symbols, detected=detected, feature_key=feature_key
    )
    output = optimize_portfolio(task, lake=lake, registry=registry, book=book)
    logger.info("what-if", extra={"portfolio": spec.name, "run_id": run_id, "rebalance": output.decision.rebalance})
    document: dict[str, Any] = output.model_dump(mode="json")
    return document | {
        "spec_source": chosen.origin,
        "spec_method": spec.method,
        "feature_key": feature_key,
        "regime_model": regime_summary(detected, regime and spec.regime_aware),
    }
