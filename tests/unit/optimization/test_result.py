"""OptimizationResult: statistics from weights and moments, risk contributions, immutability, JSON."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization import EfficientFrontier, SolverDiagnostics, portfolio_result
from portfolio_engine.optimization.moments import Moments

ASSETS = ["A", "B", "C"]
COV = np.array([[0.04, 0.006, -0.002], [0.006, 0.09, 0.01], [-0.002, 0.01, 0.0625]])
MU = np.array([0.06, 0.10, 0.08])
DIAG = SolverDiagnostics(solver="CLARABEL", status="optimal", iterations=7, solve_seconds=0.001, objective=1.5)


@pytest.fixture
def moments() -> Moments:
    return Moments(pd.Series(MU, index=ASSETS), pd.DataFrame(COV, index=ASSETS, columns=ASSETS))


def test_statistics_match_hand_computed_values(moments: Moments) -> None:
    # Given weights (as a Series in another order) / When building a result
    w = pd.Series({"C": 0.3, "A": 0.5, "B": 0.2})
    result = portfolio_result(w, moments, method="min_variance", diagnostics=DIAG, risk_free_rate=0.02)
    # Then return, volatility, Sharpe and variance shares are the textbook formulas
    x = np.array([0.5, 0.2, 0.3])
    variance = x @ COV @ x
    assert result.expected_return == pytest.approx(x @ MU, abs=1e-15)
    assert result.volatility == pytest.approx(np.sqrt(variance), abs=1e-15)
    assert result.sharpe == pytest.approx((x @ MU - 0.02) / np.sqrt(variance), abs=1e-14)
    np.testing.assert_allclose(result.risk_contributions.to_numpy(), x * (COV @ x) / variance, atol=1e-15)
    assert result.risk_contributions.sum() == pytest.approx(1.0, abs=1e-14)
    assert list(result.weights.index) == ASSETS


def test_sharpe_charges_the_risk_free_rate_on_the_invested_part_only(moments: Moments) -> None:
    # Given half the capital invested (the rest in cash at the risk-free rate)
    w = np.array([0.25, 0.15, 0.10])
    result = portfolio_result(w, moments, method="x", diagnostics=DIAG, risk_free_rate=0.02)
    # Then the excess return is (mu - rf)' w: the cash earns rf and adds no excess
    assert result.sharpe == pytest.approx((MU - 0.02) @ w / np.sqrt(w @ COV @ w), rel=1e-14)
    assert result.expected_return == pytest.approx(MU @ w, rel=1e-14)


def test_a_hedging_position_has_a_negative_share_and_a_zero_portfolio_a_nan_sharpe(moments: Moments) -> None:
    hedged = portfolio_result(np.array([0.98, 0.0, 0.02]), moments, method="x", diagnostics=DIAG)
    assert hedged.risk_contributions.sum() == pytest.approx(1.0, abs=1e-14)
    assert (hedged.risk_contributions < 0).any()
    empty = portfolio_result(np.zeros(3), moments, method="x", diagnostics=DIAG)
    assert np.isnan(empty.sharpe) and (empty.risk_contributions == 0).all()
    assert empty.to_dict()["sharpe"] is None


def test_result_is_frozen_and_json_ready(moments: Moments) -> None:
    result = portfolio_result(
        np.array([0.2, 0.3, 0.5]), moments, method="max_sharpe", diagnostics=DIAG, extras={"cvar": 0.031}
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.method = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.extras["cvar"] = 1.0  # type: ignore[index]
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["weights"] == {"A": 0.2, "B": 0.3, "C": 0.5}
    assert payload["diagnostics"] == {
        "solver": "CLARABEL",
        "status": "optimal",
        "iterations": 7,
        "solve_seconds": 0.001,
        "objective": 1.5,
        "fallback_used": False,
        "active_constraints": [],
        "messages": [],
    }
    assert payload["extras"] == {"cvar": 0.031}
    assert "frontier" not in payload
    restored = pickle.loads(pickle.dumps(result))
    assert restored.to_dict() == result.to_dict()
    with pytest.raises(TypeError):
        restored.extras["cvar"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("weights", "needle"),
    [
        (pd.Series({"A": 0.5, "Z": 0.5, "C": 0.0}), "weights name ['A', 'Z', 'C']"),
        (np.array([0.5, 0.5]), "weights have shape (2,)"),
        (np.array([0.5, np.nan, 0.5]), "NaN"),
    ],
)
def test_misaligned_or_bad_weights_are_rejected(moments: Moments, weights: object, needle: str) -> None:
    with pytest.raises(SpecificationError) as caught:
        portfolio_result(weights, moments, method="x", diagnostics=DIAG)  # type: ignore[arg-type]
    assert needle in str(caught.value)


def test_frontier_collects_points_and_picks_the_best_sharpe(moments: Moments) -> None:
    points = tuple(
        portfolio_result(np.array(w), moments, method="efficient_frontier", diagnostics=DIAG)
        for w in ([0.6, 0.1, 0.3], [0.2, 0.4, 0.4], [0.0, 1.0, 0.0])
    )
    frontier = EfficientFrontier(points)
    ratios = np.array([p.expected_return / p.volatility for p in points])
    np.testing.assert_allclose(frontier.sharpe_ratios, ratios)
    assert frontier.best_sharpe() is points[int(np.argmax(ratios))]
    assert frontier.weights.shape == (3, 3) and list(frontier.weights.columns) == ASSETS
    assert json.loads(json.dumps(frontier.to_dict()))["volatilities"] == pytest.approx(frontier.volatilities.tolist())
