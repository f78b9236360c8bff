"""Black-Litterman: views, Omega (He-Litterman, Idzorek), posterior; against closed forms and PyPortfolioOpt."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pypfopt.black_litterman import BlackLittermanModel
from scipy.optimize import minimize_scalar

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization.black_litterman import (
    RelativeView,
    Views,
    black_litterman,
    black_litterman_posterior,
    build_views,
    he_litterman_omega,
    idzorek_omega,
)
from portfolio_engine.optimization.moments import equilibrium_mean

ASSETS = ["A", "B", "C", "D", "E", "F"]
TAU = 0.05
DELTA = 2.5


@pytest.fixture(scope="module")
def cov() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    loadings = rng.normal(size=(len(ASSETS), 3)) * 0.15
    sigma = loadings @ loadings.T + np.diag(rng.uniform(0.01, 0.04, len(ASSETS)))
    return pd.DataFrame(sigma, index=ASSETS, columns=ASSETS)


@pytest.fixture(scope="module")
def market_weights() -> pd.Series:
    return pd.Series([0.3, 0.2, 0.15, 0.15, 0.1, 0.1], index=ASSETS)


@pytest.fixture(scope="module")
def prior(cov: pd.DataFrame, market_weights: pd.Series) -> pd.Series:
    return equilibrium_mean(cov, market_weights, risk_aversion=DELTA)


@pytest.fixture(scope="module")
def views() -> Views:
    return build_views(
        ASSETS,
        absolute={"A": 0.12},
        relative=[
            RelativeView(long=["B", "C"], short={"D": 3.0, "E": 1.0}, outperformance=0.03),
            RelativeView(long="F", short="A", outperformance=-0.01, name="F over A"),
        ],
    )


def test_no_views_returns_the_prior_exactly(cov: pd.DataFrame, market_weights: pd.Series, prior: pd.Series) -> None:
    # Given market weights and no views
    # When the posterior is computed, directly or through the one-call helper
    direct = black_litterman_posterior(prior, cov, None, tau=TAU)
    helper = black_litterman(cov, market_weights, risk_aversion=DELTA, tau=TAU)
    empty = black_litterman_posterior(prior, cov, build_views(ASSETS), tau=TAU)
    # Then mu is pi bit for bit, and cov is the prior predictive (1 + tau) Sigma
    for moments in (direct, helper, empty):
        assert np.array_equal(moments.mu.to_numpy(), prior.to_numpy())
        np.testing.assert_allclose(moments.cov.to_numpy(), (1 + TAU) * cov.to_numpy(), rtol=0, atol=1e-16)
    np.testing.assert_allclose(prior.to_numpy(), DELTA * cov.to_numpy() @ market_weights.to_numpy(), rtol=1e-14)


def test_views_become_picking_matrix_rows(views: Views) -> None:
    # Given one absolute and two relative views (one with market-cap-like leg weights)
    # Then P has a single one for the absolute view, +1/-1 legs normalised by weight, and Q the returns
    expected = pd.DataFrame(
        [
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.5, 0.5, -0.75, -0.25, 0.0],
            [-1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        ],
        index=["A", "B+C-D+E", "F over A"],
        columns=ASSETS,
    )
    pd.testing.assert_frame_equal(views.picking, expected, check_names=False)
    assert views.returns.tolist() == [0.12, 0.03, -0.01]


def test_posterior_matches_pypfopt_with_he_litterman_omega(cov: pd.DataFrame, prior: pd.Series, views: Views) -> None:
    # Given the same pi, P, Q, Omega = diag(tau P Sigma P') and tau
    omega = he_litterman_omega(views, cov, TAU)
    # When both libraries compute the posterior
    ours = black_litterman_posterior(prior, cov, views, tau=TAU, omega=omega)
    ref = BlackLittermanModel(
        cov, pi=prior, P=views.picking.to_numpy(), Q=views.returns.to_numpy(), omega=omega.to_numpy(), tau=TAU
    )
    # Then mean and covariance agree to 1e-10
    np.testing.assert_allclose(ours.mu.to_numpy(), ref.bl_returns().to_numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.cov.to_numpy(), ref.bl_cov().to_numpy(), rtol=0, atol=1e-10)
    # And Omega is the diagonal of tau P Sigma P' (full=True keeps the off-diagonal terms)
    p = views.picking.to_numpy()
    full = TAU * p @ cov.to_numpy() @ p.T
    np.testing.assert_allclose(omega.to_numpy(), np.diag(np.diag(full)), rtol=1e-14)
    np.testing.assert_allclose(he_litterman_omega(views, cov, TAU, full=True).to_numpy(), full, rtol=1e-14)


def test_posterior_equals_precision_weighted_form(cov: pd.DataFrame, prior: pd.Series, views: Views) -> None:
    # Given an invertible, non-diagonal Omega
    p, q = views.picking.to_numpy(), views.returns.to_numpy()
    omega = np.array([[0.002, 0.0005, 0.0], [0.0005, 0.003, 0.0002], [0.0, 0.0002, 0.001]])
    frame = pd.DataFrame(omega, index=views.picking.index, columns=views.picking.index)
    # When the posterior is computed
    ours = black_litterman_posterior(prior, cov, views, tau=TAU, omega=frame)
    # Then it equals Black-Litterman's original (precision-weighted) expression
    prior_precision = np.linalg.inv(TAU * cov.to_numpy())
    precision = prior_precision + p.T @ np.linalg.inv(omega) @ p
    mean = np.linalg.solve(precision, prior_precision @ prior.to_numpy() + p.T @ np.linalg.inv(omega) @ q)
    np.testing.assert_allclose(ours.mu.to_numpy(), mean, rtol=1e-10)
    np.testing.assert_allclose(ours.cov.to_numpy(), cov.to_numpy() + np.linalg.inv(precision), rtol=1e-10)


def _idzorek_procedure(prior: pd.Series, cov: pd.DataFrame, views: Views, k: int, confidence: float) -> float:
    """Idzorek (2005), steps 1-7, for view k alone: the omega_k whose tilt is C_k of the 100 % tilt."""
    sigma, pi = cov.to_numpy(), prior.to_numpy()
    p, q = views.picking.to_numpy()[[k]], views.returns.to_numpy()[[k]]
    w_mkt = np.linalg.solve(DELTA * sigma, pi)

    def weights(omega: float) -> np.ndarray:
        gain = np.linalg.solve(p @ (TAU * sigma) @ p.T + omega, q - p @ pi)
        return np.linalg.solve(DELTA * sigma, pi + TAU * sigma @ p.T @ gain)

    target = w_mkt + confidence * (weights(0.0) - w_mkt)
    found = minimize_scalar(
        lambda log_omega: float(np.sum((weights(np.exp(log_omega)) - target) ** 2)),
        bounds=(-40, 5),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return float(np.exp(found.x))


def test_idzorek_omega_solves_idzorek_procedure(cov: pd.DataFrame, prior: pd.Series, views: Views) -> None:
    # Given confidences per view
    confidences = [0.25, 0.6, 0.9]
    # When Omega comes from the closed form
    omega = np.diag(idzorek_omega(views, cov, TAU, confidences).to_numpy())
    # Then each omega_k matches the numerical least-squares search of Idzorek's procedure
    for k, confidence in enumerate(confidences):
        assert omega[k] == pytest.approx(_idzorek_procedure(prior, cov, views, k, confidence), rel=1e-6)
    # And PyPortfolioOpt's Idzorek method (same closed form) agrees; names are accepted too
    ref = BlackLittermanModel(
        cov,
        pi=prior,
        P=views.picking.to_numpy(),
        Q=views.returns.to_numpy(),
        omega="idzorek",
        view_confidences=confidences,
        tau=TAU,
    )
    np.testing.assert_allclose(omega, np.diag(ref.omega), rtol=1e-12)
    by_name = idzorek_omega(views, cov, TAU, dict(zip(views.picking.index, confidences, strict=True)))
    np.testing.assert_allclose(np.diag(by_name.to_numpy()), omega, rtol=0)


def test_full_confidence_puts_views_in_posterior(cov: pd.DataFrame, market_weights: pd.Series) -> None:
    # Given two independent views held with 100 % confidence (He-Litterman limit Omega = 0)
    relative = [RelativeView(long=["B"], short=["C"], outperformance=0.04)]
    # When the posterior is computed
    post = black_litterman(
        cov, market_weights, risk_aversion=DELTA, tau=TAU, absolute={"A": 0.12}, relative=relative, confidences=[1, 1]
    )
    # Then the posterior satisfies both views exactly
    assert post.mu["A"] == pytest.approx(0.12, abs=1e-14)
    assert post.mu["B"] - post.mu["C"] == pytest.approx(0.04, abs=1e-14)


def test_zero_confidence_leaves_the_prior(cov: pd.DataFrame, market_weights: pd.Series, prior: pd.Series) -> None:
    # Given a view held with 0 % confidence beside one held with 50 %
    zero = black_litterman(cov, market_weights, risk_aversion=DELTA, tau=TAU, absolute={"A": 0.5}, confidences=[0.0])
    half_only = black_litterman(
        cov, market_weights, risk_aversion=DELTA, tau=TAU, absolute={"B": 0.1}, confidences=[0.5]
    )
    both = black_litterman(
        cov, market_weights, risk_aversion=DELTA, tau=TAU, absolute={"A": 0.5, "B": 0.1}, confidences=[0.0, 0.5]
    )
    # Then the ignored view changes nothing: alone it returns the prior exactly
    assert np.array_equal(zero.mu.to_numpy(), prior.to_numpy())
    np.testing.assert_allclose(both.mu.to_numpy(), half_only.mu.to_numpy(), rtol=0, atol=1e-15)
    # And at 50 % the tilt towards the view is half-way (in weights, per Idzorek)
    full = black_litterman(cov, market_weights, risk_aversion=DELTA, tau=TAU, absolute={"B": 0.1}, confidences=[1])
    sigma = DELTA * cov.to_numpy()
    tilt_half = np.linalg.solve(sigma, half_only.mu.to_numpy() - prior.to_numpy())
    tilt_full = np.linalg.solve(sigma, full.mu.to_numpy() - prior.to_numpy())
    np.testing.assert_allclose(tilt_half, 0.5 * tilt_full, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"absolute": {"ZZZ": 0.1}}, "outside the universe"),
        ({"relative": [RelativeView(long=["A"], short=["A", "B"], outperformance=0.01)]}, "both legs"),
        ({"relative": [RelativeView(long=[], short=["B"], outperformance=0.01)]}, "empty"),
        (
            {"absolute": {"A": 0.1}, "relative": [RelativeView(["B"], ["C"], 0.01, name="A")]},
            "named",
        ),
    ],
)
def test_invalid_views_raise(kwargs: dict, match: str) -> None:
    # Given malformed friendly views / When they are built / Then a SpecificationError names the problem
    with pytest.raises(SpecificationError, match=match) as info:
        build_views(ASSETS, **kwargs)
    assert info.value.hint


def test_redundant_views_at_full_confidence_raise(cov: pd.DataFrame, market_weights: pd.Series) -> None:
    # Given the same view twice, both certain: P tau Sigma P' + Omega is singular
    relative = [RelativeView(["A"], ["B"], 0.02, name="one"), RelativeView(["A"], ["B"], 0.03, name="two")]
    # When / Then the posterior refuses with a hint to drop one
    with pytest.raises(SpecificationError, match="singular"):
        black_litterman(cov, market_weights, risk_aversion=DELTA, relative=relative, confidences=[1.0, 1.0])


@pytest.mark.parametrize("confidences", [[0.5], [0.5, 1.2, 0.1], [np.nan, 0.5, 0.5]])
def test_bad_confidences_raise(cov: pd.DataFrame, views: Views, confidences: list[float]) -> None:
    with pytest.raises(SpecificationError, match="confidence"):
        idzorek_omega(views, cov, TAU, confidences)


def test_bad_tau_and_omega_raise(cov: pd.DataFrame, prior: pd.Series, views: Views) -> None:
    with pytest.raises(SpecificationError, match="tau"):
        black_litterman_posterior(prior, cov, views, tau=0.0)
    negative = -he_litterman_omega(views, cov, TAU)
    with pytest.raises(SpecificationError, match="positive semi-definite"):
        black_litterman_posterior(prior, cov, views, tau=TAU, omega=negative)
    with pytest.raises(SpecificationError, match="view names"):
        black_litterman_posterior(prior, cov, views, tau=TAU, omega=pd.DataFrame(np.eye(3)))


def test_optimize_entry_without_views_holds_the_market(cov: pd.DataFrame, market_weights: pd.Series) -> None:
    from portfolio_engine.optimization._dispatch import optimize
    from portfolio_engine.optimization.moments import Moments
    from portfolio_engine.optimization.spec import PortfolioSpec

    # Given no views, unconstrained maximum utility with lambda = delta (He and Litterman 1999):
    # w* = (delta (1 + tau) Sigma)^-1 pi = w_mkt / (1 + tau)
    spec = PortfolioSpec(
        method="black_litterman",
        risk_aversion=DELTA,
        constraints={"long_only": False, "budget": None},
        method_params={"market_weights": market_weights.to_dict(), "tau": TAU, "objective": "max_utility"},
    )
    moments = Moments(mu=pd.Series(0.0, index=ASSETS), cov=cov)
    # When optimized through the registry
    result = optimize(spec, moments)
    # Then the market portfolio comes back, shrunk by 1 + tau
    np.testing.assert_allclose(result.weights.to_numpy(), market_weights.to_numpy() / (1 + TAU), rtol=1e-6)
    assert result.method == "black_litterman"
    assert np.array_equal(result.extras["posterior_mu"].to_numpy(), result.extras["prior"].to_numpy())


def test_optimize_entry_with_views_uses_the_posterior(cov: pd.DataFrame, market_weights: pd.Series) -> None:
    from portfolio_engine.optimization._dispatch import optimize
    from portfolio_engine.optimization.mean_variance import max_sharpe
    from portfolio_engine.optimization.moments import Moments
    from portfolio_engine.optimization.spec import PortfolioSpec

    # Given one absolute and one relative view with Idzorek confidences
    params = {
        "market_weights": market_weights.to_dict(),
        "absolute": {"A": 0.12},
        "relative": [{"long": ["B"], "short": ["C"], "outperformance": 0.03}],
        "confidences": [0.6, 0.4],
    }
    spec = PortfolioSpec(method="black_litterman", risk_aversion=DELTA, method_params=params)
    # When optimized (default objective: max Sharpe, long-only)
    result = optimize(spec, Moments(mu=pd.Series(0.0, index=ASSETS), cov=cov))
    # Then it is max Sharpe on the posterior moments computed directly
    posterior = black_litterman(
        cov,
        market_weights,
        risk_aversion=DELTA,
        absolute={"A": 0.12},
        relative=[RelativeView(["B"], ["C"], 0.03)],
        confidences=[0.6, 0.4],
    )
    np.testing.assert_allclose(result.weights.to_numpy(), max_sharpe(posterior).weights.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(result.extras["posterior_mu"].to_numpy(), posterior.mu.to_numpy(), rtol=1e-14)


def test_black_litterman_max_sharpe_matches_pypfopt(cov: pd.DataFrame, market_weights: pd.Series) -> None:
    from pypfopt import EfficientFrontier
    from pypfopt.black_litterman import market_implied_prior_returns

    from portfolio_engine.optimization.mean_variance import max_sharpe

    # Given the same prior (delta Sigma w_mkt), views, tau and He-Litterman Omega in both libraries
    absolute, relative = {"A": 0.12}, [RelativeView(long=["B"], short=["C"], outperformance=0.03)]
    ours = max_sharpe(
        black_litterman(cov, market_weights, risk_aversion=DELTA, tau=TAU, absolute=absolute, relative=relative),
        risk_free_rate=0.01,
    )
    views = build_views(ASSETS, absolute=absolute, relative=relative)
    model = BlackLittermanModel(
        cov,
        pi=market_implied_prior_returns(market_weights, DELTA, cov, risk_free_rate=0.0),
        P=views.picking.to_numpy(),
        Q=views.returns.to_numpy(),
        tau=TAU,
    )
    reference = EfficientFrontier(model.bl_returns(), model.bl_cov(), weight_bounds=(0, 1))
    reference.max_sharpe(risk_free_rate=0.01)
    _, _, ref_sharpe = reference.portfolio_performance(risk_free_rate=0.01)
    # When both maximise the Sharpe ratio on the posterior / Then the objective and the weights agree to 1e-6
    assert ours.sharpe == pytest.approx(ref_sharpe, abs=1e-6)
    weights = pd.Series(reference.clean_weights(rounding=None))
    np.testing.assert_allclose(ours.weights.to_numpy(), weights.reindex(ASSETS).to_numpy(), atol=1e-6)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "market_weights"),
        ({"market_weights": {"A": 1.0}, "view": 1}, "does not read"),
        ({"market_weights": {}, "objective": "best"}, "objective"),
    ],
)
def test_optimize_entry_rejects_bad_params(cov: pd.DataFrame, params: dict, match: str) -> None:
    from portfolio_engine.optimization._dispatch import optimize
    from portfolio_engine.optimization.moments import Moments
    from portfolio_engine.optimization.spec import PortfolioSpec

    with pytest.raises(SpecificationError, match=match):
        optimize(PortfolioSpec(method="black_litterman", method_params=params), Moments(pd.Series(0.0, ASSETS), cov))
