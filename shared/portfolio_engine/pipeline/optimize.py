"""Optimize: target weights for a portfolio, regime-aware by default, and the rebalancing decision.

Regime-aware moments: the regime model DetectRegime used gives filtered probabilities P(state at t |
data to t) for every day of the price history; each state's mean and covariance are the returns'
posterior-weighted moments (all the history: a regime pools similar days across decades), and they are
blended by the probabilities of the *next* period's state (the period the weights will be held), by the
law of total variance. The spec's policy for the most probable state (e.g. a defensive method when
turbulent) is then applied. Without a regime (a short run, ``regime_aware: false``) the spec's own
estimators run on its ``lookback_days``.

Holdings are in the store of record (the portfolio's read model): each run drifts the last holdings with
the returns since and proposes to trade to the new target only when the rebalancing rule says so (a regime
change or drift beyond the threshold, and a utility gain larger than the cost of trading); the run's commit
moves them.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.contracts import OptimizeInput, OptimizeOutput, RebalanceOutcome
from portfolio_engine.exceptions import EmptyDataError, SpecificationError
from portfolio_engine.optimization import (
    Moments,
    PortfolioSpec,
    RebalanceRule,
    blend_moments,
    drift_weights,
    estimate_moments,
    optimize,
    regime_conditional_moments,
)
from portfolio_engine.optimization.spec_fitting import fit_caps_to_universe, narrow_universe
from portfolio_engine.pipeline.factor_exposures import factor_loadings
from portfolio_engine.pipeline.portfolios import Book
from portfolio_engine.ports import Lake, ModelRegistry
from portfolio_engine.regime.artifacts import MODEL_FILE, load_estimator
from portfolio_engine.regime.definition import RegimeModelSpec, training_frame

logger = logging.getLogger(__name__)

#: The rule of a spec without its own ``method_params.rebalance``: 5% drift, 10 bp, a monthly horizon.
DEFAULT_REBALANCE = {"drift_threshold": 0.05, "cost_bps": 10.0, "horizon_years": 1 / 12}


def bundled_spec(name: str) -> PortfolioSpec | None:
    """A portfolio specification shipped with the package (``resources/portfolios/<name>.yaml``)."""
    resource = files("portfolio_engine.resources").joinpath("portfolios", f"{name}.yaml")
    return PortfolioSpec.from_yaml(resource.read_text()) if resource.is_file() else None


def resolve_spec(task: OptimizeInput, book: Book) -> tuple[PortfolioSpec, bool]:
    """The portfolio's spec, and whether it is the bundled default (the one spec adapted to a run's universe).

    Inline in the task (a what-if: never adapted), else the stored spec at the run's version, else the
    bundled spec of that name (a portfolio not stored yet: its first run creates it from that spec).

    Raises
    ------
    SpecificationError
        If none of the three exists for ``task.portfolio``, or the spec is invalid.
    """
    if task.spec is not None:
        return PortfolioSpec.from_dict(task.spec), False
    bundled = bundled_spec(task.portfolio)
    if book.spec is not None:
        spec = PortfolioSpec.from_dict(book.spec)
        return spec, book.spec_origin == "bundled" and spec == bundled
    if bundled is None:
        raise SpecificationError(
            f"No specification for portfolio {task.portfolio!r}.",
            hint="Pass one inline (spec), or save it first: `spe optimize --spec file.yaml --save`.",
        )
    return bundled, True


def price_returns(lake: Lake, source: str, universe: list[str], interval: str) -> pd.DataFrame:
    """Simple returns of the universe's adjusted closes on the dates every asset trades (dates x assets).

    Raises
    ------
    EmptyDataError
        If an asset has no curated prices, or fewer than two common dates remain.
    """
    bars = lake.read_bars(source, universe, zone="curated", interval=interval)
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    missing = [s for s in universe if s not in prices.columns]
    if missing:
        raise EmptyDataError(
            f"No curated prices for {missing} from '{source}'.", hint="Include them in the run's symbols."
        )
    returns = prices[universe].sort_index().pct_change(fill_method=None).iloc[1:].dropna(how="any")
    if len(returns) < 2:
        raise EmptyDataError(
            f"The universe {universe} has fewer than two common trading days.",
            hint="Check the symbols' date ranges (`spe data show`).",
        )
    return returns


def regime_posterior(registry: ModelRegistry, regime: Any, lake: Lake, feature_key: str) -> pd.DataFrame:
    """Filtered probabilities, by date and state, of the model version DetectRegime used."""
    metadata = registry.metadata(regime.model_name, regime.model_version)
    spec = RegimeModelSpec.model_validate(metadata["spec"])
    model = load_estimator(registry.read_file(regime.model_name, regime.model_version, MODEL_FILE))
    features = lake.read_features(feature_key.removeprefix("features/"), symbols=[spec.symbol], columns=spec.columns)
    frame = training_frame(features, spec, min_obs=1)
    hmm = getattr(model, "hmm_", model)
    columns = list(getattr(hmm, "feature_names_in_", frame.columns))
    return pd.DataFrame(hmm.predict_proba(frame[columns]), index=frame.index, columns=list(hmm.state_names_))


def regime_aware_moments(
    returns: pd.DataFrame, posterior: pd.DataFrame, probabilities: dict[str, float], periods_per_year: int
) -> Moments:
    """Per-state posterior-weighted moments of ``returns``, blended by ``probabilities``."""
    common = returns.index.intersection(posterior.index)
    if len(common) < 2:
        raise EmptyDataError(
            "The regime model's dates and the prices' dates do not overlap.",
            hint="Run the regime model on the same source and dates as the portfolio.",
        )
    per_regime = regime_conditional_moments(
        returns.loc[common], posterior.loc[common], periods_per_year=periods_per_year
    )
    weights = pd.Series(probabilities, dtype=float).reindex(posterior.columns).fillna(0.0)
    return blend_moments(per_regime, weights)


def _rule(spec: PortfolioSpec) -> RebalanceRule:
    options = {**DEFAULT_REBALANCE, **dict(spec.method_params.get("rebalance", {}))}
    try:
        return RebalanceRule(**options)
    except TypeError as exc:
        raise SpecificationError(
            f"method_params.rebalance has unknown settings: {exc}.",
            hint="Use drift_threshold, on_regime_change, cost_bps, min_net_benefit, drift_measure, horizon_years.",
        ) from exc


def optimize_portfolio(task: OptimizeInput, *, lake: Lake, registry: ModelRegistry, book: Book) -> OptimizeOutput:
    """Optimize ``task.portfolio`` on the run's prices and decide whether to rebalance; change nothing.

    ``book`` is what the store of record holds for the portfolio (its spec at the run's version and its
    holdings, :func:`~portfolio_engine.pipeline.portfolios.read_book`). The target, the decision and the
    moments are stored as the run's proposal (``portfolios/<name>/runs/<run>.json``); the holdings move only
    when the run commits.

    Raises
    ------
    SpecificationError
        No or an invalid spec; a universe naming symbols the run does not have.
    EmptyDataError
        No prices for the universe.
    OptimizationError
        Infeasible or unbounded problems, solver failures (from the optimizer, naming the constraints).
    """
    spec, default = resolve_spec(task, book)
    if task.method is not None:  # a what-if on another method: still the same spec, adapted as the spec would be
        spec = PortfolioSpec.from_dict({**spec.to_dict(), "method": task.method})
    # The bundled default adapts to the run's symbols (a user's spec never does); the output lists each change.
    narrowed = narrow_universe(spec, [s for s in task.symbols if s != task.index_symbol]) if default else None
    spec = narrowed.spec if narrowed is not None else spec
    universe = spec.universe or [s for s in task.symbols if s != task.index_symbol]
    unknown = [s for s in universe if s not in task.symbols]
    if unknown or not universe:
        raise SpecificationError(
            f"Portfolio {spec.name!r} holds {unknown or 'nothing'}, which the run did not validate.",
            hint=f"The run's symbols are {list(task.symbols)}; add the missing ones to the run or the spec.",
        )
    history = price_returns(lake, task.source, universe, task.interval)
    window = history if spec.lookback_days is None else history.iloc[-spec.lookback_days :]
    regime = task.regime if (task.regime is not None and task.regime.available) else None
    use_regime = spec.regime_aware and regime is not None and regime.model_version is not None
    if use_regime and regime is not None and task.feature_key is not None:
        posterior = regime_posterior(registry, regime, lake, task.feature_key)
        moments = regime_aware_moments(history, posterior, regime.next_probabilities, spec.periods_per_year)
    else:
        use_regime = False
        estimators = spec.estimators
        moments = estimate_moments(
            window,
            mean=estimators.mean,
            covariance=estimators.covariance,
            periods_per_year=spec.periods_per_year,
            **estimators.options,
        )
    state = regime.regime if (use_regime and regime is not None) else None
    state_names = (regime.state_names or None) if (use_regime and regime is not None) else None
    in_force, policy = spec.in_force(state, state_names)
    adaptations = list(narrowed.adaptations) if narrowed is not None else []
    if default:
        fitted = fit_caps_to_universe(in_force, universe)
        in_force, adaptations = fitted.spec, [*adaptations, *fitted.adaptations]
    as_of = history.index[-1]

    held = book.holdings
    current: pd.Series | None = None
    if held is not None:
        since = history.loc[history.index > pd.Timestamp(held.as_of)] if held.as_of else history.iloc[:0]
        current = pd.Series(held.weights, dtype=float)
        if not since.empty and set(current.index) <= set(since.columns):
            current = drift_weights(current, since[list(current.index)])
    dropped = [] if current is None else sorted(set(current.index[current.abs() > 0]) - set(universe))
    held_in_universe = None if current is None else current.reindex(universe, fill_value=0.0)
    loadings = factor_loadings(in_force, history, lake=lake, source=task.source, interval=task.interval)
    result = optimize(in_force, moments, returns=window, current_weights=held_in_universe, factor_loadings=loadings)
    target = result.weights
    if current is None or dropped:
        # First holdings, or holdings of assets that left the universe (quarantined, removed): trade.
        traded = target.sub(current if current is not None else 0.0, fill_value=0.0).abs().sum()
        outcome = RebalanceOutcome(
            rebalance=True,
            reason="initial" if current is None else f"universe_changed: sell {dropped}",
            drift=0.0,
            turnover=float(traded / (1 if current is None else 2)),
            cost=0.0,
            benefit=0.0,
        )
    else:
        previous = held.regime if held else None
        decision = _rule(spec).decide(
            current, target, previous_regime=previous, current_regime=state, moments=moments,
            risk_aversion=in_force.risk_aversion,
        )  # fmt: skip
        # A regime change switches the policy in force (e.g. to the defensive target): the portfolio
        # follows it whatever the utility test says; the cost test applies to drift.
        switched = previous is not None and state is not None and previous != state
        outcome = RebalanceOutcome(
            rebalance=decision.rebalance or switched,
            reason="regime_change" if switched else str(decision.reason),
            drift=float(decision.drift),
            turnover=float(decision.turnover),
            cost=float(decision.cost),
            benefit=float(decision.benefit),
        )
    holdings = target if outcome.rebalance or current is None else current.reindex(target.index, fill_value=0.0)
    result_key = f"portfolios/{spec.name}/runs/{task.run_id}.json"
    lake.put_json(
        result_key,
        {
            "run_id": task.run_id,
            "as_of": str(as_of.date()),
            "spec": spec.to_dict(),
            "method_in_force": in_force.method,
            "regime": task.regime.model_dump(mode="json") if task.regime else None,
            "spec_in_force": in_force.to_dict(),
            "policy": policy.to_dict(),
            "adaptations": adaptations,
            # Labelled by position: put_json sorts mapping keys, so an asset list keeps mu and cov aligned.
            "moments": {
                "assets": [str(a) for a in moments.mu.index],
                "mu": moments.mu.to_numpy().tolist(),
                "cov": moments.cov.to_numpy().tolist(),
            },
            "result": result.to_dict(),
            "decision": outcome.model_dump(mode="json"),
            "holdings": {k: float(v) for k, v in holdings.items()},
        },
    )
    return OptimizeOutput(
        run_id=task.run_id,
        portfolio=spec.name,
        method=in_force.method,
        regime=state,
        regime_role=policy.role,
        policy=policy.key,
        adaptations=adaptations,
        regime_aware=use_regime,
        as_of=as_of.date(),
        target_weights={k: round(float(v), 10) for k, v in target.items()},
        holdings={k: round(float(v), 10) for k, v in holdings.items()},
        expected_return=float(result.expected_return),
        volatility=float(result.volatility),
        sharpe=float(result.sharpe) if np.isfinite(result.sharpe) else 0.0,
        risk_contributions={k: round(float(v), 10) for k, v in result.risk_contributions.items()},
        decision=outcome,
        solver=result.diagnostics.solver,
        result_key=result_key,
        spec_version=None if task.spec is not None else book.spec_version,
        holdings_before=None if held is None else {"weights": held.weights, "as_of": held.as_of, "regime": held.regime},
        holdings_version=None if held is None else held.version,
    )
