"""The risk steps on real prices: plan, shards, exact merge, measures, stress, limits, hedge, alerts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import load_ff3_monthly
from portfolio_engine.adapters.notifiers import AlertDispatcher, LocalLogNotifier, MemoryAlertStateStore
from portfolio_engine.contracts import OptimizeInput, OptimizeOutput
from portfolio_engine.contracts.risk import (
    AggregateRiskInput,
    AlertInput,
    CheckLimitsInput,
    PlanRiskInput,
    ProposeHedgeInput,
    RiskSettings,
    StressInput,
)
from portfolio_engine.exceptions import RiskError, SpecificationError
from portfolio_engine.optimization import fama_french_model
from portfolio_engine.pipeline.alerts import send_alerts
from portfolio_engine.pipeline.optimize import optimize_portfolio, price_returns
from portfolio_engine.pipeline.portfolios import Book
from portfolio_engine.pipeline.risk import aggregate_risk, plan_risk, run_seed, simulate_risk_shard
from portfolio_engine.pipeline.risk_checks import check_limits, hedge, measure_limits, stress_test
from portfolio_engine.risk.measures import tail_risk

SYMBOLS = ["JNJ", "KO", "PG", "XOM", "MSFT", "^GSPC"]
SETTINGS = RiskSettings(n_paths=20_000, horizon_days=10, shards=3, block_size=4096, seed=7)


def _portfolio(world: dict, run_id: str, limits: dict[str, float]) -> OptimizeOutput:
    spec = {"name": f"risk-{run_id}", "method": "min_variance", "constraints": {"weight_bounds": [0.0, 0.4]},
            "limits": limits}  # fmt: skip
    task = OptimizeInput(run_id=run_id, source="bundled", symbols=SYMBOLS, index_symbol="^GSPC", spec=spec,
                         feature_key=world["feature_key"], regime=world["regime"])  # fmt: skip
    return optimize_portfolio(task, lake=world["lake"], registry=world["registry"], book=Book(task.portfolio))


def _simulate(world: dict, run_id: str, portfolio: OptimizeOutput, settings: RiskSettings = SETTINGS):
    lake = world["lake"]
    plan = plan_risk(
        PlanRiskInput(run_id=run_id, source="bundled", index_symbol="^GSPC", feature_key=world["feature_key"],
                      regime=world["regime"], portfolio=portfolio, settings=settings),
        lake=lake, registry=world["registry"],
    )  # fmt: skip
    shards = [simulate_risk_shard(task, lake=lake) for task in plan.shards]
    risk = aggregate_risk(
        AggregateRiskInput(run_id=run_id, source="bundled", index_symbol="^GSPC", model_key=plan.model_key,
                           shards=shards, portfolio=portfolio),
        lake=lake,
    )  # fmt: skip
    return plan, shards, risk


def test_the_plan_uses_the_regime_model_and_any_shard_count_gives_the_same_figures(world: dict) -> None:
    portfolio = _portfolio(world, "p1", {})
    plan, shards, risk = _simulate(world, "p1", portfolio)
    assert plan.states == world["regime"].state_names and len(plan.shards) == 3
    assert sum(s.n_paths for s in shards) == risk.n_paths == 20_000
    stored = world["lake"].get_json(plan.model_key)
    assert np.allclose(stored["model"]["transition"], world["regime"].transition_matrix)
    assert stored["model"]["initial"] == pytest.approx(list(world["regime"].probabilities.values()))
    _, _, one = _simulate(world, "p1-one", portfolio, SETTINGS.model_copy(update={"shards": 1}))
    _, _, many = _simulate(world, "p1-many", portfolio, SETTINGS.model_copy(update={"shards": 8}))
    assert one.monte_carlo == risk.monte_carlo == many.monte_carlo  # bit-identical
    mc = risk.monte_carlo
    assert mc["cvar_0.99"] >= mc["var_0.99"] >= mc["var_0.95"] > 0 and mc["cvar_0.95"] >= mc["var_0.95"]
    assert risk.historical["var_historical_0.95_1d"] > 0 and 0 < risk.historical["volatility"] < 1


def test_the_seed_comes_from_the_run_id_unless_given(world: dict) -> None:
    portfolio = _portfolio(world, "s1", {})
    settings = SETTINGS.model_copy(update={"seed": None})
    a, _, ra = _simulate(world, "seed-a", portfolio, settings)
    b, _, rb = _simulate(world, "seed-b", portfolio, settings)
    assert (a.seed, b.seed) == (run_seed("seed-a"), run_seed("seed-b")) and ra.monte_carlo != rb.monte_carlo


def test_missing_or_foreign_shards_do_not_merge(world: dict) -> None:
    portfolio = _portfolio(world, "m1", {})
    plan, shards, _ = _simulate(world, "m1", portfolio)
    with pytest.raises(RiskError):
        aggregate_risk(
            AggregateRiskInput(run_id="m1", source="bundled", model_key=plan.model_key, shards=shards[:2],
                               portfolio=portfolio),
            lake=world["lake"],
        )  # fmt: skip


def test_limits_are_measured_from_the_simulation_at_its_horizon_and_historically_otherwise(world: dict) -> None:
    lake = world["lake"]
    limits = {"max_var_99_10d": 0.5, "max_var_95_1d": 0.5, "max_volatility": 0.5, "max_weight": 0.5,
              "max_sector_weight": 0.9, "max_beta": 2.0, "max_tracking_error": 0.9, "max_drawdown": 0.9}  # fmt: skip
    portfolio = _portfolio(world, "l1", limits)
    _, _, risk = _simulate(world, "l1", portfolio)
    out = check_limits(
        CheckLimitsInput(run_id="l1", source="bundled", index_symbol="^GSPC", portfolio=portfolio, risk=risk),
        lake=lake,
    )
    assert out.measured["max_var_99_10d"] == risk.monte_carlo["var_0.99"]
    weights = pd.Series(portfolio.target_weights)
    history = price_returns(lake, "bundled", list(weights.index), "1d").iloc[-756:]
    assert out.measured["max_var_95_1d"] == pytest.approx(tail_risk(weights, history, level=0.95).var, rel=1e-12)
    assert out.measured["max_weight"] == pytest.approx(weights.max())
    assert out.measured["max_volatility"] == pytest.approx(risk.historical["volatility"], rel=1e-9)
    assert not out.any_breach and out.breaches == [] and out.worst_severity is None
    with pytest.raises(SpecificationError, match="max_happiness"):
        measure_limits({"max_happiness": 1.0}, weights, history, monte_carlo={}, horizon_days=10, index=None,
                       sectors={})  # fmt: skip


def test_a_breach_gets_a_hedge_that_works_and_alerts_with_cooldown(world: dict, tmp_path: Path) -> None:
    lake = world["lake"]
    portfolio = _portfolio(world, "b1", {"max_volatility": 0.08, "max_weight": 0.39})
    _, _, risk = _simulate(world, "b1", portfolio)
    limits = check_limits(
        CheckLimitsInput(run_id="b1", source="bundled", index_symbol="^GSPC", portfolio=portfolio, risk=risk),
        lake=lake,
    )
    assert limits.any_breach and limits.worst_severity == "critical"
    assert {b["limit"] for b in limits.breaches} >= {"max_volatility"}
    proposal = hedge(
        ProposeHedgeInput(run_id="b1", source="bundled", index_symbol="^GSPC", portfolio=portfolio, limits=limits),
        lake=lake,
    )
    assert not proposal.executed and proposal.chosen is not None and proposal.chosen["kind"]
    stored = lake.get_json(proposal.report_key)
    chosen = next(p for p in stored["proposals"] if p["kind"] == stored["chosen"])
    assert chosen["feasible"] and chosen["limits_after"]["max_volatility"] <= 0.08 + 1e-9
    log = tmp_path / "alerts.jsonl"
    dispatcher = AlertDispatcher([], local=LocalLogNotifier(log), store=MemoryAlertStateStore())
    first = send_alerts(AlertInput(run_id="b1", limits=limits, hedge=proposal), dispatcher=dispatcher)
    again = send_alerts(AlertInput(run_id="b2", limits=limits, hedge=proposal), dispatcher=dispatcher)
    assert first.sent == len(limits.breaches) and again.suppressed == len(limits.breaches) and again.sent == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries and entries[0]["details"]["hedge"]["kind"] == proposal.chosen["kind"]


def test_stress_replays_the_scenarios_on_the_actual_returns(world: dict) -> None:
    lake = world["lake"]
    portfolio = _portfolio(world, "st1", {"max_drawdown": 0.25})
    out = stress_test(StressInput(run_id="st1", source="bundled", index_symbol="^GSPC", portfolio=portfolio), lake=lake)
    names = [s["name"] for s in out.scenarios]
    assert names == ["gfc", "covid", "2022", "dotcom", "us_downgrade_2011", "q4_2018"]
    # covid, buy and hold from the first to the last trading day of the window, by hand
    weights = pd.Series(portfolio.target_weights)
    returns = price_returns(lake, "bundled", list(weights.index), "1d").loc["2020-02-01":"2020-03-31"]
    value = float((weights * (1 + returns).prod()).sum())
    covid = next(s for s in out.scenarios if s["name"] == "covid")
    assert covid["loss"] == pytest.approx(1 - value, rel=1e-8)  # the report rounds to 10 decimals
    assert out.worst_loss == max(s["loss"] for s in out.scenarios) and out.worst_scenario in names
    assert out.reverse is not None and out.reverse["value"] == pytest.approx(0.25, abs=1e-9)
    assert {s["name"] for s in out.shocks} >= {"volatility_x2", "correlation_1", "ff_market_-20%", "ff_value_-10%"}
    # the market factor shock is the weights' Fama-French market loading times the shock
    loadings = fama_french_model(
        price_returns(lake, "bundled", list(weights.index), "1d"), load_ff3_monthly()
    ).loadings_
    market = next(s for s in out.shocks if s["name"] == "ff_market_-20%")
    assert market["loss"] == pytest.approx(0.20 * float(weights @ loadings["Mkt-RF"]), rel=1e-9)
    assert np.isfinite([s["loss"] for s in out.shocks]).all()


def test_bad_settings_are_rejected_before_any_simulation() -> None:
    with pytest.raises(ValueError, match="horizon_days"):
        RiskSettings(horizon_days=0)
    with pytest.raises(ValueError, match="n_paths"):
        RiskSettings(n_paths=10)
    assert isinstance(ParquetLake, type)


def test_a_limit_the_run_cannot_measure_is_reported_not_failed(world: dict) -> None:
    portfolio = _portfolio(world, "u1", {"max_beta": 1.0, "max_weight": 0.9})
    _, _, risk = _simulate(world, "u1", portfolio)
    out = check_limits(
        CheckLimitsInput(run_id="u1", source="bundled", index_symbol=None, portfolio=portfolio, risk=risk),
        lake=world["lake"],
    )
    assert "index" in out.unmeasured["max_beta"] and "max_beta" not in out.measured
    assert out.measured["max_weight"] <= 0.4 + 1e-9 and not out.any_breach
