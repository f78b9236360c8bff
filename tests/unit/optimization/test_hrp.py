"""Hierarchical Risk Parity: a hand-computed case, PyPortfolioOpt's HRPOpt and skfolio's HierarchicalRiskParity."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, BundledSource
from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization.hrp import correlation_distance, hrp_weights


@lru_cache(maxsize=1)
def _returns() -> pd.DataFrame:
    """Daily returns of the 20 bundled stocks, 2015-2022."""
    bars = BundledSource().fetch(DEFAULT_UNIVERSE)
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    return prices.pct_change().dropna().loc["2015":]


def _block_cov() -> pd.DataFrame:
    vols = np.array([0.1, 0.2, 0.15, 0.3])
    corr = np.array(
        [
            [1.0, 0.9, 0.1, 0.1],
            [0.9, 1.0, 0.1, 0.1],
            [0.1, 0.1, 1.0, 0.8],
            [0.1, 0.1, 0.8, 1.0],
        ]
    )
    names = ["a", "b", "c", "d"]
    return pd.DataFrame(corr * np.outer(vols, vols), index=names, columns=names)


def test_two_clusters_by_hand() -> None:
    # Given two tight pairs {a, b} and {c, d}, weakly correlated with each other
    cov = _block_cov()
    sigma = cov.to_numpy()
    # When HRP allocates (single linkage puts each pair together, so the first bisection splits the pairs)
    solution = hrp_weights(cov)

    # Then (by hand) each pair's inverse-variance portfolio sets its variance, the pairs split in inverse
    # proportion to it, and inside a pair the two assets split by inverse variance
    def ivp(idx: list[int]) -> tuple[np.ndarray, float]:
        w = 1 / np.diag(sigma)[idx]
        w = w / w.sum()
        return w, float(w @ sigma[np.ix_(idx, idx)] @ w)

    (w_ab, v_ab), (w_cd, v_cd) = ivp([0, 1]), ivp([2, 3])
    left = v_cd / (v_ab + v_cd)
    expected = np.r_[left * w_ab, (1 - left) * w_cd]
    np.testing.assert_allclose(solution.weights.to_numpy(), expected, rtol=1e-14)
    assert {frozenset(solution.order[:2]), frozenset(solution.order[2:])} == {frozenset("ab"), frozenset("cd")}
    assert solution.linkage_matrix.shape == (3, 4)


def test_correlation_distance_closed_form() -> None:
    # Given the block covariance / Then d_ij = sqrt((1 - rho_ij) / 2) with a zero diagonal
    distance = correlation_distance(_block_cov())
    assert distance.loc["a", "b"] == pytest.approx(np.sqrt(0.05), rel=1e-14)
    assert distance.loc["a", "c"] == pytest.approx(np.sqrt(0.45), rel=1e-14)
    assert np.all(np.diag(distance.to_numpy()) == 0)


@pytest.mark.parametrize("linkage", ["single", "average", "complete", "ward"])
def test_matches_pypfopt_hrpopt(linkage: str) -> None:
    from pypfopt import HRPOpt

    # Given real returns / When both allocate with the same linkage (no leaf reordering in either)
    returns = _returns()
    ours = hrp_weights(returns.cov(), linkage=linkage).weights  # type: ignore[arg-type]
    reference = pd.Series(HRPOpt(returns).optimize(linkage_method=linkage))
    # Then the weights agree to 1e-8
    np.testing.assert_allclose(ours.to_numpy(), reference.reindex(ours.index).to_numpy(), rtol=0, atol=1e-8)


@pytest.mark.parametrize("linkage", ["single", "ward"])
def test_matches_skfolio_with_optimal_leaf_ordering(linkage: str) -> None:
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.optimization import HierarchicalRiskParity
    from skfolio.seriation import HierarchicalSeriation

    # Given real returns; skfolio reorders the leaves optimally by default (optimal_ordering=True here)
    returns = _returns()
    clustering = HierarchicalClustering(linkage_method=LinkageMethod(linkage))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HierarchicalRiskParity(
            seriation_estimator=HierarchicalSeriation(hierarchical_clustering_estimator=clustering)
        ).fit(returns)
    ours = hrp_weights(returns.cov(), linkage=linkage, optimal_ordering=True).weights  # type: ignore[arg-type]
    # Then the weights agree to 1e-8; without the reordering they differ (the option matters)
    np.testing.assert_allclose(ours.to_numpy(), model.weights_, rtol=0, atol=1e-8)
    plain = hrp_weights(returns.cov(), linkage=linkage).weights  # type: ignore[arg-type]
    assert np.abs(plain.to_numpy() - model.weights_).max() > 1e-3


def test_scale_invariance_budget_and_single_asset() -> None:
    cov = _returns().cov()
    # Given daily and annual covariances / Then the weights agree; a budget scales them; all positive
    daily, annual = hrp_weights(cov).weights, hrp_weights(cov * 252, budget=0.5).weights
    np.testing.assert_allclose(annual.to_numpy(), 0.5 * daily.to_numpy(), rtol=1e-13)
    assert (daily > 0).all()
    assert daily.sum() == pytest.approx(1.0, abs=1e-14)
    one = pd.DataFrame([[0.04]], index=["x"], columns=["x"])
    assert hrp_weights(one).weights.tolist() == [1.0]


def test_invalid_inputs_raise() -> None:
    cov = _block_cov()
    with pytest.raises(SpecificationError, match="Unknown linkage"):
        hrp_weights(cov, linkage="nearest")  # type: ignore[arg-type]
    with pytest.raises(SpecificationError, match="budget"):
        hrp_weights(cov, budget=0.0)
    riskless = cov.copy()
    riskless.loc["a", :] = 0.0
    riskless.loc[:, "a"] = 0.0
    with pytest.raises(SpecificationError, match="positive variances"):
        hrp_weights(riskless)
    with pytest.raises(SpecificationError, match="square"):
        hrp_weights(cov.iloc[:, :3])


def test_optimize_entry_and_refused_constraints() -> None:
    from portfolio_engine.optimization._dispatch import optimize
    from portfolio_engine.optimization.moments import Moments
    from portfolio_engine.optimization.spec import PortfolioSpec

    # Given the moments of real returns and a spec asking for average linkage
    returns = _returns()
    moments = Moments(mu=returns.mean() * 252, cov=returns.cov() * 252)
    spec = PortfolioSpec(method="hrp", method_params={"linkage": "average"}, constraints={"budget": 0.9})
    # When optimized through the registry / Then it is the core function's answer
    result = optimize(spec, moments)
    expected = hrp_weights(moments.cov, linkage="average", budget=0.9).weights
    np.testing.assert_allclose(result.weights.to_numpy(), expected.to_numpy(), rtol=1e-14)
    assert result.method == "hrp"
    # And turnover limits, shorts or risk budgets are refused by name
    for constraints, name in (
        ({"max_turnover": 0.2}, "max_turnover"),
        ({"long_only": False}, "long_only=False"),
        ({"risk_budgets": dict.fromkeys(returns.columns, 1.0)}, "risk_budgets"),
    ):
        with pytest.raises(SpecificationError, match=name):
            optimize(PortfolioSpec(method="hrp", constraints=constraints), moments)
