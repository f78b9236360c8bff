"""Performance metrics against hand computations: constant series, a known drawdown path, exact mean/std, OLS by
numpy.polyfit, rolling windows by explicit loops, turnover and costs by hand, and every typed error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.backtest.metrics import (
    annualized_volatility,
    cagr,
    calmar_ratio,
    capm,
    costs_paid,
    downside_deviation,
    drawdown_stats,
    hit_rate,
    information_ratio,
    max_drawdown,
    metrics_table,
    performance_metrics,
    periodic_risk_free,
    realized_tail_risk,
    rolling_beta,
    rolling_sharpe,
    rolling_volatility,
    sharpe_ratio,
    sortino_ratio,
    tracking_error,
    trades_from_weights,
    transaction_costs,
    turnover,
)
from portfolio_engine.exceptions import DataError, EmptyDataError, SpecificationError
from portfolio_engine.risk import measures as risk_measures

DAYS = pd.bdate_range("2020-01-01", periods=504)


def exact_moments(mean: float, std: float, n: int = 504, seed: int = 0) -> pd.Series:
    """Given a seeded draw rescaled so that its sample mean and std (ddof=1) are exactly ``mean`` and ``std``."""
    z = np.random.default_rng(seed).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return pd.Series(mean + std * z, index=DAYS[:n], name="strategy")


def pair(seed: int = 1) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    bench = pd.Series(rng.normal(3e-4, 0.01, len(DAYS)), index=DAYS, name="bench")
    strat = pd.Series(1e-4 + 0.8 * bench.to_numpy() + rng.normal(0, 0.004, len(DAYS)), index=DAYS, name="strat")
    return strat, bench


def test_constant_returns_have_closed_form_growth_and_undefined_ratios() -> None:
    # Given 2 years of a constant daily return that compounds to +21%
    daily = 1.21 ** (1 / 504) - 1
    returns = pd.Series(daily, index=DAYS)
    # When / Then: CAGR is 10%, there is no risk, no drawdown; the ratios over zero are NaN
    assert cagr(returns) == pytest.approx(0.10, abs=1e-12)
    assert annualized_volatility(returns) < 1e-14
    assert math.isnan(sharpe_ratio(returns))
    assert max_drawdown(returns) == 0.0
    assert math.isnan(calmar_ratio(returns))
    assert math.isnan(sortino_ratio(returns))
    assert hit_rate(returns) == 1.0


def test_known_drawdown_path_gives_depth_dates_and_duration() -> None:
    # Given wealth 1.1, 0.55, 0.66, 1.32, 1.188: a 50% fall from day 0's peak, recovered on day 3
    dates = pd.bdate_range("2021-01-04", periods=5)
    returns = pd.Series([0.1, -0.5, 0.2, 1.0, -0.1], index=dates)
    # When
    stats = drawdown_stats(returns)
    # Then
    assert max_drawdown(returns) == pytest.approx(0.5, abs=1e-15)
    assert (stats.peak_date, stats.trough_date, stats.recovery_date) == (dates[0], dates[1], dates[3])
    assert stats.duration == 3
    expected_cagr = 1.188 ** (252 / 5) - 1
    assert calmar_ratio(returns) == pytest.approx(expected_cagr / 0.5, rel=1e-12)


def test_sharpe_of_a_series_with_exact_mean_and_std() -> None:
    # Given daily mean 5e-4 and std 1e-2 exactly
    returns = exact_moments(5e-4, 1e-2)
    rf_daily = 1.02 ** (1 / 252) - 1
    # Then: Sharpe = mean / std * sqrt(252), and with a 2% constant rate the mean drops by its daily equivalent
    assert sharpe_ratio(returns) == pytest.approx(0.05 * math.sqrt(252), rel=1e-12)
    assert sharpe_ratio(returns, risk_free=0.02) == pytest.approx((5e-4 - rf_daily) / 1e-2 * math.sqrt(252), rel=1e-12)
    assert annualized_volatility(returns) == pytest.approx(0.01 * math.sqrt(252), rel=1e-12)
    population = 0.01 * math.sqrt(503 / 504) * math.sqrt(252)
    assert annualized_volatility(returns, ddof=0) == pytest.approx(population, rel=1e-12)
    assert sharpe_ratio(returns, periods_per_year=12) == pytest.approx(0.05 * math.sqrt(12), rel=1e-12)


def test_risk_free_yield_series_is_forward_filled_and_de_annualised() -> None:
    # Given annual yields published on every other day only, starting before the returns
    returns = exact_moments(4e-4, 8e-3, n=40)
    quoted = pd.date_range(returns.index[0] - pd.Timedelta(days=3), returns.index[-1], freq="2D")
    yields = pd.Series(np.linspace(0.01, 0.05, len(quoted)), index=quoted)
    # When
    daily = periodic_risk_free(yields, returns.index)
    # Then: each return date takes the last yield on or before it, converted by (1 + y)^(1/252) - 1
    for date, value in zip(returns.index, daily, strict=True):
        last = yields[yields.index <= date].iloc[-1]
        assert value == pytest.approx((1 + last) ** (1 / 252) - 1, rel=1e-14)
    excess = returns.to_numpy() - daily
    expected = excess.mean() / excess.std(ddof=1) * math.sqrt(252)
    assert sharpe_ratio(returns, risk_free=yields) == pytest.approx(expected, rel=1e-12)


def test_sortino_uses_all_periods_in_the_downside_deviation() -> None:
    # Given a short series and an annual 0% target
    returns = pd.Series([0.02, -0.01, 0.005, -0.03, 0.01, 0.0], index=DAYS[:6])
    # When / Then: DD = sqrt((0.01^2 + 0.03^2) / 6) per period
    dd = math.sqrt((0.01**2 + 0.03**2) / 6)
    assert downside_deviation(returns, target=0.0) == pytest.approx(dd * math.sqrt(252), rel=1e-12)
    assert sortino_ratio(returns, target=0.0) == pytest.approx(returns.mean() / dd * math.sqrt(252), rel=1e-12)
    # and a 10% annual target shifts every shortfall by its daily equivalent
    t = 1.1 ** (1 / 252) - 1
    shortfall = np.minimum(returns.to_numpy() - t, 0.0)
    expected = (returns.mean() - t) / math.sqrt(np.mean(shortfall**2)) * math.sqrt(252)
    assert sortino_ratio(returns, target=0.10) == pytest.approx(expected, rel=1e-12)


def test_tracking_error_and_information_ratio_by_hand() -> None:
    strat, bench = pair()
    active = strat.to_numpy() - bench.to_numpy()
    te = active.std(ddof=1) * math.sqrt(252)
    assert tracking_error(strat, bench) == pytest.approx(te, rel=1e-12)
    assert tracking_error(strat, bench) == pytest.approx(risk_measures.tracking_error(strat, bench), rel=1e-12)
    assert information_ratio(strat, bench) == pytest.approx(active.mean() * 252 / te, rel=1e-12)


def test_capm_beta_and_alpha_match_numpy_polyfit_on_excess_returns() -> None:
    # Given a strategy with beta 0.8 on its benchmark and a 3% risk-free rate
    strat, bench = pair()
    rf = 1.03 ** (1 / 252) - 1
    # When
    fit = capm(strat, bench, risk_free=0.03)
    # Then
    slope, intercept = np.polyfit(bench.to_numpy() - rf, strat.to_numpy() - rf, 1)
    assert fit.beta == pytest.approx(slope, rel=1e-10)
    assert fit.alpha_per_period == pytest.approx(intercept, rel=1e-8)
    assert fit.alpha == pytest.approx(intercept * 252, rel=1e-8)
    assert fit.r_squared == pytest.approx(np.corrcoef(strat, bench)[0, 1] ** 2, rel=1e-10)
    assert fit.beta == pytest.approx(0.8, abs=0.05)


def test_hit_rate_counts_strict_gains_and_benchmark_beats() -> None:
    returns = pd.Series([0.01, 0.0, -0.02, 0.03], index=DAYS[:4])
    bench = pd.Series([0.02, -0.01, -0.03, 0.03], index=DAYS[:4])
    assert hit_rate(returns) == 0.5
    assert hit_rate(returns, bench) == 0.5


def test_realized_var_cvar_are_the_empirical_quantile_and_tail_mean() -> None:
    returns = exact_moments(0.0, 0.01, n=100, seed=3)
    losses = -returns.to_numpy()
    tail = realized_tail_risk(returns, level=0.95)
    assert tail.var == pytest.approx(np.quantile(losses, 0.95, method="inverted_cdf"), rel=1e-14)
    assert tail.cvar == pytest.approx(np.sort(losses)[-5:].mean(), rel=1e-14)


def test_rolling_metrics_equal_explicit_window_loops() -> None:
    strat, bench = pair(seed=5)
    window = 60
    vol, sharpe = rolling_volatility(strat, window), rolling_sharpe(strat, window, risk_free=0.02)
    beta = rolling_beta(strat, bench, window)
    assert vol.iloc[: window - 1].isna().all() and beta.iloc[: window - 1].isna().all()
    rf = 1.02 ** (1 / 252) - 1
    for end in (window - 1, 200, len(strat) - 1):
        s = strat.to_numpy()[end - window + 1 : end + 1]
        b = bench.to_numpy()[end - window + 1 : end + 1]
        assert vol.iloc[end] == pytest.approx(s.std(ddof=1) * math.sqrt(252), rel=1e-10)
        assert sharpe.iloc[end] == pytest.approx((s - rf).mean() / s.std(ddof=1) * math.sqrt(252), rel=1e-9)
        assert beta.iloc[end] == pytest.approx(np.polyfit(b, s, 1)[0], rel=1e-9)
    # and the whole-sample rolling value equals the static metric
    full = rolling_sharpe(strat, len(strat), risk_free=0.02).iloc[-1]
    assert full == pytest.approx(sharpe_ratio(strat, risk_free=0.02), rel=1e-10)


def test_turnover_and_costs_from_a_weights_history() -> None:
    # Given three rebalances of two assets, bought from cash first
    dates = pd.to_datetime(["2021-01-04", "2021-02-01", "2021-03-01"])
    weights = pd.DataFrame({"A": [0.6, 0.5, 0.5], "B": [0.4, 0.5, 0.5]}, index=dates)
    # When
    trades = trades_from_weights(weights)
    # Then: turnover 1.0 (initial), 0.2, 0.0; costs at 10 bps; one-sided halves it
    assert turnover(trades).tolist() == pytest.approx([1.0, 0.2, 0.0], abs=1e-15)
    assert turnover(trades, one_sided=True).tolist() == pytest.approx([0.5, 0.1, 0.0], abs=1e-15)
    costs = transaction_costs(trades, cost_bps=10)
    assert costs.tolist() == pytest.approx([1e-3, 2e-4, 0.0], abs=1e-15)
    assert costs_paid(costs) == pytest.approx(1.2e-3, abs=1e-15)
    assert costs_paid(costs, years=2.0) == pytest.approx(6e-4, abs=1e-15)
    # and drifted pre-trade weights give the exact trades
    drifted = pd.DataFrame({"A": [0.0, 0.55, 0.52], "B": [0.0, 0.45, 0.48]}, index=dates)
    assert turnover(trades_from_weights(weights, pre_trade=drifted)).tolist() == pytest.approx([1.0, 0.1, 0.04])


def test_metrics_table_compares_strategies_and_benchmarks() -> None:
    # Given two strategies, a benchmark and trades for one of them
    strat, bench = pair()
    other = exact_moments(2e-4, 0.012, seed=9).rename("other")
    trades = pd.DataFrame({"A": [1.0, 0.2]}, index=DAYS[[0, 100]])
    # When
    table = metrics_table(
        {"strat": strat, "other": other}, benchmark={"SPX": bench}, risk_free=0.01, trades_by_name={"strat": trades}
    )
    # Then: columns are strategies then the benchmark; rows are metrics; values are the single-metric functions
    assert list(table.columns) == ["strat", "other", "SPX"]
    assert table.loc["Sharpe", "other"] == pytest.approx(sharpe_ratio(other, risk_free=0.01), rel=1e-12)
    assert table.loc["beta vs SPX", "strat"] == pytest.approx(capm(strat, bench, risk_free=0.01).beta, rel=1e-12)
    assert table.loc["beta vs SPX", "SPX"] == pytest.approx(1.0, rel=1e-12)
    assert table.loc["tracking error vs SPX", "SPX"] == 0.0
    assert table.loc["turnover (annual)", "strat"] == pytest.approx(1.2 / 2.0, rel=1e-12)
    assert math.isnan(table.loc["turnover (annual)", "other"])
    assert table.loc["max drawdown", "strat"] == pytest.approx(max_drawdown(strat))
    single = performance_metrics(strat, benchmark=bench, risk_free=0.01)
    assert single["information ratio vs bench"] == pytest.approx(information_ratio(strat, bench), rel=1e-12)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: cagr(pd.Series([], dtype=float)), EmptyDataError),
        (lambda: sharpe_ratio(pd.Series([0.01, np.nan, 0.02], index=DAYS[:3])), DataError),
        (lambda: sharpe_ratio(pd.Series([0.01, -1.5], index=DAYS[:2])), DataError),
        (lambda: sharpe_ratio(pd.Series([0.01, 0.02], index=DAYS[[1, 0]])), DataError),
        (lambda: sharpe_ratio([0.01, 0.02]), DataError),  # type: ignore[arg-type]
        (lambda: annualized_volatility(pd.Series([0.01], index=DAYS[:1])), DataError),
        (lambda: tracking_error(pair()[0], pair()[1].iloc[10:]), DataError),
        (lambda: capm(pair()[0], pd.Series(0.001, index=DAYS)), DataError),
        (lambda: rolling_volatility(pair()[0], len(DAYS) + 1), DataError),
        (lambda: rolling_sharpe(pair()[0], 1), SpecificationError),
        (lambda: sharpe_ratio(pair()[0], periods_per_year=0), SpecificationError),
        (lambda: sharpe_ratio(pair()[0], ddof=2), SpecificationError),
        (lambda: sharpe_ratio(pair()[0], risk_free=pd.Series(5.2, index=DAYS)), DataError),
        (lambda: sharpe_ratio(pair()[0], risk_free=pd.Series(0.05, index=DAYS[5:])), DataError),
        (lambda: transaction_costs(pd.DataFrame({"A": [0.1]}), cost_bps=-1), SpecificationError),
        (lambda: turnover(pd.DataFrame({"A": [np.nan]})), DataError),
        (lambda: metrics_table({}), EmptyDataError),
    ],
)
def test_bad_inputs_raise_typed_errors_with_hints(call, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as caught:
        call()
    assert caught.value.hint
