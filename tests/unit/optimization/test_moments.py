"""Moment estimators against independent references: numpy, pandas, scikit-learn, PyPortfolioOpt and skfolio."""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypfopt import black_litterman as ppo_bl
from pypfopt import expected_returns as ppo_er
from pypfopt import risk_models as ppo_rm
from skfolio.moments import OAS as SkfOAS
from skfolio.moments import EmpiricalMu, EquilibriumMu, ShrunkMu, ShrunkMuMethods
from skfolio.moments import LedoitWolf as SkfLedoitWolf
from sklearn.covariance import OAS, LedoitWolf

from portfolio_engine.exceptions import DataError, SpecificationError
from portfolio_engine.optimization.factors import LinearFactorModel, PCAFactorModel
from portfolio_engine.optimization.moments import (
    Moments,
    NonPSDCovarianceWarning,
    capm_mean,
    equilibrium_mean,
    estimate_moments,
    ewma_covariance,
    ewma_mean,
    historical_mean,
    ledoit_wolf_covariance,
    market_implied_risk_aversion,
    oas_covariance,
    repair_psd,
    sample_covariance,
    shrunk_mean,
)

TIGHT = 1e-10


def assert_close(actual: pd.Series | pd.DataFrame, expected: object, rtol: float = TIGHT) -> None:
    """Relative agreement to ``rtol`` of the largest entry (labels checked when the reference has them)."""
    expected_values = np.asarray(expected, dtype="float64")
    if isinstance(expected, pd.Series | pd.DataFrame):
        assert list(map(str, expected.index)) == list(map(str, actual.index))
    scale = max(float(np.abs(expected_values).max()), 1e-300)
    assert float(np.abs(actual.to_numpy() - expected_values).max()) <= rtol * scale


@pytest.fixture(scope="module")
def returns() -> pd.DataFrame:
    """Six correlated assets, 600 business days, with distinct means (seeded)."""
    rng = np.random.default_rng(20261124)
    n_obs, n_assets = 600, 6
    mix = rng.normal(0.0, 1.0, (n_assets, n_assets)) * 0.004 + np.eye(n_assets) * 0.01
    drift = np.linspace(-0.0005, 0.0015, n_assets)
    values = drift + rng.normal(0.0, 1.0, (n_obs, n_assets)) @ mix.T
    dates = pd.bdate_range("2020-01-01", periods=n_obs, name="date")
    return pd.DataFrame(values, index=dates, columns=[f"A{i}" for i in range(n_assets)])


@pytest.fixture(scope="module")
def market(returns: pd.DataFrame) -> pd.Series:
    """A market series correlated with the assets (their average plus noise), with a positive premium."""
    rng = np.random.default_rng(7)
    values = returns.mean(axis=1).to_numpy() + 0.0008 + rng.normal(0.0, 0.002, len(returns))
    return pd.Series(values, index=returns.index)


# -- expected returns --------------------------------------------------------------------------------


def test_historical_mean_matches_pypfopt_and_skfolio(returns: pd.DataFrame) -> None:
    # Given daily returns / When the arithmetic and geometric historical means are estimated
    arithmetic = historical_mean(returns)
    geometric = historical_mean(returns, geometric=True)
    # Then they equal PyPortfolioOpt's (compounding off / on) and skfolio's empirical mean x 252
    assert_close(arithmetic, ppo_er.mean_historical_return(returns, returns_data=True, compounding=False))
    assert_close(arithmetic, EmpiricalMu().fit(returns).mu_ * 252)
    assert_close(geometric, ppo_er.mean_historical_return(returns, returns_data=True, compounding=True))


def test_ewma_mean_matches_a_hand_computation_and_pypfopt(returns: pd.DataFrame) -> None:
    # Given three returns and span 3 (alpha = 1/2): weights 1/4, 1/2, 1 normalised by 7/4
    tiny = pd.DataFrame({"x": [0.01, 0.02, 0.04]})
    # When the EWMA mean is estimated (annualised by 1)
    mean = ewma_mean(tiny, span=3, periods_per_year=1)
    # Then it is (0.0025 + 0.01 + 0.04) / 1.75 = 0.03
    assert mean["x"] == pytest.approx(0.03, abs=1e-15)
    # And on real-sized data it equals PyPortfolioOpt's EMA return and pandas' halflife weighting
    assert_close(ewma_mean(returns, span=60), ppo_er.ema_historical_return(returns, True, compounding=False, span=60))
    assert_close(ewma_mean(returns, halflife=30), returns.ewm(halflife=30).mean().iloc[-1] * 252)


def test_capm_mean_matches_pypfopt(returns: pd.DataFrame, market: pd.Series) -> None:
    # Given a market series and a 2% risk-free rate / When CAPM returns are estimated
    mu = capm_mean(returns, market, risk_free_rate=0.02)
    # Then they equal PyPortfolioOpt's capm_return without compounding
    reference = ppo_er.capm_return(
        returns.copy(), market.to_frame("m"), returns_data=True, risk_free_rate=0.02, compounding=False
    )
    assert_close(mu, reference)


def test_equilibrium_mean_and_implied_risk_aversion_match_pypfopt_and_skfolio(
    returns: pd.DataFrame, market: pd.Series
) -> None:
    # Given market caps, the market's prices and the annual sample covariance
    caps = pd.Series([5.0, 3.0, 1.0, 0.5, 2.0, 4.0], index=returns.columns)
    prices = pd.concat([pd.Series([100.0]), 100.0 * (1.0 + market.reset_index(drop=True)).cumprod()])
    cov = sample_covariance(returns)
    # When the implied risk aversion and the equilibrium returns are computed
    delta = market_implied_risk_aversion(market, risk_free_rate=0.01)
    pi = equilibrium_mean(cov, caps, risk_aversion=delta, risk_free_rate=0.01)
    # Then they equal PyPortfolioOpt's, and skfolio's EquilibriumMu on the same covariance (rf = 0)
    assert delta == pytest.approx(ppo_bl.market_implied_risk_aversion(prices, risk_free_rate=0.01), rel=TIGHT)
    assert_close(pi, ppo_bl.market_implied_prior_returns(caps, delta, cov, risk_free_rate=0.01))
    skf = EquilibriumMu(risk_aversion=2.5, weights=(caps / caps.sum()).to_numpy(), covariance_estimator=None)
    assert_close(equilibrium_mean(cov, caps, risk_aversion=2.5), skf.fit(returns).mu_ * 252)


@pytest.mark.parametrize(
    ("method", "target", "skf_method", "vol_weighted"),
    [
        ("james_stein", "grand_mean", ShrunkMuMethods.JAMES_STEIN, False),
        ("james_stein", "min_variance", ShrunkMuMethods.JAMES_STEIN, True),
        ("bayes_stein", "grand_mean", ShrunkMuMethods.BAYES_STEIN, False),
        ("bayes_stein", "min_variance", ShrunkMuMethods.BAYES_STEIN, True),
    ],
)
def test_shrunk_mean_matches_skfolio(
    returns: pd.DataFrame, method: str, target: str, skf_method: ShrunkMuMethods, vol_weighted: bool
) -> None:
    # Given skfolio's shrinkage with the same method and target (its intensity strictly inside (0, 1))
    reference = ShrunkMu(method=skf_method, vol_weighted_target=vol_weighted).fit(returns)
    assert 0.0 < reference.beta_ < 1.0
    # When our shrunk mean is estimated / Then it equals skfolio's x 252
    assert_close(shrunk_mean(returns, method=method, target=target), reference.mu_ * 252)


def test_james_stein_clips_to_the_target_when_the_means_are_indistinguishable() -> None:
    # Given two independent noisy assets with the same mean (the raw James-Stein intensity exceeds 1)
    rng = np.random.default_rng(3)
    noisy = pd.DataFrame(rng.normal(0.0005, 0.02, (100, 4)), columns=list("abcd"))
    # When shrunk toward the grand mean / Then every asset gets the grand mean
    mu = shrunk_mean(noisy, method="james_stein")
    assert np.allclose(mu.to_numpy(), noisy.mean().mean() * 252, rtol=0, atol=1e-15)


# -- covariance --------------------------------------------------------------------------------------


def test_sample_covariance_matches_numpy_and_pypfopt(returns: pd.DataFrame) -> None:
    cov = sample_covariance(returns)
    assert_close(cov, np.cov(returns.to_numpy(), rowvar=False) * 252)
    assert_close(cov, ppo_rm.sample_cov(returns, returns_data=True))


@pytest.mark.parametrize("shape", [(600, 6), (40, 60)])
def test_ledoit_wolf_and_oas_match_sklearn_pypfopt_and_skfolio(shape: tuple[int, int]) -> None:
    # Given returns with more or fewer observations than assets
    rng = np.random.default_rng(shape[0])
    frame = pd.DataFrame(rng.normal(0.0, 0.01, shape) * np.linspace(1.0, 3.0, shape[1]))
    frame.columns = [f"S{i}" for i in range(shape[1])]
    # When the shrunk covariances are estimated / Then they equal every reference, annualised
    lw, oas = ledoit_wolf_covariance(frame), oas_covariance(frame)
    assert_close(lw, LedoitWolf().fit(frame.to_numpy()).covariance_ * 252)
    assert_close(lw, ppo_rm.CovarianceShrinkage(frame, returns_data=True).ledoit_wolf())
    assert_close(lw, SkfLedoitWolf().fit(frame).covariance_ * 252)
    assert_close(oas, OAS().fit(frame.to_numpy()).covariance_ * 252)
    assert_close(oas, SkfOAS().fit(frame).covariance_ * 252)


def test_ewma_covariance_matches_a_hand_computation() -> None:
    # Given two assets, three rows and span 3: weights (1, 2, 4) / 7
    tiny = pd.DataFrame({"x": [0.01, -0.02, 0.03], "y": [0.00, 0.01, -0.01]})
    w = np.array([1.0, 2.0, 4.0]) / 7.0
    # weighted means: x = (0.01 - 0.04 + 0.12) / 7 = 0.09 / 7, y = (0 + 0.02 - 0.04) / 7 = -0.02 / 7
    mx, my = 0.09 / 7.0, -0.02 / 7.0
    dx = np.array([0.01, -0.02, 0.03]) - mx
    dy = np.array([0.00, 0.01, -0.01]) - my
    expected = np.array([[w @ (dx * dx), w @ (dx * dy)], [w @ (dx * dy), w @ (dy * dy)]])
    # When the EWMA covariance is estimated (weighted centre, annualised by 1) / Then it is that matrix
    assert_close(ewma_covariance(tiny, span=3, periods_per_year=1), expected)
    # And without centring it is the weighted second moment (RiskMetrics)
    raw = tiny.to_numpy()
    assert_close(ewma_covariance(tiny, span=3, center="zero", periods_per_year=1), (raw * w[:, None]).T @ raw)


def test_ewma_covariance_centred_on_the_sample_mean_matches_pypfopt(returns: pd.DataFrame) -> None:
    ours = ewma_covariance(returns, span=90, center="sample")
    assert_close(ours, ppo_rm.exp_cov(returns, returns_data=True, span=90))


# -- repair_psd --------------------------------------------------------------------------------------

NON_PSD = pd.DataFrame(
    [[0.04, 0.05, 0.00], [0.05, 0.04, 0.05], [0.00, 0.05, 0.04]], index=list("abc"), columns=list("abc")
)


def test_repair_psd_clip_warns_names_the_eigenvalue_and_matches_pypfopt() -> None:
    # Given a symmetric matrix with a negative eigenvalue
    smallest = float(np.linalg.eigvalsh(NON_PSD.to_numpy())[0])
    assert smallest < 0
    # When it is repaired by clipping
    with pytest.warns(NonPSDCovarianceWarning, match=re.escape(f"{smallest:.6g}")):
        fixed = repair_psd(NON_PSD)
    # Then it is PSD, labelled, and equals PyPortfolioOpt's spectral fix
    assert np.linalg.eigvalsh(fixed.to_numpy())[0] >= -1e-15
    assert list(fixed.index) == list("abc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_close(fixed, ppo_rm.fix_nonpositive_semidefinite(NON_PSD, fix_method="spectral"))


def test_repair_psd_floor_makes_the_matrix_positive_definite() -> None:
    with pytest.warns(NonPSDCovarianceWarning):
        fixed = repair_psd(NON_PSD.to_numpy(), floor=1e-4)
    assert isinstance(fixed, np.ndarray)
    assert np.linalg.eigvalsh(fixed)[0] == pytest.approx(1e-4, rel=1e-8)


def test_repair_psd_higham_finds_the_published_nearest_correlation_matrix() -> None:
    # Given Higham's (2002) example [[1, 1, 0], [1, 1, 1], [0, 1, 1]] scaled to variances 4, 1, 9
    corr = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    std = np.array([2.0, 1.0, 3.0])
    # When repaired with Higham's method
    with pytest.warns(NonPSDCovarianceWarning):
        fixed = repair_psd(corr * np.outer(std, std), method="higham", tol=1e-12, max_iter=10_000)
    # Then the variances are kept and the correlation is the published answer (0.7607, 0.1573), PSD
    assert np.allclose(np.diag(fixed), std**2, rtol=1e-12)
    repaired_corr = fixed / np.outer(std, std)
    published = np.array([[1.0, 0.7607, 0.1573], [0.7607, 1.0, 0.7607], [0.1573, 0.7607, 1.0]])
    assert np.abs(repaired_corr - published).max() < 1e-4
    assert np.linalg.eigvalsh(repaired_corr)[0] >= -1e-14


def test_repair_psd_returns_a_psd_input_untouched_without_warning(returns: pd.DataFrame) -> None:
    cov = sample_covariance(returns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert repair_psd(cov) is cov
        assert repair_psd(cov, method="higham") is cov


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 8))
def test_repair_psd_always_gives_a_psd_matrix(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.normal(0.0, 1.0, (n, n))
    symmetric = (raw + raw.T) / 2.0
    np.fill_diagonal(symmetric, np.abs(np.diag(symmetric)) + 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPSDCovarianceWarning)
        for method in ("clip", "higham"):
            fixed = repair_psd(symmetric, method=method)
            scale = np.abs(fixed).max()
            assert np.linalg.eigvalsh(fixed)[0] >= -1e-12 * scale


def test_repair_psd_rejects_bad_input() -> None:
    with pytest.raises(SpecificationError, match="symmetric"):
        repair_psd(np.array([[1.0, 0.5], [0.2, 1.0]]))
    with pytest.raises(SpecificationError, match="Unknown repair method"):
        repair_psd(NON_PSD, method="nearest")
    with pytest.raises(SpecificationError, match="positive variances"):
        repair_psd(np.array([[0.0, 1.0], [1.0, 0.0]]), method="higham")


# -- Moments -----------------------------------------------------------------------------------------


def test_moments_aligns_cov_to_mu_symmetrises_and_copies() -> None:
    mu = pd.Series([0.1, 0.2], index=["a", "b"])
    cov = pd.DataFrame([[0.09, 0.01 + 1e-14], [0.01, 0.04]], index=["b", "a"], columns=["b", "a"])
    moments = Moments(mu, cov)
    assert list(moments.cov.index) == ["a", "b"] and moments.cov.loc["a", "a"] == 0.04
    assert moments.cov.loc["a", "b"] == moments.cov.loc["b", "a"]
    assert moments.volatility.to_dict() == pytest.approx({"a": 0.2, "b": 0.3})
    mu.iloc[0] = 99.0
    assert moments.mu["a"] == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        moments.mu = mu


@pytest.mark.parametrize(
    ("mu", "cov", "message"),
    [
        (pd.Series([0.1], index=["a"]), pd.DataFrame([[0.1]], index=["b"], columns=["b"]), "missing"),
        (
            pd.Series([0.1, 0.1], index=["a", "b"]),
            pd.DataFrame([[1.0, 0.5], [0.4, 1.0]], list("ab"), list("ab")),
            r"not symmetric: Moments.cov\['a', 'b'\] = 0.5 but Moments.cov\['b', 'a'\] = 0.4",
        ),
        (pd.Series([np.nan], index=["a"]), pd.DataFrame([[0.1]], index=["a"], columns=["a"]), "NaN"),
        (np.array([0.1]), pd.DataFrame([[0.1]]), "Series"),
        (
            pd.Series([0.1, 0.1], index=["a", "a"]),
            pd.DataFrame(np.eye(2), ["a", "b"], ["a", "b"]),
            r"mu repeat the assets \['a'\]",
        ),
    ],
)
def test_moments_rejects_inconsistent_input(mu: object, cov: object, message: str) -> None:
    with pytest.raises(SpecificationError, match=message):
        Moments(mu, cov)


# -- estimate_moments --------------------------------------------------------------------------------


def test_estimate_moments_dispatches_to_the_estimators(returns: pd.DataFrame, market: pd.Series) -> None:
    caps = pd.Series(1.0, index=returns.columns)
    moments = estimate_moments(returns, mean="ewma", covariance="ewma", span=120, center="zero")
    assert_close(moments.mu, ewma_mean(returns, span=120), rtol=0)
    assert_close(moments.cov, ewma_covariance(returns, span=120, center="zero"), rtol=0)
    moments = estimate_moments(returns, mean="equilibrium", covariance="oas", market_weights=caps, risk_aversion=3.0)
    assert_close(moments.mu, equilibrium_mean(oas_covariance(returns), caps, risk_aversion=3.0), rtol=0)
    moments = estimate_moments(returns, mean="capm", covariance="sample", market_returns=market, periods_per_year=12)
    assert_close(moments.mu, capm_mean(returns, market, periods_per_year=12), rtol=0)
    assert_close(moments.cov, sample_covariance(returns, periods_per_year=12), rtol=0)
    # the market-implied risk aversion is measured on the returns' dates only
    longer = pd.concat([pd.Series([0.5], index=[pd.Timestamp("2019-12-31")]), market])
    moments = estimate_moments(returns, mean="equilibrium", market_weights=caps, market_returns=longer)
    delta = market_implied_risk_aversion(market)
    assert_close(moments.mu, equilibrium_mean(ledoit_wolf_covariance(returns), caps, risk_aversion=delta), rtol=0)


def test_estimate_moments_factor_and_pca_covariances(returns: pd.DataFrame, market: pd.Series) -> None:
    factors = pd.DataFrame({"mkt": market, "spread": returns["A0"] - returns["A5"]})
    moments = estimate_moments(returns, covariance="factor", factor_returns=factors)
    expected = LinearFactorModel().fit(returns, factors).covariance()
    assert_close(moments.cov, expected, rtol=0)
    moments = estimate_moments(returns, mean="bayes_stein", covariance="pca", n_factors=6)
    assert_close(moments.cov, sample_covariance(returns), rtol=1e-10)
    assert_close(moments.cov, PCAFactorModel(6).fit(returns).covariance(), rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": "magic"}, "Unknown mean estimator"),
        ({"covariance": "magic"}, "Unknown covariance estimator"),
        ({"covariance": "sample", "span": 30}, r"Option\(s\) \['span'\] do not apply"),
        ({"mean": "capm"}, "needs the option market_returns"),
        ({"mean": "equilibrium", "market_weights": None}, "needs the option market_weights"),
        ({"mean": "ewma"}, "exactly one of span or halflife"),
        ({"covariance": "pca"}, "needs the option n_factors"),
        ({"covariance": "factor", "factor_returns": [1, 2]}, "factor_returns as a DataFrame"),
        ({"periods_per_year": 0}, "periods_per_year"),
    ],
)
def test_estimate_moments_rejects_bad_specifications(returns: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(SpecificationError, match=message) as caught:
        estimate_moments(returns, **kwargs)
    assert caught.value.hint


def test_unknown_estimator_lists_the_valid_choices(returns: pd.DataFrame) -> None:
    with pytest.raises(SpecificationError) as caught:
        estimate_moments(returns, covariance="shrunk")
    assert all(name in caught.value.hint for name in ("ledoit_wolf", "oas", "sample", "ewma", "factor", "pca"))


def test_estimate_moments_rejects_bad_data(returns: pd.DataFrame) -> None:
    with_gap = returns.copy()
    with_gap.iloc[3, 2] = np.nan
    with pytest.raises(DataError, match=r"1 row\(s\) with NaN.*A2"):
        estimate_moments(with_gap)
    with pytest.raises(DataError, match="at least 2"):
        estimate_moments(returns.iloc[:1])
    with pytest.raises(DataError, match="at least 7"):
        estimate_moments(returns.iloc[:6], mean="bayes_stein")
    constant = returns.assign(A3=0.0)
    with pytest.raises(DataError, match=r"constant column\(s\) \['A3'\]"):
        estimate_moments(constant)
    with pytest.raises(SpecificationError, match="DataFrame"):
        estimate_moments(returns.to_numpy())
    with pytest.raises(DataError, match="market_returns has no finite value"):
        estimate_moments(returns, mean="capm", market_returns=pd.Series(0.01, index=returns.index[1:]))
    with pytest.raises(DataError, match="not positive"):
        estimate_moments(returns, mean="equilibrium", market_weights=pd.Series(1.0, index=returns.columns),
                         market_returns=-returns.mean(axis=1) - 0.01)  # fmt: skip


def test_geometric_mean_refuses_a_total_loss() -> None:
    # Given an asset that lost everything on one day / When compounding / Then a typed error names it (not NaN)
    wiped = pd.DataFrame({"ok": [0.01, 0.02, -0.01], "gone": [0.05, -1.0, 0.02]})
    with pytest.raises(DataError, match=r"zero or negative for \['gone'\]"):
        historical_mean(wiped, geometric=True)


def test_a_single_observation_gives_a_mean_but_no_covariance() -> None:
    one_day = pd.DataFrame({"a": [0.01], "b": [0.02]})
    assert historical_mean(one_day, periods_per_year=1).tolist() == [0.01, 0.02]
    with pytest.raises(DataError, match="at least 2"):
        sample_covariance(one_day)
