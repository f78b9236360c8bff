"""CommitRun of the rebalance machine: everything the run decided, recorded in one transaction, at the end.

The steps before it only proposed (the target and decision, risk reports, alerts sent, a first regime model
trained), each keyed by the run id. The commit appends, in one ``append_all``:

* to the portfolio's stream: ``TargetProposed``, one ``AlertSent`` per alert dispatched, and ``RunCommitted``
  with the holdings (moved only if the rebalancing rule said trade), the result (target and committed weights,
  regime probabilities, risk figures, breaches, hedge, alerts), the per-state timings and what the run consumed
  (for ``spe replay``); the read models follow from these events;
* to the regime model's stream, when the run trained a model: its registration and, if the champion it was
  compared with is still the champion, its promotion.

A run whose decision was made on holdings another run has moved since gets ``StaleHoldingsError`` and commits
nothing; a commit retried after it succeeded returns what it recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from portfolio_engine.contracts.risk import RiskSettings
from portfolio_engine.contracts.runs import (
    BacktestRunOutput,
    BacktestState,
    CommitOutcome,
    CommitRebalanceInput,
    CommitRunInput,
    RebalanceRunOutput,
    RebalanceState,
    RetrainRunOutput,
    RetrainState,
)
from portfolio_engine.exceptions import ConcurrencyError, InvalidTransitionError, StaleHoldingsError
from portfolio_engine.pipeline.champion import decision_events
from portfolio_engine.pipeline.features import bars_fingerprint
from portfolio_engine.pipeline.runs import APPEND_ATTEMPTS, alert_event_data, append_retrying
from portfolio_engine.ports import Lake, ModelRegistry, Store, StreamAppend
from portfolio_engine.records.events import NewEvent
from portfolio_engine.records.views import PortfolioView, RunView

__all__ = ["commit_rebalance", "commit_run", "curated_fingerprint", "run_inputs", "run_result"]


def clean(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (the store keeps strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def curated_fingerprint(lake: Lake, source: str, symbols: list[str], interval: str, end: Any) -> str:
    """A digest of the curated bars of ``symbols`` up to ``end``: what the run read (``spe replay`` checks it)."""
    bars = lake.read_bars(source, symbols, end=end, zone="curated", interval=interval)
    return bars_fingerprint(bars)


def run_inputs(state: RebalanceState, lake: Lake) -> dict[str, Any]:
    """What the run consumed: data fingerprints, versions, the holdings it started from, the Monte Carlo seed."""
    target = state.optimize
    index = state.features.index_symbol
    symbols = sorted({*target.target_weights, *([index] if index else [])})
    source, interval = state.validation.source, state.ingest.interval
    manifest = lake.feature_manifest(state.features.feature_key.removeprefix("features/")) or {}
    plan = state.risk_plan
    settings = RiskSettings(
        n_paths=plan.n_paths, horizon_days=plan.horizon_days, seed=plan.seed, shards=len(plan.shards)
    )
    return {
        "portfolio": target.portfolio,
        "spec_version": target.spec_version,
        "as_of": str(target.as_of),
        "source": source,
        "interval": interval,
        "index_symbol": index,
        "symbols": list(state.validation.symbols),
        "curated_symbols": symbols,
        "curated_fingerprint": curated_fingerprint(lake, source, symbols, interval, target.as_of),
        "feature_key": state.features.feature_key,
        "feature_fingerprint": manifest.get("bars_fingerprint"),
        "model": {"name": state.regime.model_name, "version": state.regime.model_version},
        "holdings_before": target.holdings_before,
        "holdings_version": target.holdings_version,
        "risk_settings": settings.model_dump(mode="json"),
    }


def run_result(state: RebalanceState) -> dict[str, Any]:
    """The committed result: what ``spe portfolio show`` and the API's "latest" read."""
    target, regime, risk, limits = state.optimize, state.regime, state.risk, state.limits
    moved = target.decision.rebalance
    return clean(
        {
            "as_of": str(target.as_of),
            "method": target.method,
            "policy": target.policy,
            "regime_role": target.regime_role,
            "adaptations": target.adaptations,
            "regime": {
                "model": regime.model_name,
                "model_version": regime.model_version,
                "available": regime.available,
                "regime": regime.regime,
                "probabilities": regime.probabilities,
                "next_probabilities": regime.next_probabilities,
                "state_names": regime.state_names,
                "as_of": None if regime.as_of is None else str(regime.as_of),
            },
            "target_weights": target.target_weights,
            "committed_weights": target.target_weights if moved else target.holdings,
            "rebalanced": moved,
            "decision_reason": target.decision.reason,
            "decision": target.decision.model_dump(mode="json"),
            "expected_return": target.expected_return,
            "volatility": target.volatility,
            "sharpe": target.sharpe,
            "risk": {
                "n_paths": risk.n_paths,
                "horizon_days": risk.horizon_days,
                "monte_carlo": risk.monte_carlo,
                "historical": risk.historical,
            },
            "stress": {"worst_scenario": state.stress.worst_scenario, "worst_loss": state.stress.worst_loss},
            "limits": {
                "measured": limits.measured,
                "unmeasured": limits.unmeasured,
                "worst_severity": limits.worst_severity,
                "any_breach": limits.any_breach,
            },
            "breaches": limits.breaches,
            "hedge": None if state.hedge is None else {"chosen": state.hedge.chosen, "message": state.hedge.message},
            "alerts": None
            if state.alerts is None
            else {k: getattr(state.alerts, k) for k in ("sent", "suppressed", "failed")},
        }
    )


def _output(state: RebalanceState, commit: CommitOutcome) -> RebalanceRunOutput:
    fields = ("ingest", "validation", "features", "regime", "risk", "stress", "limits", "hedge", "alerts")
    return RebalanceRunOutput(
        run_id=commit.run_id, commit=commit, portfolio=state.optimize, **{f: getattr(state, f) for f in fields}
    )


def commit_rebalance(
    task: CommitRebalanceInput,
    *,
    store: Store,
    lake: Lake,
    registry: ModelRegistry,
    steps: Callable[[str], list[dict[str, Any]]] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RebalanceRunOutput:
    """Commit a rebalance run (see the module docstring).

    Raises
    ------
    StaleHoldingsError
        Another run moved the holdings after this run read them: nothing is committed.
    InvalidTransitionError
        The run was not started, or already failed.
    ConcurrencyError
        The streams kept moving for every attempt.
    """
    state = task.state
    run_id, stream, name = task.run_id, state.run.stream, state.run.subject
    recorded = store.view("run", run_id)
    if recorded is not None and recorded["status"] == "SUCCEEDED":  # a retried commit: answer what was recorded
        return _output(state, _outcome_of(RunView.model_validate(recorded), store, name))
    if recorded is None or recorded["status"] != "RUNNING":
        raise InvalidTransitionError(
            f"Run {run_id} cannot be committed: it is {'not started' if recorded is None else recorded['status']}."
        )
    # The states before this one (this task is still running while it reads the history).
    timings = [t for t in (steps(task.execution) if steps and task.execution else []) if t["status"] != "running"]
    inputs = run_inputs(state, lake)
    result = run_result(state)
    target = state.optimize
    moved = target.decision.rebalance
    # The proposal's exact weights (the task's output rounds them for reading): what the book holds.
    exact = {str(k): float(v) for k, v in lake.get_json(target.result_key)["holdings"].items()}
    holdings = {"weights": exact, "as_of": str(target.as_of), "regime": target.regime}
    proposal = state.regime.proposal
    champion_promoted: str | None = None
    for attempt in range(APPEND_ATTEMPTS):
        raw = store.view("portfolio", name)
        if raw is None:
            raise InvalidTransitionError(f"Portfolio {name!r} is not in the store; run {run_id} cannot commit.")
        view = PortfolioView.model_validate(raw)
        held_version = None if view.holdings is None else view.holdings.version
        if held_version != target.holdings_version:
            raise StaleHoldingsError(
                f"Run {run_id} decided on the holdings of {name!r} at version {target.holdings_version}; another "
                f"run has moved them since (version {held_version}). Nothing was committed."
            )
        ended = clock()
        events = [
            NewEvent(
                type="TargetProposed",
                run_id=run_id,
                data=clean(
                    {
                        "as_of": str(target.as_of),
                        "method": target.method,
                        "policy": target.policy,
                        "target_weights": target.target_weights,
                        "decision": target.decision.model_dump(mode="json"),
                        "holdings_before": target.holdings_before,
                        "holdings_version": target.holdings_version,
                        "spec_version": target.spec_version,
                        "result_key": target.result_key,
                    }
                ),
            ),
            *(
                NewEvent(type="AlertSent", run_id=run_id, data=clean(alert_event_data(o)))
                for o in (state.alerts.outcomes if state.alerts else [])
            ),
            NewEvent(
                type="RunCommitted",
                run_id=run_id,
                data=clean(
                    {
                        "holdings_moved": moved,
                        "holdings": holdings if moved else None,
                        "result": result,
                        "steps": timings,
                        "inputs": inputs,
                        "ended_at": ended.isoformat(),
                    }
                ),
            ),
        ]
        appends = [StreamAppend(stream, events, view.version)]
        if proposal is not None:
            model_events, final, model_version = decision_events(registry, proposal, run_id=run_id)
            appends.append(StreamAppend(registry.stream(proposal.name), model_events, model_version))
            champion_promoted = final.version if final.promoted else None
        try:
            written = store.append_all(appends)
        except ConcurrencyError:
            if attempt == APPEND_ATTEMPTS - 1:
                raise
            continue
        outcome = CommitOutcome(
            run_id=run_id,
            stream=stream,
            version=written[0][-1].version,
            committed_at=ended,
            holdings_moved=moved,
            holdings=holdings["weights"] if moved else None,
            champion_promoted=champion_promoted,
            steps=timings,
            inputs=inputs,
        )
        return _output(state, outcome)
    raise AssertionError("unreachable")  # pragma: no cover


def _outcome_of(run: RunView, store: Store, name: str) -> CommitOutcome:
    """The outcome of a commit already recorded (a retried CommitRun)."""
    result = run.result or {}
    raw = store.view("portfolio", name)
    holdings = (raw or {}).get("holdings") or {}
    moved = bool(result.get("rebalanced")) and holdings.get("run_id") == run.run_id
    return CommitOutcome(
        run_id=run.run_id,
        stream=run.stream,
        version=int((raw or {}).get("version", 0)),
        committed_at=run.ended_at or datetime.now(UTC),
        holdings_moved=moved,
        holdings=holdings.get("weights") if moved else None,
        steps=[s.model_dump(mode="json") for s in run.steps],
        inputs=run.inputs,
    )


Steps = Callable[[str], list[dict[str, Any]]] | None


def commit_run(
    task: CommitRunInput,
    *,
    store: Store,
    lake: Lake,
    registry: ModelRegistry,
    steps: Steps = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RebalanceRunOutput | RetrainRunOutput | BacktestRunOutput:
    """CommitRun of any machine: parse its state by ``task.machine`` and commit it.

    Raises
    ------
    pydantic.ValidationError
        A state that is not the machine's (a step's output missing).
    """
    if task.machine == "rebalance":
        rebalance = CommitRebalanceInput(run_id=task.run_id, execution=task.execution, state=task.state)
        return commit_rebalance(rebalance, store=store, lake=lake, registry=registry, steps=steps, clock=clock)
    timings = [t for t in (steps(task.execution) if steps and task.execution else []) if t["status"] != "running"]
    if task.machine == "retrain-regime":
        return _commit_retrain(task.run_id, RetrainState.model_validate(task.state), store, registry, timings, clock)
    return _commit_backtest(task.run_id, BacktestState.model_validate(task.state), store, timings, clock)


def _committed(store: Store, run_id: str) -> RunView | None:
    """The run's view if it already committed (a retried CommitRun); refuse a run that is not running."""
    recorded = store.view("run", run_id)
    if recorded is not None and recorded["status"] == "SUCCEEDED":
        return RunView.model_validate(recorded)
    if recorded is None or recorded["status"] != "RUNNING":
        raise InvalidTransitionError(
            f"Run {run_id} cannot be committed: it is {'not started' if recorded is None else recorded['status']}."
        )
    return None


def _commit_retrain(
    run_id: str,
    state: RetrainState,
    store: Store,
    registry: ModelRegistry,
    timings: list[dict[str, Any]],
    clock: Callable[[], datetime],
) -> RetrainRunOutput:
    """Register the challenger and promote it only against the champion it was compared with, in one append."""
    registration = state.registration
    base = {
        "feature_key": state.prepare.feature_key,
        "job_name": registration.job_name,
        "model_artifacts_uri": registration.model_artifacts_uri,
    }
    done = _committed(store, run_id)
    if done is not None:
        decision = registration.model_copy(update=(done.result or {}).get("decision", {}))
        outcome = _recorded_outcome(done)
        return RetrainRunOutput(run_id=run_id, decision=decision, commit=outcome, **base)
    recorded: list[Any] = []

    def build(version: int) -> list[NewEvent]:
        events, final, _ = decision_events(registry, registration, run_id=run_id)
        ended = clock()
        recorded[:] = [final, ended]
        inputs = {
            "feature_key": state.prepare.feature_key,
            "rows": state.prepare.rows,
            "job_name": state.prepare.job_name,
        }
        result = {"decision": final.model_dump(mode="json"), **base}
        done_event = NewEvent(
            type="RunCommitted",
            run_id=run_id,
            data=clean({"result": result, "steps": timings, "inputs": inputs, "ended_at": ended.isoformat()}),
        )
        return [*events, done_event]

    written = append_retrying(store, state.run.stream, build)
    final, ended = recorded
    outcome = CommitOutcome(
        run_id=run_id,
        stream=state.run.stream,
        version=written[-1].version,
        committed_at=ended,
        champion_promoted=final.version if final.promoted else None,
        steps=timings,
    )
    return RetrainRunOutput(
        run_id=run_id, decision=registration.model_copy(update=final.model_dump()), commit=outcome, **base
    )


def _commit_backtest(
    run_id: str, state: BacktestState, store: Store, timings: list[dict[str, Any]], clock: Callable[[], datetime]
) -> BacktestRunOutput:
    """Record the backtest's result (a backtest changes no portfolio)."""
    done = _committed(store, run_id)
    if done is not None:
        return BacktestRunOutput(
            run_id=run_id, plan=state.plan, windows=state.windows, result=state.result, commit=_recorded_outcome(done)
        )
    ended = clock()
    result = state.result.model_dump(mode="json")
    inputs = {"config_key": state.plan.config_key, "symbols": state.plan.symbols, "n_decisions": state.plan.n_decisions}
    event = NewEvent(
        type="RunCommitted",
        run_id=run_id,
        data=clean({"result": result, "steps": timings, "inputs": inputs, "ended_at": ended.isoformat()}),
    )
    written = append_retrying(store, state.run.stream, lambda version: [event])
    outcome = CommitOutcome(
        run_id=run_id, stream=state.run.stream, version=written[-1].version, committed_at=ended, steps=timings
    )
    return BacktestRunOutput(run_id=run_id, plan=state.plan, windows=state.windows, result=state.result, commit=outcome)


def _recorded_outcome(run: RunView) -> CommitOutcome:
    return CommitOutcome(
        run_id=run.run_id,
        stream=run.stream,
        version=0,
        committed_at=run.ended_at or datetime.now(UTC),
        steps=[s.model_dump(mode="json") for s in run.steps],
        inputs=run.inputs,
    )
