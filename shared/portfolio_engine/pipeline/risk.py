"""PlanRisk, SimulateRiskShard, AggregateRisk: the regime-switching Monte Carlo of the target weights, fanned out.

PlanRisk builds the simulation model (per-regime moments weighted by the regime model's filtered
probabilities, the HMM's transition matrix, today's filtered probabilities as the starting point; one
regime from the last three years' sample moments when the run has no regime model), stores it with
the plan and the weights, and splits the blocks into shards. Each Map item simulates its blocks and
stores them; AggregateRisk merges the shards in block order, so any number of shards gives the same
numbers bit for bit, and adds the historical and parametric measures of the same weights.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.contracts.risk import (
    AggregateRiskInput,
    AggregateRiskOutput,
    PlanRiskInput,
    PlanRiskOutput,
    ShardOutput,
    ShardTask,
)
from portfolio_engine.contracts.tasks import OptimizeOutput
from portfolio_engine.exceptions import EmptyDataError
from portfolio_engine.optimization import regime_conditional_moments
from portfolio_engine.pipeline.optimize import price_returns, regime_posterior
from portfolio_engine.ports import Lake, ModelRegistry
from portfolio_engine.risk.measures import risk_report
from portfolio_engine.risk.monte_carlo import (
    MonteCarloPlan,
    RegimeSwitchingModel,
    ShardResult,
    merge_shards,
    simulate_shard,
)

logger = logging.getLogger(__name__)

#: Trading days of history behind the historical measures and the one-regime fallback model.
HISTORY_DAYS = 756
DRAWDOWN_THRESHOLDS = (0.05, 0.10, 0.20)


def run_seed(run_id: str) -> int:
    """A run's Monte Carlo seed: reproducible from the run id, different between runs."""
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:12], 16)


def held_weights(portfolio: OptimizeOutput) -> pd.Series:
    """The target weights the risk steps measure (Series by asset)."""
    return pd.Series(portfolio.target_weights, dtype=float)


def index_returns(lake: Lake, source: str, symbol: str | None, interval: str) -> pd.Series | None:
    """The index's daily returns (None when the run has no index)."""
    if not symbol:
        return None
    try:
        return price_returns(lake, source, [symbol], interval)[symbol]
    except EmptyDataError:
        return None


def _model_document(model: RegimeSwitchingModel) -> dict[str, Any]:
    return {
        "transition": np.asarray(model.transition).tolist(),
        "initial": np.asarray(model.initial).tolist(),
        "means": np.asarray(model.means).tolist(),
        "covariances": np.asarray(model.covariances).tolist(),
        "assets": [str(a) for a in model.assets],
        "states": [str(s) for s in model.states],
        "innovations": model.innovations,
        "dof": model.dof,
    }


def plan_risk(task: PlanRiskInput, *, lake: Lake, registry: ModelRegistry) -> PlanRiskOutput:
    """Build and store the simulation model and plan; split the blocks into ``task.settings.shards`` shards.

    Raises
    ------
    EmptyDataError
        No prices for the weights' assets.
    RiskInputError
        Weights or moments the simulator cannot use (NaN, not summing to 1, a non-PSD covariance).
    """
    settings = task.settings
    weights = held_weights(task.portfolio)
    history = price_returns(lake, task.source, list(weights.index), task.interval)
    regime = task.regime
    dof = settings.dof if settings.innovations == "student_t" else None
    if regime is not None and regime.available and regime.model_version and task.feature_key:
        posterior = regime_posterior(registry, regime, lake, task.feature_key)
        common = history.index.intersection(posterior.index)
        per_state = regime_conditional_moments(history.loc[common], posterior.loc[common])
        model = RegimeSwitchingModel.from_regime_moments(
            per_state,
            regime.transition_matrix,
            pd.Series(regime.probabilities),
            innovations=settings.innovations,
            dof=dof,
        )
    else:
        window = history.iloc[-HISTORY_DAYS:]
        model = RegimeSwitchingModel(
            transition=np.ones((1, 1)),
            initial=np.ones(1),
            means=window.mean().to_numpy()[None, :],
            covariances=window.cov().to_numpy()[None, :, :],
            assets=tuple(window.columns),
            states=("all",),
            innovations=settings.innovations,
            dof=dof,
        )
    seed = settings.seed if settings.seed is not None else run_seed(task.run_id)
    plan = MonteCarloPlan(
        n_paths=settings.n_paths, horizon=settings.horizon_days, run_seed=seed, block_size=settings.block_size
    )
    model_key = f"risk/{task.run_id}/model.json"
    lake.put_json(
        model_key,
        {
            "model": _model_document(model),
            "plan": plan.to_dict(),
            "weights": {str(k): float(v) for k, v in weights.items()},
            "levels": settings.levels,
        },
    )
    shards = [
        ShardTask(run_id=task.run_id, model_key=model_key, shard=i, first_block=r.start, n_blocks=len(r))
        for i, r in enumerate(plan.shards(settings.shards))
    ]
    return PlanRiskOutput(
        run_id=task.run_id,
        model_key=model_key,
        n_paths=plan.n_paths,
        horizon_days=plan.horizon,
        seed=seed,
        n_blocks=plan.n_blocks,
        states=[str(s) for s in model.states],
        shards=shards,
    )


def load_model(lake: Lake, model_key: str) -> tuple[RegimeSwitchingModel, MonteCarloPlan, pd.Series, list[float]]:
    """The stored simulation model, plan, weights and levels of a run."""
    document = lake.get_json(model_key)
    model = RegimeSwitchingModel(**{**document["model"], "assets": tuple(document["model"]["assets"]),
                                    "states": tuple(document["model"]["states"])})  # fmt: skip
    weights = pd.Series(document["weights"], dtype=float).reindex(list(model.assets))
    return model, MonteCarloPlan(**document["plan"]), weights, [float(x) for x in document["levels"]]


def simulate_risk_shard(task: ShardTask, *, lake: Lake) -> ShardOutput:
    """Simulate one shard's blocks and store them (``risk/<run>/shards/<shard>.npz``)."""
    model, plan, weights, _ = load_model(lake, task.model_key)
    result = simulate_shard(model, weights, plan, range(task.first_block, task.first_block + task.n_blocks))
    key = f"risk/{task.run_id}/shards/{task.shard:05d}.npz"
    lake.put_bytes(key, result.to_bytes())
    return ShardOutput(run_id=task.run_id, shard=task.shard, key=key, n_paths=int(result.terminal_pnl.shape[0]))


def aggregate_risk(task: AggregateRiskInput, *, lake: Lake) -> AggregateRiskOutput:
    """Merge the shards (in block order: exact) and measure the weights historically and parametrically.

    Raises
    ------
    RiskError
        Shards of different runs, or blocks missing or covered twice.
    """
    _, plan, weights, levels = load_model(lake, task.model_key)
    merged = merge_shards(ShardResult.from_bytes(lake.get_bytes(s.key)) for s in task.shards)
    monte_carlo = merged.summary(levels, DRAWDOWN_THRESHOLDS)
    history = price_returns(lake, task.source, list(weights.index), task.interval).iloc[-HISTORY_DAYS:]
    benchmark = index_returns(lake, task.source, task.index_symbol, task.interval)
    report = risk_report(
        weights,
        history,
        levels=levels,
        horizon=1,
        benchmark=None if benchmark is None else benchmark.reindex(history.index),
    )
    document = report.to_dict()
    historical: dict[str, float] = {}
    # The report writes a figure it cannot compute (NaN) as null; such figures are left out here.
    for measure in ("var", "cvar"):
        for method, by_level in document[measure].items():
            for level, value in by_level.items():
                if value is not None:
                    historical[f"{measure}_{method}_{level}_1d"] = float(value)
    drawdown = document.get("drawdown") or {}
    named = {**{k: document.get(k) for k in ("volatility", "beta", "tracking_error")},
             "max_drawdown": drawdown.get("maximum"), "current_drawdown": drawdown.get("current")}  # fmt: skip
    historical |= {name: float(value) for name, value in named.items() if value is not None}
    bands = merged.quantile_bands()
    report_key = f"risk/{task.run_id}/report.json"
    lake.put_json(
        report_key,
        {
            "run_id": task.run_id,
            "portfolio": task.portfolio.portfolio,
            "plan": plan.to_dict(),
            "monte_carlo": monte_carlo,
            "fan_chart": {"levels": [float(c) for c in bands.columns], "values": bands.to_numpy().tolist()},
            "historical": document,
        },
    )
    return AggregateRiskOutput(
        run_id=task.run_id,
        portfolio=task.portfolio.portfolio,
        n_paths=merged.n_paths,
        horizon_days=plan.horizon,
        monte_carlo={k: float(v) for k, v in monte_carlo.items()},
        historical=historical,
        report_key=report_key,
    )
