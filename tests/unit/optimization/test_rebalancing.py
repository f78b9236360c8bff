"""The rebalancing rule: each reason exercised, costs and benefits checked by hand, and drift of weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_engine.exceptions import DataError, SpecificationError
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.rebalancing import (
    RebalanceDecision,
    RebalanceReason,
    RebalanceRule,
    drift_weights,
)

ASSETS = ["eq", "bond", "gold"]
MOMENTS = Moments(
    pd.Series([0.08, 0.03, 0.04], index=ASSETS),
    pd.DataFrame([[0.04, 0.002, 0.0], [0.002, 0.0025, 0.001], [0.0, 0.001, 0.03]], index=ASSETS, columns=ASSETS),
)
RISK_AVERSION = 4.0
#: The unconstrained mean-variance optimum w* = Sigma^-1 mu / lambda: no portfolio has a higher utility.
OPTIMUM = pd.Series(np.linalg.solve(MOMENTS.cov.to_numpy(), MOMENTS.mu.to_numpy()) / RISK_AVERSION, index=ASSETS)


def utility(w: pd.Series) -> float:
    x = w.reindex(ASSETS, fill_value=0.0).to_numpy()
    return float(x @ MOMENTS.mu.to_numpy() - RISK_AVERSION / 2 * x @ MOMENTS.cov.to_numpy() @ x)


def decide(rule: RebalanceRule, current: pd.Series, previous: str | None = "calm", now: str | None = "calm"):
    return rule.decide(
        current, OPTIMUM, previous_regime=previous, current_regime=now, moments=MOMENTS, risk_aversion=RISK_AVERSION
    )


def test_regime_change_triggers_a_rebalance_even_within_the_drift_band() -> None:
    # Given a small drift (0.03 < 0.10) but a change of regime
    current = OPTIMUM + pd.Series([0.03, -0.03, 0.0], index=ASSETS)
    decision = decide(RebalanceRule(drift_threshold=0.10, cost_bps=1.0), current, previous="calm", now="stress")
    # Then the rule trades, for the regime change; the figures are the hand computation
    assert decision.rebalance and decision.reason is RebalanceReason.REGIME_CHANGE
    assert decision.drift == pytest.approx(0.03)
    assert decision.turnover == pytest.approx(0.06)
    assert decision.cost == pytest.approx(0.06 * 1e-4)
    assert decision.benefit == pytest.approx(utility(OPTIMUM) - utility(current), rel=1e-12)
    # The gain over the optimum is the closed form lambda / 2 (w - w*)' Sigma (w - w*)
    gap = (current - OPTIMUM).to_numpy()
    assert decision.benefit == pytest.approx(RISK_AVERSION / 2 * gap @ MOMENTS.cov.to_numpy() @ gap, rel=1e-10)
    assert decision.net_benefit == pytest.approx(decision.benefit - decision.cost)


def test_same_regime_and_small_drift_does_not_trigger() -> None:
    current = OPTIMUM + pd.Series([0.03, -0.03, 0.0], index=ASSETS)
    decision = decide(RebalanceRule(drift_threshold=0.10, cost_bps=1.0), current)
    assert not decision.rebalance and decision.reason is RebalanceReason.NO_TRIGGER
    # nor does a regime change when the rule ignores regimes, or when a regime is unknown
    ignoring = RebalanceRule(drift_threshold=0.10, on_regime_change=False, cost_bps=1.0)
    assert decide(ignoring, current, previous="calm", now="stress").reason is RebalanceReason.NO_TRIGGER
    assert decide(RebalanceRule(0.10, cost_bps=1.0), current, previous=None, now="stress").reason == "no_trigger"


def test_drift_beyond_the_threshold_triggers_a_rebalance() -> None:
    current = OPTIMUM + pd.Series([0.25, -0.15, -0.10], index=ASSETS)
    decision = decide(RebalanceRule(drift_threshold=0.10, cost_bps=10.0), current)
    assert decision.rebalance and decision.reason is RebalanceReason.DRIFT
    assert decision.drift == pytest.approx(0.25)
    assert decision.cost == pytest.approx(0.50 * 10.0 / 1e4)


def test_cost_above_the_benefit_blocks_the_trade() -> None:
    # Given a drift that triggers, a benefit of ~0.01 a year, and trading at 500 bp on 0.5 turnover (0.025)
    current = OPTIMUM + pd.Series([0.25, -0.15, -0.10], index=ASSETS)
    decision = decide(RebalanceRule(drift_threshold=0.10, cost_bps=500.0), current)
    # Then the rule holds
    assert 0 < decision.benefit < decision.cost == pytest.approx(0.025)
    assert not decision.rebalance and decision.reason is RebalanceReason.COST_EXCEEDS_BENEFIT
    # And a monthly horizon accrues a twelfth of the annual gain, which a cheap trade can still beat
    monthly = decide(RebalanceRule(drift_threshold=0.10, cost_bps=10.0, horizon_years=1 / 12), current)
    assert monthly.benefit == pytest.approx(decision.benefit / 12)
    assert monthly.rebalance == (monthly.benefit > monthly.cost)
    # And min_net_benefit raises the bar
    demanding = RebalanceRule(drift_threshold=0.10, cost_bps=10.0, min_net_benefit=1.0)
    assert decide(demanding, current).reason is RebalanceReason.COST_EXCEEDS_BENEFIT


@pytest.mark.parametrize(
    ("measure", "expected"),
    [("max_abs", 0.25), ("l1", 0.5), ("half_l1", 0.25), ("l2", np.sqrt(0.0625 + 0.0225 + 0.01))],
)
def test_drift_measures(measure: str, expected: float) -> None:
    rule = RebalanceRule(drift_threshold=0.1, drift_measure=measure)
    current = pd.Series([0.75, 0.10, 0.15], index=ASSETS)
    target = pd.Series([0.50, 0.25, 0.25], index=ASSETS)
    assert rule.drift(current, target) == pytest.approx(expected)


def test_assets_missing_from_one_side_count_as_zero() -> None:
    # Given a target that adds gold, and holdings without it
    current = pd.Series([0.6, 0.4], index=["eq", "bond"])
    target = pd.Series([0.5, 0.3, 0.2], index=ASSETS)
    rule = RebalanceRule(drift_threshold=0.1, cost_bps=0.0)
    decision = rule.decide(current, target, previous_regime=1, current_regime=1, moments=MOMENTS, risk_aversion=3.0)
    assert decision.turnover == pytest.approx(0.4) and decision.drift == pytest.approx(0.2)
    assert isinstance(decision, RebalanceDecision)


def test_invalid_rules_and_inputs_are_rejected() -> None:
    with pytest.raises(SpecificationError, match="drift_threshold"):
        RebalanceRule(drift_threshold=-0.1)
    with pytest.raises(SpecificationError, match="drift_measure"):
        RebalanceRule(drift_threshold=0.1, drift_measure="linf")
    rule = RebalanceRule(drift_threshold=0.1)
    with pytest.raises(SpecificationError, match=r"\['cash'\]"):
        rule.decide(pd.Series({"cash": 1.0}), OPTIMUM, previous_regime=0, current_regime=0, moments=MOMENTS,
                    risk_aversion=1.0)  # fmt: skip
    with pytest.raises(SpecificationError, match="risk_aversion"):
        rule.decide(OPTIMUM, OPTIMUM, previous_regime=0, current_regime=0, moments=MOMENTS, risk_aversion=-1.0)


def test_drift_weights_by_hand() -> None:
    # fully invested: 0.5 * 1.1 and 0.5 * 0.9 of a value of 1.0
    drifted = drift_weights(pd.Series({"a": 0.5, "b": 0.5}), pd.Series({"a": 0.10, "b": -0.10}))
    assert drifted.to_dict() == pytest.approx({"a": 0.55, "b": 0.45})
    # 20% cash earning nothing: values 0.6, 0.4 and 0.2 of cash -> 0.6 / 1.2, 0.4 / 1.2
    drifted = drift_weights(pd.Series({"a": 0.4, "b": 0.4}), pd.Series({"a": 0.5, "b": 0.0, "c": 0.3}))
    assert drifted.to_dict() == pytest.approx({"a": 0.5, "b": 1 / 3})
    with pytest.raises(DataError, match=r"\['b'\]"):
        drift_weights(pd.Series({"a": 0.5, "b": 0.5}), pd.Series({"a": 0.1}))
    with pytest.raises(DataError, match="fell to"):
        drift_weights(pd.Series({"a": 2.0, "b": -1.0}), pd.Series({"a": -0.6, "b": 0.0}))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_drifting_over_several_periods_equals_drifting_period_by_period(seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights = pd.Series(rng.dirichlet(np.ones(4)), index=list("wxyz"))
    periods = pd.DataFrame(rng.normal(0.0, 0.03, (5, 4)), columns=list("wxyz"))
    stepwise = weights
    for _, row in periods.iterrows():
        stepwise = drift_weights(stepwise, row)
    at_once = drift_weights(weights, periods)
    assert np.allclose(at_once.to_numpy(), stepwise.to_numpy(), rtol=0, atol=1e-14)
    assert at_once.sum() == pytest.approx(1.0, abs=1e-14)
