"""Risk measures: exact historical VaR/CVaR, parametric closed forms vs scipy, Cornish-Fisher, Euler contributions,
drawdown on hand-built paths, benchmark statistics, the report, and every typed error."""

from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from portfolio_engine.adapters.market_data.bundled import BundledSource
from portfolio_engine.exceptions import RiskError, RiskInputError
from portfolio_engine.risk._var import (
    cornish_fisher_quantile,
    cornish_fisher_var_cvar,
    empirical_var_cvar,
    fit_student_t_dof,
    horizon_returns,
    normal_var_cvar,
    tail_size,
)
from portfolio_engine.risk.measures import (
    annualized_volatility,
    beta,
    conditional_value_at_risk,
    drawdown,
    monte_carlo_tail_risk,
    normal_contributions,
    portfolio_returns,
    risk_report,
    scenario_cvar_contributions,
    tail_risk,
    tracking_error,
    value_at_risk,
    volatility_contributions,
)

ASSETS = ["AAPL", "JPM", "XOM", "KO"]
WEIGHTS = pd.Series({"AAPL": 0.4, "JPM": 0.3, "XOM": 0.2, "KO": 0.1})


@lru_cache(maxsize=1)
def _bundled() -> pd.DataFrame:
    """Daily returns of four bundled stocks and the S&P 500, 2015-2022 (about 2,000 days)."""
    bars = BundledSource().fetch([*ASSETS, "^GSPC"])
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    return prices.pct_change().dropna().loc["2015":]


def _ladder() -> pd.DataFrame:
    """100 daily returns (k - 50) / 1000, k = 1..100, shuffled: the losses are -0.050 ... 0.049 in steps of 0.001."""
    rng = np.random.default_rng(7)
    values = rng.permutation((np.arange(1, 101) - 50) / 1000.0)
    dates = pd.bdate_range("2020-01-01", periods=100)
    return pd.DataFrame({"A": values, "B": rng.normal(0.0, 0.01, 100)}, index=dates)


# --- historical VaR / CVaR: exact order statistics -------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "method", "expected_var"),
    [
        (0.95, "inverted_cdf", 0.044),  # the 95th smallest loss of 100 = the 6th largest
        (0.99, "inverted_cdf", 0.048),  # the 99th smallest = the 2nd largest
        (0.95, "lower", 0.044),  # position 99 * 0.95 = 94.05 -> index 94
        (0.95, "higher", 0.045),  # -> index 95
        (0.95, "linear", 0.04405),  # 0.044 + 0.05 * 0.001
        (0.90, "inverted_cdf", 0.039),  # the 90th smallest = the 11th largest
    ],
)
def test_historical_var_is_the_stated_order_statistic(level: float, method: str, expected_var: float) -> None:
    # Given 100 returns with known order statistics, held at 100 % (the other asset at weight 0)
    returns = _ladder()
    weights = pd.Series({"A": 1.0, "B": 0.0})
    # When historical VaR is computed with the quantile convention
    risk = tail_risk(weights, returns, level=level, method="historical", quantile_method=method)
    # Then it is that order statistic, and CVaR is the mean of the worst 100 (1 - level) losses (5 at 0.95)
    assert risk.var == pytest.approx(expected_var, abs=1e-15)
    worst = np.sort(-returns["A"].to_numpy())[::-1]
    assert risk.cvar == pytest.approx(worst[: round(100 * (1 - level))].mean(), abs=1e-15)
    assert risk.n_observations == 100


def test_cvar_with_a_fractional_tail() -> None:
    # Given 10 returns at level 0.75: the tail holds 2.5 scenarios
    values = np.array([0.05, -0.04, 0.01, -0.10, 0.02, 0.0, -0.02, 0.03, -0.01, 0.04])
    # Then VaR is the 3rd largest loss and CVaR = (0.10 + 0.04 + 0.5 * 0.02) / 2.5 (Acerbi-Tasche)
    var, cvar = empirical_var_cvar(values, 0.75)
    assert var == pytest.approx(0.02, abs=1e-15)
    assert cvar == pytest.approx((0.10 + 0.04 + 0.5 * 0.02) / 2.5, abs=1e-15)
    # And it equals VaR + E[(L - VaR)^+] / (1 - alpha) (Rockafellar-Uryasev)
    losses = -values
    assert cvar == pytest.approx(var + np.maximum(losses - var, 0).mean() / 0.25, abs=1e-15)


def test_tail_size_snaps_round_off() -> None:
    assert tail_size(100, 0.95) == 5.0
    assert tail_size(1000, 0.99) == 10.0
    assert tail_size(10, 0.75) == 2.5


def test_multi_day_historical_compounds_each_asset_over_windows() -> None:
    # Given 7 daily returns of two assets
    daily = np.array(
        [[0.01, -0.02], [0.02, 0.01], [-0.03, 0.0], [0.04, 0.02], [-0.01, -0.01], [0.0, 0.03], [0.02, 0.0]]
    )
    # When 2-day returns are built, overlapping and non-overlapping
    overlapping = horizon_returns(daily, 2)
    blocks = horizon_returns(daily, 2, overlapping=False)
    # Then each is (1 + r_t)(1 + r_t+1) - 1; blocks are counted back from the latest day (the first day is dropped)
    by_hand = (1 + daily[:-1]) * (1 + daily[1:]) - 1
    np.testing.assert_allclose(overlapping, by_hand, rtol=0, atol=1e-15)
    np.testing.assert_allclose(blocks, by_hand[[1, 3, 5]], rtol=0, atol=1e-15)
    # And the 2-day historical VaR at 0.8 over the 6 overlapping windows is the 2nd largest portfolio loss (k = 1.2)
    frame = pd.DataFrame(daily, columns=["A", "B"], index=pd.bdate_range("2021-01-01", periods=7))
    weights = pd.Series({"A": 0.5, "B": 0.5})
    risk = tail_risk(weights, frame, level=0.8, horizon=2)
    losses = np.sort(-(by_hand @ weights.to_numpy()))[::-1]
    assert risk.var == pytest.approx(losses[1], abs=1e-15)
    assert risk.cvar == pytest.approx((losses[0] + 0.2 * losses[1]) / 1.2, abs=1e-15)
    assert tail_risk(weights, frame, level=0.8, horizon=2, overlapping=False).n_observations == 3


# --- parametric closed forms --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "horizon"), [(0.95, 1), (0.99, 10)])
def test_normal_var_cvar_match_scipy(level: float, horizon: int) -> None:
    # Given the bundled portfolio's daily returns
    returns = _bundled()
    portfolio = returns[ASSETS] @ WEIGHTS
    mean, std = horizon * portfolio.mean(), math.sqrt(horizon) * portfolio.std(ddof=1)
    # When the Normal VaR/CVaR is computed
    risk = tail_risk(WEIGHTS, returns, level=level, horizon=horizon, method="normal")
    # Then VaR is scipy's quantile of the loss and CVaR the conditional mean loss beyond it (numerical integration)
    assert risk.var == pytest.approx(-stats.norm.ppf(1 - level, loc=mean, scale=std), rel=1e-12)
    tail_mean = stats.norm.expect(lambda x: -x, loc=mean, scale=std, ub=-risk.var, conditional=True)
    assert risk.cvar == pytest.approx(tail_mean, rel=1e-8)


@pytest.mark.parametrize("dof", [3.0, 5.0, 30.0])
def test_student_t_var_cvar_match_scipy_with_variance_matched(dof: float) -> None:
    # Given the bundled portfolio and a fixed dof
    returns = _bundled()
    portfolio = returns[ASSETS] @ WEIGHTS
    mean, std = 5 * portfolio.mean(), math.sqrt(5) * portfolio.std(ddof=1)
    scale = std * math.sqrt((dof - 2) / dof)
    # When the Student-t VaR/CVaR is computed over 5 days
    risk = tail_risk(WEIGHTS, returns, level=0.99, horizon=5, method="student_t", dof=dof)
    # Then the t has the sample variance, and VaR/CVaR are scipy's quantile and conditional tail mean
    assert stats.t.var(dof, scale=scale) == pytest.approx(std**2, rel=1e-12)
    assert risk.var == pytest.approx(-stats.t.ppf(0.01, dof, loc=mean, scale=scale), rel=1e-12)
    tail_mean = stats.t.expect(lambda x: -x, args=(dof,), loc=mean, scale=scale, ub=-risk.var, conditional=True)
    assert risk.cvar == pytest.approx(tail_mean, rel=1e-7)
    assert risk.parameters["dof"] == dof and risk.parameters["dof_fitted"] is False


def test_student_t_dof_is_the_maximum_likelihood_estimate() -> None:
    # Given 20,000 draws of a Student-t with 5 degrees of freedom
    sample = stats.t.rvs(5, loc=0.0005, scale=0.01, size=20_000, random_state=np.random.default_rng(3))
    # When its dof is fitted with the mean and variance matched
    dof = fit_student_t_dof(sample)
    # Then it recovers the truth, and the likelihood is lower on either side
    assert dof == pytest.approx(5.0, rel=0.15)
    z = (sample - sample.mean()) / sample.std(ddof=1)

    def loglik(nu: float) -> float:
        return float(stats.t.logpdf(z, nu, scale=math.sqrt((nu - 2) / nu)).sum())

    assert loglik(dof) >= max(loglik(dof * 0.97), loglik(dof * 1.03))


def test_student_t_fits_dof_when_not_given() -> None:
    risk = tail_risk(WEIGHTS, _bundled(), method="student_t")
    assert risk.parameters["dof_fitted"] is True
    assert 2.0 < risk.parameters["dof"] < 10.0  # daily stock returns are fat-tailed
    assert risk.cvar > risk.var > 0


def test_cornish_fisher_reduces_to_normal_without_skew_or_excess_kurtosis() -> None:
    for level in (0.9, 0.95, 0.99):
        assert cornish_fisher_var_cvar(0.001, 0.02, 0.0, 0.0, level) == pytest.approx(
            normal_var_cvar(0.001, 0.02, level), rel=1e-14
        )


@pytest.mark.parametrize(("skew", "kurt"), [(-0.5, 3.0), (0.3, 1.0), (-1.0, 6.0)])
def test_cornish_fisher_formula_and_tail_mean(skew: float, kurt: float) -> None:
    mean, std, level = 0.0004, 0.012, 0.975
    var, cvar = cornish_fisher_var_cvar(mean, std, skew, kurt, level)
    # Then VaR follows the expansion written out by hand at z = Phi^-1(0.025)
    z = stats.norm.ppf(1 - level)
    by_hand = z + (z**2 - 1) * skew / 6 + (z**3 - 3 * z) * kurt / 24 - (2 * z**3 - 5 * z) * skew**2 / 36
    assert var == pytest.approx(-(mean + std * by_hand), rel=1e-13)
    # And CVaR is the average of the expanded quantiles over the tail (numerical integration over u in (0, 0.025))
    integral, _ = integrate.quad(
        lambda u: -(mean + std * cornish_fisher_quantile(stats.norm.ppf(u), skew, kurt)), 0, 1 - level, limit=200
    )
    assert cvar == pytest.approx(integral / (1 - level), rel=1e-8)


def test_cornish_fisher_on_data_uses_iid_cumulants_over_the_horizon() -> None:
    returns = _bundled()
    portfolio = returns[ASSETS] @ WEIGHTS
    skew, kurt = portfolio.skew(), portfolio.kurt()  # pandas' bias-corrected estimates
    risk = tail_risk(WEIGHTS, returns, level=0.99, horizon=4, method="cornish_fisher")
    expected = cornish_fisher_var_cvar(4 * portfolio.mean(), 2 * portfolio.std(ddof=1), skew / 2, kurt / 4, 0.99)
    assert (risk.var, risk.cvar) == pytest.approx(expected, rel=1e-12)


# --- Monte Carlo sample ----------------------------------------------------------------------------------------------


def test_monte_carlo_var_agrees_with_the_normal_closed_form_within_three_standard_errors() -> None:
    # Given 200,000 Normal horizon returns
    n, level, mean, std = 200_000, 0.99, 0.001, 0.03
    sample = np.random.default_rng(11).normal(mean, std, n)
    # When VaR is read off the sample
    risk = monte_carlo_tail_risk(sample, level=level, horizon=10)
    # Then it is within 3 SE of the closed form: SE = sqrt(a (1 - a)) / (n f(q))
    exact_var, _ = normal_var_cvar(mean, std, level)
    se = math.sqrt(level * (1 - level) / n) / (stats.norm.pdf(stats.norm.ppf(level)) / std)
    assert 0 < se < 1e-3
    assert abs(risk.var - exact_var) < 3 * se
    assert risk.horizon == 10 and risk.method == "monte_carlo"


def test_monte_carlo_asset_sample_equals_its_portfolio_sample() -> None:
    rng = np.random.default_rng(5)
    scenarios = pd.DataFrame(rng.normal(0, 0.02, (5_000, 4)), columns=ASSETS)
    by_assets = monte_carlo_tail_risk(scenarios.sample(frac=1.0, random_state=1), weights=WEIGHTS, level=0.95)
    by_portfolio = monte_carlo_tail_risk((scenarios @ WEIGHTS).to_numpy(), level=0.95)
    assert by_assets.var == pytest.approx(by_portfolio.var, abs=1e-15)
    assert by_assets.cvar == pytest.approx(by_portfolio.cvar, abs=1e-15)


# --- volatility, benchmark statistics ---------------------------------------------------------------------------------


def test_volatility_tracking_error_and_beta() -> None:
    returns = _bundled()
    portfolio = portfolio_returns(WEIGHTS, returns)
    index = returns["^GSPC"]
    assert annualized_volatility(portfolio) == pytest.approx(np.std(portfolio, ddof=1) * math.sqrt(252), rel=1e-13)
    assert tracking_error(portfolio, index) == pytest.approx((portfolio - index).std() * math.sqrt(252), rel=1e-13)
    slope = np.polyfit(index.to_numpy(), portfolio.to_numpy(), 1)[0]  # OLS slope: an independent beta
    assert beta(portfolio, index) == pytest.approx(slope, rel=1e-10)


# --- contributions (Euler) --------------------------------------------------------------------------------------------


def test_volatility_and_normal_contributions_sum_to_the_total_and_match_finite_differences() -> None:
    returns = _bundled()[ASSETS]
    cov, mean = returns.cov(), returns.mean()
    vol = volatility_contributions(WEIGHTS, cov)
    assert vol.component.sum() == pytest.approx(vol.total, abs=1e-12)
    assert vol.total == pytest.approx(annualized_volatility(returns @ WEIGHTS), rel=1e-12)
    for measure in ("var", "cvar"):
        parts = normal_contributions(WEIGHTS, cov, mean=mean, level=0.99, horizon=10, measure=measure)
        assert parts.component.sum() == pytest.approx(parts.total, abs=1e-12)
        reference = tail_risk(WEIGHTS, returns, level=0.99, horizon=10, method="normal")
        assert parts.total == pytest.approx(getattr(reference, measure), rel=1e-12)
        assert parts.percent.sum() == pytest.approx(1.0, abs=1e-12)
        # The marginal is the gradient: central differences of the total in each weight
        for asset in ASSETS:
            bump = pd.Series(0.0, index=WEIGHTS.index)
            bump[asset] = 1e-6
            up = normal_contributions(WEIGHTS + bump, cov, mean=mean, level=0.99, horizon=10, measure=measure)
            down = normal_contributions(WEIGHTS - bump, cov, mean=mean, level=0.99, horizon=10, measure=measure)
            assert parts.marginal[asset] == pytest.approx((up.total - down.total) / 2e-6, rel=1e-6)


def test_historical_cvar_components_are_each_assets_average_tail_loss() -> None:
    # Given 1,000 days (the tail at 0.95 holds exactly 50 scenarios)
    returns = _bundled()[ASSETS].iloc[-1000:]
    parts = scenario_cvar_contributions(WEIGHTS, returns, level=0.95)
    # Then the components sum to the historical CVaR
    assert parts.component.sum() == pytest.approx(tail_risk(WEIGHTS, returns, level=0.95).cvar, abs=1e-12)
    # And each is the asset's mean loss over the 50 worst portfolio days
    worst = np.argsort(returns.to_numpy() @ WEIGHTS.to_numpy())[:50]
    by_hand = -(returns.iloc[worst] * WEIGHTS).mean()
    assert list(parts.component.index) == list(by_hand.index)
    np.testing.assert_allclose(parts.component.to_numpy(), by_hand.to_numpy(), rtol=0, atol=1e-15)


# --- drawdown ---------------------------------------------------------------------------------------------------------


def test_drawdown_on_a_hand_built_path_that_recovers() -> None:
    # Given wealth 1 -> 1.25 -> 0.625 -> 0.9375 -> 1.40625 -> 1.0546875 -> 1.0546875 (exact in binary)
    dates = pd.bdate_range("2024-01-01", periods=6)
    stats_ = drawdown(pd.Series([0.25, -0.5, 0.5, 0.5, -0.25, 0.0], index=dates))
    # Then the maximum drawdown is 50 %, from the peak on day 0 to the trough on day 1, recovered on day 3
    assert stats_.maximum == 0.5
    assert (stats_.peak_date, stats_.trough_date, stats_.recovery_date) == (dates[0], dates[1], dates[3])
    assert stats_.duration == 3 and stats_.recovered
    # And the current drawdown is from the new peak 1.40625: 25 %
    assert stats_.current == 0.25
    np.testing.assert_array_equal(stats_.drawdown.to_numpy(), [0.0, 0.5, 0.25, 0.0, 0.25, 0.25])


def test_drawdown_from_the_start_not_recovered_runs_to_now() -> None:
    dates = pd.bdate_range("2024-01-01", periods=3)
    stats_ = drawdown(pd.Series([-0.5, 0.5, 0.0], index=dates))
    assert stats_.maximum == 0.5 and stats_.current == 0.25
    assert stats_.peak_date is None  # the peak is the starting value
    assert stats_.trough_date == dates[0] and stats_.recovery_date is None
    assert stats_.duration == 3 and not stats_.recovered


def test_drawdown_of_a_rising_path_is_zero() -> None:
    stats_ = drawdown(pd.Series([0.01, 0.02], index=pd.bdate_range("2024-01-01", periods=2)))
    assert stats_.maximum == 0.0 and stats_.duration == 0 and stats_.recovered
    assert stats_.to_dict()["peak_date"] is None


# --- the report -------------------------------------------------------------------------------------------------------


def test_risk_report_collects_every_measure_and_is_json_ready() -> None:
    returns = _bundled()
    rng = np.random.default_rng(2)
    simulated = pd.DataFrame(rng.normal(0.0, 0.03, (4_000, 4)), columns=ASSETS)
    report = risk_report(WEIGHTS, returns, horizon=5, benchmark=returns["^GSPC"], monte_carlo=simulated, dof=4.0)
    assert report.methods == ("historical", "normal", "student_t", "cornish_fisher", "monte_carlo")
    for method in ("historical", "normal", "student_t", "cornish_fisher"):
        for level in (0.95, 0.99):
            alone = tail_risk(WEIGHTS, returns, level=level, horizon=5, method=method, dof=4.0)
            assert report.var(method, level) == pytest.approx(alone.var, rel=1e-14)
            assert report.cvar(method, level) == pytest.approx(alone.cvar, rel=1e-14)
    assert report.var("monte_carlo", 0.99) == monte_carlo_tail_risk(simulated, weights=WEIGHTS, level=0.99).var
    assert report.contribution("cvar_historical", 0.95).total == pytest.approx(report.cvar("historical", 0.95))
    assert report.contribution("cvar_monte_carlo", 0.99).total == pytest.approx(report.cvar("monte_carlo", 0.99))
    assert report.beta == pytest.approx(beta(portfolio_returns(WEIGHTS, returns), returns["^GSPC"]), rel=1e-14)
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["var"]["normal"]["0.95"] == pytest.approx(report.var("normal", 0.95))
    assert payload["drawdown"]["maximum"] == pytest.approx(report.drawdown.maximum)
    assert "drawdown" in report.to_dict(include_series=True)["drawdown"]


def test_value_and_conditional_value_at_risk_shortcuts() -> None:
    returns = _bundled()
    full = tail_risk(WEIGHTS, returns, level=0.99, method="cornish_fisher")
    assert value_at_risk(WEIGHTS, returns, level=0.99, method="cornish_fisher") == full.var
    assert conditional_value_at_risk(WEIGHTS, returns, level=0.99, method="cornish_fisher") == full.cvar


# --- typed errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (pd.Series({"AAPL": float("nan"), "JPM": 1.0}), "NaN"),
        (pd.Series({"AAPL": 0.5, "JPM": 0.4}), r"sum to 0\.9"),
        (pd.Series({"AAPL": 0.5, "TSLA": 0.5}), "TSLA"),
        (pd.Series(dtype="float64"), "empty"),
        ([0.5, 0.5], "list"),
    ],
)
def test_bad_weights_raise_risk_input_error(weights: object, match: str) -> None:
    with pytest.raises(RiskInputError, match=match):
        tail_risk(weights, _bundled())  # type: ignore[arg-type]


@pytest.mark.parametrize("horizon", [0, -1, 1.5, True])
def test_bad_horizon_raises(horizon: object) -> None:
    with pytest.raises(RiskInputError, match="horizon"):
        tail_risk(WEIGHTS, _bundled(), horizon=horizon)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [0.0, 1.0, 95, -0.1, float("nan"), "x"])
def test_level_outside_the_open_unit_interval_raises(level: object) -> None:
    with pytest.raises(RiskInputError, match="between 0 and 1"):
        tail_risk(WEIGHTS, _bundled(), level=level)  # type: ignore[arg-type]


def test_other_bad_inputs_raise_typed_errors() -> None:
    returns = _bundled()
    with pytest.raises(RiskInputError, match="'garch'"):
        tail_risk(WEIGHTS, returns, method="garch")
    with pytest.raises(RiskInputError, match="'median'"):
        tail_risk(WEIGHTS, returns, quantile_method="median")
    with pytest.raises(RiskInputError, match="> 2"):
        tail_risk(WEIGHTS, returns, method="student_t", dof=2.0)
    gappy = returns.copy()
    gappy.iloc[3, 0] = np.nan
    with pytest.raises(RiskInputError, match="NaN"):
        tail_risk(WEIGHTS, gappy)
    with pytest.raises(RiskInputError, match="increasing"):
        tail_risk(WEIGHTS, returns.iloc[::-1])
    with pytest.raises(RiskError, match="at least 30"):
        tail_risk(WEIGHTS, returns.iloc[:10], horizon=30)
    with pytest.raises(RiskInputError, match="no finite value"):
        tracking_error(portfolio_returns(WEIGHTS, returns), returns["^GSPC"].iloc[:-5])
    with pytest.raises(RiskInputError, match="needs weights"):
        monte_carlo_tail_risk(returns[ASSETS].to_numpy())
    with pytest.raises(RiskInputError, match="monte_carlo"):
        risk_report(WEIGHTS, returns, methods=("historical", "monte_carlo"))
    with pytest.raises(RiskInputError, match="levels"):
        risk_report(WEIGHTS, returns, levels=(0.95, 1.5))
    with pytest.raises(RiskInputError, match="Series"):
        drawdown(returns[ASSETS])  # type: ignore[arg-type]
    with pytest.raises(RiskError, match="variance"):
        volatility_contributions(pd.Series({"AAPL": 0.0, "JPM": 0.0}), returns.cov())
    with pytest.raises(RiskInputError, match="square"):
        volatility_contributions(WEIGHTS, returns.cov().iloc[:, :2])


def _small() -> pd.DataFrame:
    return _bundled()[ASSETS].iloc[:50]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: tail_risk(pd.Series([0.5, 0.5], index=["AAPL", "AAPL"]), _small()), RiskInputError, "more than once"),
        (lambda: tail_risk(pd.Series({"AAPL": "half", "JPM": 0.5}), _small()), RiskInputError, "non-numeric"),
        (lambda: tail_risk(WEIGHTS, _small().to_numpy()), RiskInputError, "ndarray"),
        (lambda: tail_risk(WEIGHTS, _small().assign(KO=-1.0)), RiskInputError, "<= -1"),
        (lambda: tail_risk(WEIGHTS, _small(), level="0.95"), RiskInputError, "'0.95'"),
        (lambda: tail_risk(WEIGHTS, _small(), horizon="5"), RiskInputError, "'5'"),
        (lambda: tail_risk(WEIGHTS, _small().iloc[:2], method="cornish_fisher"), RiskError, "at least 4"),
        (lambda: monte_carlo_tail_risk(np.array([0.01, np.nan])), RiskInputError, "finite"),
        (lambda: monte_carlo_tail_risk(np.array([])), RiskInputError, "non-empty"),
        (lambda: annualized_volatility(pd.Series([0.01])), RiskError, "need >= 2"),
        (lambda: annualized_volatility(pd.Series([0.01, np.nan])), RiskInputError, "NaN"),
        (lambda: annualized_volatility([0.01, 0.02]), RiskInputError, "list"),  # type: ignore[arg-type]
        (lambda: beta(pd.Series([0.01, 0.02]), pd.Series([0.0, 0.0])), RiskError, "constant"),
        (lambda: beta(pd.Series([0.01, 0.02]), [0.0, 0.0]), RiskInputError, "list"),  # type: ignore[arg-type]
        (lambda: fit_student_t_dof(np.array([0.01, 0.02])), RiskError, ">= 3"),
        (lambda: fit_student_t_dof(np.zeros(10)), RiskError, "constant"),
        (lambda: empirical_var_cvar(np.array([]), 0.95), RiskError, "empty"),
        (lambda: drawdown(pd.Series([0.01, np.nan])), RiskInputError, "finite"),
        (lambda: drawdown(pd.Series(dtype="float64")), RiskError, "empty"),
        (lambda: normal_contributions(WEIGHTS, _small().cov(), measure="es"), RiskInputError, "'es'"),
        (lambda: normal_contributions(WEIGHTS, _small().cov(), mean={"AAPL": 0.0}), RiskInputError, "JPM"),
        (
            lambda: normal_contributions(WEIGHTS, _small().cov(), mean=_small().mean() * np.nan),
            RiskInputError,
            "NaN",
        ),
        (
            lambda: volatility_contributions(WEIGHTS, _small().cov() + np.triu(np.ones((4, 4)), 1)),
            RiskInputError,
            "symm",
        ),
        (lambda: scenario_cvar_contributions(WEIGHTS, np.zeros((5, 3))), RiskInputError, r"\(n_scenarios, 4\)"),
        (lambda: scenario_cvar_contributions(WEIGHTS, np.full((5, 4), np.nan)), RiskInputError, "NaN"),
        (lambda: scenario_cvar_contributions(WEIGHTS, np.zeros((0, 4))), RiskError, "No scenarios"),
        (lambda: risk_report(WEIGHTS, _small(), levels=()), RiskInputError, "empty"),
        (lambda: risk_report(WEIGHTS, _small(), methods=("garch",)), RiskInputError, "garch"),
        (lambda: risk_report(WEIGHTS, _small(), methods=("normal",)).var("historical", 0.95), RiskInputError, "no"),
        (lambda: risk_report(WEIGHTS, _small(), methods=("normal",)).contribution("beta"), RiskInputError, "beta"),
    ],
)
def test_every_other_error_path_is_typed(call: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]


def test_a_budget_other_than_one() -> None:
    # Given half the capital in the assets (the rest in cash) and budget=0.5
    half = WEIGHTS / 2
    returns = _bundled()
    # Then VaR halves exactly, and the default budget refuses the weights
    assert tail_risk(half, returns, budget=0.5).var == pytest.approx(tail_risk(WEIGHTS, returns).var / 2, rel=1e-14)
    assert tail_risk(half, returns, budget=None).var == pytest.approx(tail_risk(WEIGHTS, returns).var / 2, rel=1e-14)
    with pytest.raises(RiskInputError, match=r"budget is 1\.0"):
        tail_risk(half, returns)
