"""Out-of-sample analysis: date splits, per-window figures by hand, in-sample promises against known outcomes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.backtest import (
    BacktestResult,
    DecisionContext,
    EstimationWindow,
    in_vs_out_of_sample,
    run_backtest,
    train_test_split_dates,
    window_results,
)
from portfolio_engine.exceptions import DataError, EmptyDataError, SpecificationError

PPY = 252


def _hold(weights: dict[str, float]):
    target = pd.Series(weights)

    def policy(history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        return target

    return policy


# ---------------------------------------------------------------- train/test split


def test_a_test_fraction_keeps_the_last_dates_for_testing() -> None:
    # Given 10 business days
    index = pd.bdate_range("2024-01-01", periods=10)
    # When 30 % are held out
    train, test = train_test_split_dates(index, test_fraction=0.3)
    # Then the first 7 train, the last 3 test, in order and without overlap
    assert list(train) == list(index[:7]) and list(test) == list(index[7:])


def test_a_split_date_on_a_weekend_starts_the_test_on_the_next_trading_day() -> None:
    # Given business days and a Saturday split date
    index = pd.bdate_range("2024-01-01", periods=10)  # Mon 1 Jan .. Fri 12 Jan
    # When split there
    train, test = train_test_split_dates(index, split_date="2024-01-06")
    # Then the test starts on Monday 8 January
    assert test[0] == pd.Timestamp("2024-01-08") and train[-1] == pd.Timestamp("2024-01-05")
    assert len(train) + len(test) == 10


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"test_fraction": 0.3, "split_date": "2024-01-05"}, {"test_fraction": 1.0}, {"test_fraction": 0.01},
     {"split_date": "2023-01-01"}, {"split_date": "2030-01-01"}],
)  # fmt: skip
def test_bad_splits_raise_a_specification_error(kwargs: dict) -> None:
    # Given 10 dates; When the split is ambiguous or leaves a side empty; Then a SpecificationError
    with pytest.raises(SpecificationError):
        train_test_split_dates(pd.bdate_range("2024-01-01", periods=10), **kwargs)


def test_an_unsorted_index_is_a_data_error() -> None:
    index = pd.DatetimeIndex(["2024-01-03", "2024-01-02", "2024-01-04"])
    with pytest.raises(DataError):
        train_test_split_dates(index, test_fraction=0.5)


# ---------------------------------------------------------------- per-window table


def _result(net: list[float], turnover: list[float], costs: float, start: str) -> BacktestResult:
    days = pd.bdate_range(start, periods=len(net))
    net_s = pd.Series(net, index=days)
    cost_s = pd.Series(0.0, index=days)
    cost_s.iloc[0] = costs
    decisions = days[: len(turnover)]
    weights = pd.DataFrame({"a": [1.0] * len(turnover)}, index=decisions)
    return BacktestResult(
        gross_returns=net_s + cost_s, costs=cost_s, net_returns=net_s, cash=pd.Series(0.0, index=days),
        weights=weights, pre_trade_weights=weights, turnover=pd.Series(turnover, index=decisions),
        decision_dates=decisions,
    )  # fmt: skip


def test_the_per_window_table_matches_hand_computed_figures() -> None:
    # Given two windows with hand-picked net returns, turnover and costs
    first = _result([0.10, -0.10, 0.05], [1.0, 0.4], 0.001, "2024-01-01")
    second = _result([0.02, 0.02], [0.2], 0.0, "2024-02-01")
    # When tabulated
    table = window_results([first, second], names=["w1", "w2"])
    # Then each row holds the compounded return, CAGR, volatility, Sharpe, drawdown, turnover and costs
    r = np.array([0.10, -0.10, 0.05])
    row = table.loc["w1"]
    assert row["days"] == 3 and row["start"] == pd.Timestamp("2024-01-01")
    assert row["total return"] == pytest.approx(1.1 * 0.9 * 1.05 - 1.0, abs=1e-14)  # 0.0395
    assert row["cagr"] == pytest.approx(1.0395 ** (PPY / 3) - 1.0, rel=1e-12)
    sd = math.sqrt(((r - r.mean()) ** 2).sum() / 2)
    assert row["volatility"] == pytest.approx(sd * math.sqrt(PPY), rel=1e-12)
    assert row["sharpe"] == pytest.approx(r.mean() / sd * math.sqrt(PPY), rel=1e-12)
    assert row["max drawdown"] == pytest.approx(0.10, abs=1e-14)  # from 1.10 to 0.99
    assert row["turnover"] == pytest.approx(1.4) and row["costs"] == pytest.approx(0.001)
    # And the constant window has no volatility, an undefined Sharpe and no drawdown
    row = table.loc["w2"]
    assert row["total return"] == pytest.approx(1.02**2 - 1.0)
    assert row["volatility"] == pytest.approx(0.0, abs=1e-15) and math.isnan(row["sharpe"])
    assert row["max drawdown"] == 0.0 and row["turnover"] == pytest.approx(0.2)


def test_the_per_window_table_rejects_no_windows_and_mismatched_names() -> None:
    with pytest.raises(EmptyDataError):
        window_results([])
    with pytest.raises(SpecificationError):
        window_results([_result([0.01, 0.02], [1.0], 0.0, "2024-01-01")], names=["a", "b"])


# ---------------------------------------------------------------- in-sample vs out-of-sample

S1, S2, M1, M2 = 0.01, 0.03, 0.001, 0.0002
BREAK = 23


def _two_regimes() -> pd.DataFrame:
    """One asset: ``m + s (-1)^t`` with (m, s) = (M1, S1) before row BREAK and (M2, S2) from it."""
    t = np.arange(47)
    calm = t < BREAK
    values = np.where(calm, M1, M2) + np.where(calm, S1, S2) * (-1.0) ** t
    return pd.DataFrame({"a": values}, index=pd.bdate_range("2024-01-01", periods=len(t)))


def test_in_vs_out_of_sample_recovers_a_known_volatility_jump() -> None:
    # Given one asset whose volatility triples (and drift falls) at row 23, held fully, decisions at rows 10, 22
    # and 34 on rolling 10-day windows: windows [0,10) [12,22) [24,34), holdings rows 11-22, 23-34, 35-46
    returns = _two_regimes()
    window = EstimationWindow("rolling", 10)
    decisions = returns.index[[10, 22, 34]]
    result = run_backtest(returns, _hold({"a": 1.0}), decisions, window=window)
    # When in-sample promises are compared with realised holding periods
    analysis = in_vs_out_of_sample(result, returns, window=window)
    frame = analysis.by_decision
    # Then in sample each window's even count of alternating returns has mean m and sd s sqrt(10/9)
    root = math.sqrt(PPY)
    is_vol = np.array([S1, S1, S2]) * math.sqrt(10 / 9) * root
    oos_vol = np.array([S1, S2, S2]) * math.sqrt(12 / 11) * root
    np.testing.assert_allclose(frame["in-sample volatility"], is_vol, rtol=1e-9)
    np.testing.assert_allclose(frame["in-sample return"], np.array([M1, M1, M2]) * PPY, rtol=1e-9)
    # And out of sample the 12 held days give mean m and sd s sqrt(12/11)
    np.testing.assert_allclose(frame["out-of-sample volatility"], oos_vol, rtol=1e-9)
    np.testing.assert_allclose(frame["out-of-sample return"], np.array([M1, M2, M2]) * PPY, rtol=1e-9)
    assert list(frame["holding days"]) == [12, 12, 12]
    assert list(frame["window start"]) == list(returns.index[[0, 12, 24]])
    # And the summary: volatility ratio c (2 + S2/S1) / 3 with c = sqrt(12/11)/sqrt(10/9), promise kept 2 of 3
    c = math.sqrt(12 / 11) / math.sqrt(10 / 9)
    summary = analysis.summary()
    assert summary.loc["volatility", "mean ratio"] == pytest.approx(c * (2 + S2 / S1) / 3, rel=1e-9)
    assert summary.loc["volatility", "median ratio"] == pytest.approx(c, rel=1e-9)
    assert summary.loc["volatility", "hit rate"] == pytest.approx(2 / 3)
    assert summary.loc["return", "mean ratio"] == pytest.approx((2 + M2 / M1) / 3, rel=1e-9)
    # And the Sharpe promise is kept where the regime did not change (fewer days, smaller sd), broken at the jump
    assert summary.loc["sharpe", "hit rate"] == pytest.approx(2 / 3)
    assert summary.loc["sharpe", "decisions"] == 3


def test_in_sample_figures_are_the_weights_on_the_window_and_out_of_sample_the_realised_returns() -> None:
    # Given a seeded three-asset market and an inverse-volatility policy with costs-free monthly decisions
    rng = np.random.default_rng(11)
    returns = pd.DataFrame(
        rng.normal([4e-4, 2e-4, 1e-4], [0.012, 0.008, 0.004], size=(200, 3)),
        index=pd.bdate_range("2023-01-02", periods=200), columns=["a", "b", "c"],
    )  # fmt: skip

    def inverse_vol(history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        inverse = 1.0 / history.std()
        return 0.9 * inverse / inverse.sum()

    window = EstimationWindow("rolling", 60)
    decisions = returns.index[[60, 81, 102, 123, 144, 165]]
    result = run_backtest(returns, inverse_vol, decisions, window=window)
    # When analysed on net returns
    frame = in_vs_out_of_sample(result, returns, window=window, realized="net").by_decision
    # Then decision 3's in-sample volatility is sqrt(w' Sigma w) of its window (numpy's covariance)
    w = result.weights.iloc[3].to_numpy()
    sigma = np.cov(returns.iloc[123 - 60 : 123].to_numpy(), rowvar=False)
    assert frame["in-sample volatility"].iloc[3] == pytest.approx(math.sqrt(w @ sigma @ w * PPY), rel=1e-10)
    # And its out-of-sample Sharpe is that of the net returns of rows 124..144
    held = result.net_returns.iloc[124 - 60 : 145 - 60].to_numpy()
    assert len(held) == 21
    assert frame["out-of-sample sharpe"].iloc[3] == pytest.approx(
        held.mean() / held.std(ddof=1) * math.sqrt(PPY), rel=1e-10
    )


def test_in_vs_out_of_sample_rejects_bad_inputs() -> None:
    returns = _two_regimes()
    window = EstimationWindow("rolling", 10)
    result = run_backtest(returns, _hold({"a": 1.0}), returns.index[[10, 22]], window=window)
    with pytest.raises(SpecificationError):
        in_vs_out_of_sample(result, returns, window=window, realized="after tax")
    with pytest.raises(DataError):
        in_vs_out_of_sample(result, returns.iloc[:20], window=window)
    with pytest.raises(DataError):
        in_vs_out_of_sample(result, returns.rename(columns={"a": "z"}), window=window)
    with pytest.raises(SpecificationError):  # a longer window than the backtest had history for
        in_vs_out_of_sample(result, returns, window=EstimationWindow("rolling", 15))
