"""Replay a committed rebalance run from what it recorded, and say how far the recomputation lands from it.

A run records what it consumed (``RunCommitted.inputs``): the spec version, the holdings it started from, the
day its prices end, fingerprints of the curated bars and of the feature set, the regime model version, the
Monte Carlo settings and seed, the code and package versions. The replay runs the same use cases
(DetectRegime with that model version, Optimize, PlanRisk, each shard, AggregateRisk, StressTest,
CheckLimits) on the lake as of that day (:class:`~portfolio_engine.adapters.as_of.AsOfLake`; its writes go to
a scratch lake, so nothing stored changes) and compares the target weights, regime probabilities and risk
figures with the recorded ones: ``max_abs_diff`` is 0 when nothing moved. An input that is gone (a feature
set, a model version, a spec version) is named and the replay stops; an input that changed since (the
curated bars were restated) is named and the replay goes on, so its effect is measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Any

from portfolio_engine.adapters.as_of import AsOfLake
from portfolio_engine.contracts import DetectRegimeInput, OptimizeInput
from portfolio_engine.contracts.risk import (
    AggregateRiskInput,
    CheckLimitsInput,
    PlanRiskInput,
    RiskSettings,
    StressInput,
)
from portfolio_engine.exceptions import (
    ConfigurationError,
    LakeError,
    ModelNotFoundError,
    PortfolioEngineError,
    RecordNotFoundError,
)
from portfolio_engine.pipeline.commit import curated_fingerprint
from portfolio_engine.pipeline.optimize import optimize_portfolio
from portfolio_engine.pipeline.portfolios import Book, spec_at
from portfolio_engine.pipeline.regime import detect_regime
from portfolio_engine.pipeline.risk import aggregate_risk, plan_risk, simulate_risk_shard
from portfolio_engine.pipeline.risk_checks import check_limits, stress_test
from portfolio_engine.ports import Lake, ModelRegistry, Store, TrainingJobs
from portfolio_engine.provenance import code_version, package_versions
from portfolio_engine.records.views import Holdings, RunView

__all__ = ["InputsMissingError", "max_abs_diff", "replay_run"]


class InputsMissingError(PortfolioEngineError):
    """A replay needs an input the run recorded but the lake or the store no longer holds."""

    default_hint = "Inputs are kept unless deleted by hand; restore them from a backup of the lake or the store."


def max_abs_diff(recorded: Any, replayed: Any) -> float:
    """The largest absolute difference between two nested structures of numbers (inf where they differ in shape)."""
    if isinstance(recorded, Mapping) and isinstance(replayed, Mapping):
        if set(recorded) != set(replayed):
            return math.inf
        return max((max_abs_diff(recorded[k], replayed[k]) for k in recorded), default=0.0)
    if isinstance(recorded, bool) or isinstance(replayed, bool):
        return 0.0 if recorded == replayed else math.inf
    if isinstance(recorded, int | float) and isinstance(replayed, int | float):
        if math.isnan(recorded) and math.isnan(replayed):
            return 0.0
        return abs(float(recorded) - float(replayed))
    return 0.0 if recorded == replayed else math.inf


def _run(store: Store, run_id: str) -> RunView:
    raw = store.view("run", run_id)
    if raw is None:
        raise RecordNotFoundError(f"No run {run_id!r} in the store.", hint="`spe runs list` shows the recorded runs.")
    run = RunView.model_validate(raw)
    if run.machine != "rebalance" or run.status != "SUCCEEDED" or not run.result:
        raise ConfigurationError(
            f"Run {run_id} is a {run.status} {run.machine} run: only committed rebalance runs are replayed.",
            hint="`spe runs list --status SUCCEEDED` lists them.",
        )
    return run


def replay_run(
    run_id: str,
    *,
    store: Store,
    lake: Lake,
    registry: ModelRegistry,
    jobs: TrainingJobs,
    scratch: Lake,
    deployed_version: str | None = None,
) -> dict[str, Any]:
    """Recompute a committed rebalance run from its recorded inputs and compare (see the module docstring).

    Raises
    ------
    RecordNotFoundError
        No such run.
    ConfigurationError
        The run is not a committed rebalance run.
    InputsMissingError
        The spec version, the feature set or the model version it used is gone (each named).
    """
    run = _run(store, run_id)
    inputs, result = run.inputs, run.result or {}
    name = str(inputs["portfolio"])
    as_of = date.fromisoformat(str(inputs["as_of"]))
    feature_key = str(inputs["feature_key"])
    model = inputs.get("model") or {}
    missing: list[str] = []
    spec, origin = None, None
    if inputs.get("spec_version") is not None:
        try:
            spec, origin = spec_at(store, name, int(inputs["spec_version"]))
        except RecordNotFoundError as exc:
            missing.append(f"spec version {inputs['spec_version']} of {name}: {exc.message}")
    if lake.feature_manifest(feature_key.removeprefix("features/")) is None:
        missing.append(f"the feature set {feature_key}")
    if model.get("version"):
        try:
            registry.metadata(model["name"], model["version"])
        except ModelNotFoundError:
            missing.append(f"regime model {model['name']} version {model['version']}")
    if missing:
        raise InputsMissingError(f"Run {run_id} cannot be replayed: {'; '.join(missing)} no longer stored.")
    view = AsOfLake(lake, as_of, scratch)
    changed: list[str] = []
    try:
        fingerprint = curated_fingerprint(lake, inputs["source"], inputs["curated_symbols"], inputs["interval"], as_of)
    except LakeError as exc:
        raise InputsMissingError(
            f"Run {run_id} cannot be replayed: its curated bars are gone ({exc.message})."
        ) from exc
    if fingerprint != inputs.get("curated_fingerprint"):
        changed.append(
            f"curated bars of {inputs['curated_symbols']} up to {as_of} changed since the run "
            f"({inputs.get('curated_fingerprint')} -> {fingerprint})"
        )
    replay_id = f"replay-{run_id}"[:80]
    steps = _recompute(replay_id, inputs, view, registry, jobs, spec, origin, model.get("version"))
    recorded_regime = result.get("regime") or {}
    diffs = {
        "target_weights": max_abs_diff(result.get("target_weights"), steps["target"].target_weights),
        "regime_probabilities": max_abs_diff(recorded_regime.get("probabilities"), steps["regime"].probabilities),
        "expected_return": max_abs_diff(result.get("expected_return"), steps["target"].expected_return),
        "volatility": max_abs_diff(result.get("volatility"), steps["target"].volatility),
        "monte_carlo": max_abs_diff(result["risk"]["monte_carlo"], steps["risk"].monte_carlo),
        "historical": max_abs_diff(result["risk"]["historical"], steps["risk"].historical),
        "limits": max_abs_diff(result["limits"]["measured"], steps["limits"].measured),
        "stress_worst_loss": max_abs_diff(result["stress"]["worst_loss"], steps["stress"].worst_loss),
    }
    now_code = code_version(deployed_version)
    packages = package_versions()
    recorded_packages = inputs.get("packages") or {}
    return {
        "run_id": run_id,
        "portfolio": name,
        "as_of": str(as_of),
        "max_abs_diff": max(diffs.values()),
        "diffs": diffs,
        "decision_same": steps["target"].decision.rebalance == bool(result.get("rebalanced")),
        "inputs_changed": changed,
        "code_version": {"recorded": inputs.get("code_version"), "now": now_code},
        "packages_changed": {
            k: {"recorded": recorded_packages.get(k), "now": v}
            for k, v in packages.items()
            if recorded_packages.get(k) != v
        },
    }


def _recompute(
    replay_id: str,
    inputs: Mapping[str, Any],
    lake: Lake,
    registry: ModelRegistry,
    jobs: TrainingJobs,
    spec: dict[str, Any] | None,
    origin: str | None,
    model_version: str | None,
) -> dict[str, Any]:
    """The run's steps again, on the lake as of its day, with its model version, spec, holdings and seed."""
    source, interval, index = inputs["source"], inputs["interval"], inputs.get("index_symbol")
    feature_key, name = inputs["feature_key"], inputs["portfolio"]
    regime = detect_regime(
        DetectRegimeInput(
            run_id=replay_id,
            feature_key=feature_key,
            portfolio=name,
            index_symbol=index,
            model_version=model_version,
            train_if_missing=False,
        ),
        lake=lake,
        registry=registry,
        jobs=jobs,
    )
    before = inputs.get("holdings_before")
    holdings = None if before is None else Holdings(**before, version=int(inputs.get("holdings_version") or 0))
    book = Book(name, spec, inputs.get("spec_version"), origin, holdings)
    target = optimize_portfolio(
        OptimizeInput(
            run_id=replay_id,
            source=source,
            symbols=inputs["symbols"],
            index_symbol=index,
            interval=interval,
            portfolio=name,
            feature_key=feature_key,
            regime=regime,
            spec_version=inputs.get("spec_version"),
        ),
        lake=lake,
        registry=registry,
        book=book,
    )
    common: dict[str, Any] = {"run_id": replay_id, "source": source, "interval": interval, "index_symbol": index}
    settings = RiskSettings.model_validate(inputs["risk_settings"])
    plan = plan_risk(
        PlanRiskInput(**common, feature_key=feature_key, regime=regime, portfolio=target, settings=settings),
        lake=lake,
        registry=registry,
    )
    shards = [simulate_risk_shard(shard, lake=lake) for shard in plan.shards]
    risk = aggregate_risk(
        AggregateRiskInput(**common, model_key=plan.model_key, shards=shards, portfolio=target), lake=lake
    )
    stress = stress_test(StressInput(**common, portfolio=target), lake=lake)
    limits = check_limits(CheckLimitsInput(**common, portfolio=target, risk=risk, stress=stress), lake=lake)
    return {"regime": regime, "target": target, "risk": risk, "stress": stress, "limits": limits}
