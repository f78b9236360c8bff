"""Factor models: recovery of known loadings, B F B' + D, PCA, and the three builders on bundled data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from portfolio_engine.adapters.market_data.bundled import (
    DEFAULT_UNIVERSE,
    FACTOR_ETFS,
    BundledSource,
    load_ff3_monthly,
    load_treasury_curve,
)
from portfolio_engine.exceptions import DataError, SchemaError, SpecificationError
from portfolio_engine.optimization.factors import (
    LinearFactorModel,
    PCAFactorModel,
    align_factor_data,
    etf_factor_model,
    fama_french_model,
    macro_factor_model,
    to_monthly_returns,
)

TRUE_LOADINGS = np.array(
    [[1.2, 0.3, -0.2], [0.8, -0.5, 0.4], [1.0, 0.0, 0.9], [0.5, 0.7, 0.1], [1.5, -0.2, -0.6], [0.9, 0.4, 0.0]]
)
TRUE_ALPHA = np.array([0.0002, -0.0001, 0.0, 0.0003, -0.0002, 0.0001])


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """3 factors, 6 assets, 4,000 days: r = alpha + B f + e with known B and alpha (seeded)."""
    rng = np.random.default_rng(11)
    n_obs = 4000
    dates = pd.bdate_range("2005-01-03", periods=n_obs, name="date")
    factors = pd.DataFrame(
        rng.normal([0.0004, 0.0001, 0.0002], [0.010, 0.005, 0.006], (n_obs, 3)), index=dates, columns=["f1", "f2", "f3"]
    )
    noise = rng.normal(0.0, 0.004, (n_obs, 6))
    assets = TRUE_ALPHA + factors.to_numpy() @ TRUE_LOADINGS.T + noise
    return pd.DataFrame(assets, index=dates, columns=[f"S{i}" for i in range(6)]), factors


@pytest.fixture(scope="module")
def stock_returns() -> pd.DataFrame:
    """Daily simple returns of the 20 bundled stocks, 1990-2022."""
    bars = BundledSource().fetch(list(DEFAULT_UNIVERSE))
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    return prices.pct_change(fill_method=None).iloc[1:]


def test_linear_model_recovers_known_loadings_and_matches_sklearn(simulated: tuple) -> None:
    assets, factors = simulated
    # When the model is fitted
    model = LinearFactorModel().fit(assets, factors)
    # Then the loadings are within sampling error of the truth (se ~ 0.004 / (0.005 sqrt(4000)) ~ 0.013)
    assert np.abs(model.loadings_.to_numpy() - TRUE_LOADINGS).max() < 0.05
    assert list(model.loadings_.columns) == ["f1", "f2", "f3"] and list(model.loadings_.index) == list(assets.columns)
    # And the coefficients and R^2 equal scikit-learn's OLS
    reference = LinearRegression().fit(factors.to_numpy(), assets.to_numpy())
    assert np.allclose(model.loadings_.to_numpy(), reference.coef_, rtol=0, atol=1e-12)
    assert np.allclose(model.alpha_.to_numpy(), reference.intercept_, rtol=0, atol=1e-14)
    predicted = reference.predict(factors.to_numpy())
    r2 = r2_score(assets.to_numpy(), predicted, multioutput="raw_values")
    assert np.allclose(model.r_squared_.to_numpy(), r2, rtol=0, atol=1e-12)
    assert model.n_observations_ == 4000


def test_covariance_is_b_f_bt_plus_d_by_hand(simulated: tuple) -> None:
    assets, factors = simulated
    model = LinearFactorModel(periods_per_year=252).fit(assets, factors)
    # Hand computation: OLS by the normal equations, F and D with ddof=1, annualised
    x = np.column_stack([np.ones(len(factors)), factors.to_numpy()])
    coef = np.linalg.solve(x.T @ x, x.T @ assets.to_numpy())
    b = coef[1:].T
    resid = assets.to_numpy() - x @ coef
    f_cov = np.cov(factors.to_numpy(), rowvar=False)
    d = resid.var(axis=0, ddof=1)
    expected = (b @ f_cov @ b.T + np.diag(d)) * 252
    cov = model.covariance()
    assert np.allclose(cov.to_numpy(), expected, rtol=1e-10, atol=0)
    # With an intercept the diagonal is exactly each asset's sample variance
    assert np.allclose(np.diag(cov), assets.var(ddof=1).to_numpy() * 252, rtol=1e-10, atol=0)


def test_expected_returns_from_premia(simulated: tuple) -> None:
    assets, factors = simulated
    model = LinearFactorModel().fit(assets, factors)
    # sample premia plus alpha give back the sample means
    assert np.allclose(model.expected_returns(include_alpha=True), assets.mean() * 252, rtol=1e-10, atol=0)
    premia = pd.Series({"f3": 0.01, "f1": 0.06, "f2": 0.02})
    expected = model.loadings_.to_numpy() @ np.array([0.06, 0.02, 0.01])
    assert np.allclose(model.expected_returns(premia).to_numpy(), expected, rtol=1e-12, atol=0)
    with pytest.raises(SpecificationError, match="every factor"):
        model.expected_returns(pd.Series({"f1": 0.05}))


def test_pca_with_every_component_reproduces_the_sample_covariance(simulated: tuple) -> None:
    assets, _ = simulated
    model = PCAFactorModel(n_factors=6).fit(assets)
    assert np.allclose(model.covariance().to_numpy(), np.cov(assets.to_numpy(), rowvar=False) * 252, rtol=1e-10, atol=0)
    assert model.explained_variance_ratio_.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(model.residual_var_.to_numpy(), 0.0, atol=1e-20)


def test_pca_components_match_sklearn_and_keep_the_variances(simulated: tuple) -> None:
    assets, _ = simulated
    model = PCAFactorModel(n_factors=2).fit(assets)
    reference = PCA(n_components=2).fit(assets.to_numpy())
    # same components up to sign, same explained variance ratio
    dots = np.abs(np.sum(model.loadings_.to_numpy() * reference.components_.T, axis=0))
    assert np.allclose(dots, 1.0, atol=1e-10)
    assert np.allclose(model.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=1e-10, atol=0)
    assert (model.loadings_.sum() >= 0).all()
    # with fewer components the implied variances are still the sample variances (B F B' + D, D the rest)
    assert np.allclose(np.diag(model.covariance()), assets.var().to_numpy() * 252, rtol=1e-10, atol=0)
    assert np.allclose(model.expected_returns(include_alpha=True), assets.mean() * 252, rtol=1e-10, atol=0)


def test_models_follow_the_estimator_contract(simulated: tuple) -> None:
    assets, factors = simulated
    model = LinearFactorModel(periods_per_year=12, min_observations=50)
    assert clone(model).get_params() == {"periods_per_year": 12, "min_observations": 50}
    assert clone(PCAFactorModel(n_factors=4)).get_params() == {"n_factors": 4, "periods_per_year": 252}
    assert model.fit(assets, factors) is model
    with pytest.raises(SpecificationError, match="not fitted"):
        LinearFactorModel().covariance()
    with pytest.raises(SpecificationError, match="between 1 and 6"):
        PCAFactorModel(n_factors=7).fit(assets)


def test_fit_rejects_misaligned_collinear_or_short_data(simulated: tuple) -> None:
    assets, factors = simulated
    with pytest.raises(DataError, match="different dates"):
        LinearFactorModel().fit(assets.iloc[1:], factors.iloc[:-1])
    collinear = factors.assign(f4=factors["f1"] + factors["f2"])
    with pytest.raises(DataError, match="collinear"):
        LinearFactorModel().fit(assets, collinear)
    with pytest.raises(DataError, match="at least 100"):
        LinearFactorModel(min_observations=100).fit(assets.iloc[:99], factors.iloc[:99])


def test_to_monthly_returns_compounds_within_calendar_months() -> None:
    # Given daily returns straddling a month end
    days = pd.to_datetime(["2021-01-28", "2021-01-29", "2021-02-01", "2021-02-02", "2021-03-31"])
    daily = pd.DataFrame({"x": [0.10, -0.05, 0.02, 0.03, 0.01]}, index=days)
    # When compounded
    monthly = to_monthly_returns(daily)
    # Then each month is prod(1 + r) - 1, stamped at the month end
    assert list(monthly.index) == list(pd.to_datetime(["2021-01-31", "2021-02-28", "2021-03-31"]))
    assert monthly["x"].to_numpy() == pytest.approx([1.10 * 0.95 - 1.0, 1.02 * 1.03 - 1.0, 0.01], abs=1e-15)
    # a cash-like column of zeros compounds to zeros (no variance check when only compounding)
    assert (to_monthly_returns(daily.assign(cash=0.0))["cash"] == 0.0).all()


def test_fama_french_model_compounds_takes_excess_and_recovers_exact_loadings() -> None:
    # Given 48 months of factors and assets built exactly from them, each month split into two days
    rng = np.random.default_rng(5)
    months = pd.date_range("2001-01-31", periods=48, freq="ME")
    ff = pd.DataFrame(rng.normal(0.0, 0.04, (48, 3)), index=months, columns=["Mkt-RF", "SMB", "HML"])
    ff["RF"] = rng.uniform(0.0, 0.004, 48)
    monthly = ff["RF"] + 0.002 + ff[["Mkt-RF", "SMB", "HML"]].to_numpy() @ np.array([1.3, 0.4, -0.7])
    first_half = rng.uniform(-0.02, 0.02, 48)
    second_half = (1.0 + monthly.to_numpy()) / (1.0 + first_half) - 1.0
    days = [d for m in months for d in (m - pd.Timedelta(days=10), m - pd.Timedelta(days=1))]
    daily = pd.DataFrame({"asset": np.column_stack([first_half, second_half]).ravel()}, index=pd.DatetimeIndex(days))
    # When the Fama-French model is fitted
    model = fama_french_model(daily, ff)
    # Then the loadings and the monthly alpha are exact, and the model is monthly
    assert model.loadings_.loc["asset"].to_numpy() == pytest.approx([1.3, 0.4, -0.7], abs=1e-10)
    assert model.alpha_["asset"] == pytest.approx(0.002, abs=1e-12)
    assert model.periods_per_year == 12 and model.n_observations_ == 48


def test_fama_french_model_on_the_bundled_data(stock_returns: pd.DataFrame) -> None:
    model = fama_french_model(stock_returns, load_ff3_monthly())
    # 1990-01 through 2018-11, the last month of the bundled factors
    assert model.n_observations_ == 347
    assert (model.loadings_["Mkt-RF"] > 0.3).all()
    assert ((model.r_squared_ > 0.05) & (model.r_squared_ < 0.9)).all()
    cov = model.covariance()
    assert np.linalg.eigvalsh(cov.to_numpy())[0] > 0
    assert 0.15 < float(np.sqrt(np.diag(cov)).mean()) < 0.6  # annual vols of single stocks
    with pytest.raises(SchemaError, match=r"\['UMD'\]"):
        fama_french_model(stock_returns, load_ff3_monthly(), factors=("Mkt-RF", "UMD"))


def test_etf_factor_model_on_the_bundled_etfs(stock_returns: pd.DataFrame) -> None:
    etfs = BundledSource().fetch(list(FACTOR_ETFS)).pivot(index="date", columns="symbol", values="adj_close")
    plain = etf_factor_model(stock_returns, etfs)
    spreads = etf_factor_model(stock_returns, etfs, long_short_against="USMV")
    # the spreads are an invertible linear map of the ETF returns: same fit, same implied covariance
    assert plain.n_observations_ == spreads.n_observations_ > 2000
    assert np.allclose(plain.r_squared_, spreads.r_squared_, rtol=0, atol=1e-10)
    assert np.allclose(plain.covariance(), spreads.covariance(), rtol=1e-9, atol=0)
    assert plain.r_squared_.mean() > 0.3
    with pytest.raises(DataError, match="Only 0 date"):
        etf_factor_model(stock_returns.loc[:"2013-12-31"], etfs)


def test_macro_factor_model_differences_each_series_on_its_own_dates() -> None:
    # Given a yield with a missing day and returns on every day
    days = pd.bdate_range("2020-01-01", periods=80)
    rng = np.random.default_rng(9)
    levels = pd.Series(0.02 + np.cumsum(rng.normal(0, 0.0005, 80)), index=days)
    levels.iloc[10] = np.nan
    change = levels.dropna().diff()
    assets = pd.DataFrame({"bond": -7.0 * change.reindex(days).fillna(0.0) + rng.normal(0, 1e-4, 80)}, index=days)
    # When the macro model is fitted on the level
    model = macro_factor_model(assets, levels.to_frame("10y"), min_observations=60)
    # Then the missing day is dropped (not 77 rows: the change after the gap spans two days rather than
    # being lost), and the duration is recovered
    assert model.n_observations_ == 78
    assert model.loadings_.loc["bond", "10y"] == pytest.approx(-7.0, abs=0.2)


def test_macro_factor_model_on_the_bundled_treasury_curve(stock_returns: pd.DataFrame) -> None:
    model = macro_factor_model(stock_returns, load_treasury_curve()[["3month", "10year"]])
    assert model.n_observations_ > 6000
    assert list(model.loadings_.columns) == ["3month", "10year"]
    assert np.linalg.eigvalsh(model.covariance().to_numpy())[0] > 0


def test_align_factor_data_is_an_inner_join_without_gaps() -> None:
    a = pd.DataFrame(
        {"x": [1.0, 2.0, np.nan, 4.0]}, index=pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-06"])
    )
    f = pd.DataFrame({"f": [0.1, 0.2, 0.3]}, index=pd.to_datetime(["2020-01-06", "2020-01-02", "2020-01-03"]))
    assets, factors = align_factor_data(a, f)
    assert list(assets.index) == list(pd.to_datetime(["2020-01-02", "2020-01-06"]))
    assert factors["f"].tolist() == [0.2, 0.1]
    with pytest.raises(DataError, match="Only 2 date"):
        align_factor_data(a, f, min_observations=3)
