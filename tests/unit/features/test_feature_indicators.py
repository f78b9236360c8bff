"""Each indicator against an independent computation: closed forms, published tables, plain loops."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.features import indicators as ind


def frame(*columns: list[float] | np.ndarray, names: str = "abcdefgh") -> pd.DataFrame:
    return pd.DataFrame({names[i]: np.asarray(c, dtype="float64") for i, c in enumerate(columns)})


def walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))


# ---------------------------------------------------------------------------------------------- reference loops
def wilder_loop(x: list[float], n: int) -> list[float]:
    """Wilder's smoothing as he wrote it: the first value is the mean of n, then (prev * (n - 1) + x) / n."""
    out = [math.nan] * len(x)
    valid = [i for i, v in enumerate(x) if not math.isnan(v)]
    start = valid[0]
    seed_at = start + n - 1
    value = sum(x[start : seed_at + 1]) / n
    out[seed_at] = value
    for i in range(seed_at + 1, len(x)):
        value = (value * (n - 1) + x[i]) / n
        out[i] = value
    return out


def ema_loop(x: list[float], span: int) -> list[float]:
    alpha = 2.0 / (span + 1.0)
    out = [x[0]]
    for v in x[1:]:
        out.append(alpha * v + (1 - alpha) * out[-1])
    return out


# ---------------------------------------------------------------------------------------------- returns, vol, momentum
def test_returns_closed_form() -> None:
    prices = frame([100.0, 110.0, 99.0])
    np.testing.assert_allclose(ind.simple_returns(prices)["a"].iloc[1:], [0.10, -0.10])
    np.testing.assert_allclose(ind.log_returns(prices)["a"].iloc[1:], [math.log(1.1), math.log(0.9)])
    assert np.isnan(ind.simple_returns(prices)["a"].iloc[0])


def test_rolling_volatility_matches_numpy_std() -> None:
    prices = walk(80, 1)
    logret = ind.log_returns(frame(prices))
    vol = ind.rolling_volatility(logret, 21)["a"]
    r = np.diff(np.log(prices))
    for t in range(21, 80):
        expected = np.std(r[t - 21 : t], ddof=1) * math.sqrt(252)
        assert vol.iloc[t] == pytest.approx(expected, rel=1e-12)
    assert vol.iloc[:21].isna().all()  # 21 returns need 22 prices


def test_ewma_volatility_matches_explicit_weights() -> None:
    prices = walk(60, 2)
    logret = ind.log_returns(frame(prices))
    vol = ind.ewma_volatility(logret, halflife=10, min_periods=10)["a"]
    r = np.diff(np.log(prices))
    decay = 0.5 ** (1 / 10)  # halflife 10: weights halve every 10 bars
    for t in range(len(r)):
        w = decay ** np.arange(t, -1, -1)
        expected = math.sqrt(np.sum(w * r[: t + 1] ** 2) / np.sum(w) * 252)
        if t + 1 < 10:
            assert np.isnan(vol.iloc[t + 1])
        else:
            assert vol.iloc[t + 1] == pytest.approx(expected, rel=1e-12)


def test_momentum_skips_the_recent_month() -> None:
    prices = frame(np.arange(1.0, 301.0))
    mom = ind.momentum(prices, 252, 21)["a"]
    assert mom.iloc[252] == pytest.approx((253 - 21) / 1 - 1)
    assert mom.iloc[299] == pytest.approx((300 - 21) / (300 - 252) - 1)
    assert mom.iloc[:252].isna().all()


# ---------------------------------------------------------------------------------------------- RSI
def test_rsi_of_monotone_series_is_100_or_0_and_flat_is_50() -> None:
    rsi = ind.rsi(frame(np.arange(1.0, 31.0), np.arange(30.0, 0.0, -1.0), np.full(30, 7.0)), 14)
    assert (rsi["a"].iloc[14:] == 100.0).all()
    assert (rsi["b"].iloc[14:] == 0.0).all()
    assert (rsi["c"].iloc[14:] == 50.0).all()
    assert rsi.iloc[:14].isna().all().all()


# J. W. Wilder's RSI worked example as published by StockCharts ("Relative Strength Index", ChartSchool):
# 33 closes and the 14-day RSI from the 15th close. Their spreadsheet rounds the averages to 2 decimals,
# hence the tolerance; the loop reference below checks the smoothing itself exactly.
TEXTBOOK_CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28,
    46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45, 45.78, 45.35, 44.03, 44.18, 44.22, 44.57,
    43.42, 42.66, 43.13,
]  # fmt: skip
TEXTBOOK_RSI = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99, 41.46, 41.87,
    45.46, 37.30, 33.08, 37.77,
]  # fmt: skip


def test_rsi_on_the_textbook_sequence() -> None:
    rsi = ind.rsi(frame(TEXTBOOK_CLOSES), 14)["a"]
    np.testing.assert_allclose(rsi.iloc[14:], TEXTBOOK_RSI, atol=0.1)
    # exact against Wilder's recursion written out
    changes = np.diff(TEXTBOOK_CLOSES)
    gains = wilder_loop([math.nan, *np.maximum(changes, 0.0)], 14)
    losses = wilder_loop([math.nan, *np.maximum(-changes, 0.0)], 14)
    expected = [100 - 100 / (1 + g / lo) for g, lo in zip(gains[14:], losses[14:], strict=True)]
    np.testing.assert_allclose(rsi.iloc[14:], expected, rtol=1e-12)


def test_wilder_smoothing_with_a_later_start() -> None:
    x = [math.nan] * 5 + list(walk(40, 3))
    got = ind.wilder_smooth(frame(x, x[5:] + [math.nan] * 5), 7)
    np.testing.assert_allclose(got["a"], wilder_loop(x, 7), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got["b"].iloc[:40], wilder_loop(x[5:], 7), rtol=1e-12, equal_nan=True)


# ---------------------------------------------------------------------------------------------- MACD, Bollinger
def test_macd_from_explicit_emas() -> None:
    prices = list(walk(80, 4))
    line, signal, hist = (s["a"] for s in ind.macd(frame(prices), 12, 26, 9))
    expected_line = np.subtract(ema_loop(prices, 12), ema_loop(prices, 26))
    expected_signal = ema_loop(list(expected_line[25:]), 9)
    assert line.iloc[:25].isna().all() and signal.iloc[:33].isna().all()
    np.testing.assert_allclose(line.iloc[25:], expected_line[25:], rtol=1e-12)
    np.testing.assert_allclose(signal.iloc[33:], expected_signal[8:], rtol=1e-12)
    np.testing.assert_allclose(
        hist.iloc[33:], expected_line[33:] - np.asarray(expected_signal[8:]), rtol=1e-9, atol=1e-12
    )


def test_bollinger_pct_b_and_bandwidth() -> None:
    prices = walk(60, 5)
    pct_b, width = (s["a"] for s in ind.bollinger(frame(prices), 20, 2.0))
    for t in range(19, 60):
        window = prices[t - 19 : t + 1]
        mid, sd = window.mean(), window.std(ddof=0)
        lower, upper = mid - 2 * sd, mid + 2 * sd
        assert pct_b.iloc[t] == pytest.approx((prices[t] - lower) / (upper - lower), rel=1e-9)
        assert width.iloc[t] == pytest.approx((upper - lower) / mid, rel=1e-9)
    assert pct_b.iloc[:19].isna().all()
    # a flat window has no bands: NaN rather than a division by zero
    assert ind.bollinger(frame(np.full(25, 3.0)), 20, 2.0)[0]["a"].isna().all()


# ---------------------------------------------------------------------------------------------- ATR
def test_atr_on_hand_built_ohlc() -> None:
    high = [10.0, 11.0, 12.5, 11.0, 11.5, 13.0]
    low = [9.0, 9.5, 11.0, 9.0, 10.5, 11.5]
    close = [9.5, 10.5, 12.0, 9.5, 11.0, 12.5]
    # true ranges by hand: H-L on day 0; then max(H-L, |H-Cprev|, |L-Cprev|)
    expected_tr = [1.0, 1.5, 2.0, 3.0, 2.0, 2.0]
    tr = ind.true_range(frame(high), frame(low), frame(close))["a"]
    np.testing.assert_allclose(tr, expected_tr)
    atr = ind.atr(frame(high), frame(low), frame(close), 3)["a"]
    first = (1.0 + 1.5 + 2.0) / 3
    expected = [math.nan, math.nan, first, (first * 2 + 3.0) / 3]
    expected += [(expected[-1] * 2 + 2.0) / 3]
    expected += [(expected[-1] * 2 + 2.0) / 3]
    np.testing.assert_allclose(atr, expected, rtol=1e-12, equal_nan=True)


# ---------------------------------------------------------------------------------------------- drawdown, beta, ranks
def test_drawdown_closed_form() -> None:
    np.testing.assert_allclose(ind.drawdown(frame([1.0, 2.0, 1.0, 3.0]))["a"], [0.0, 0.0, -0.5, 0.0])


def test_beta_and_correlation_against_numpy() -> None:
    rng = np.random.default_rng(6)
    market = rng.normal(0, 0.01, 120)
    stock = 1.3 * market + rng.normal(0, 0.01, 120)
    exact = 0.7 * market + 0.002  # a perfect linear relation: beta 0.7, corr 1
    returns = pd.DataFrame({"S": stock, "E": exact, "M": market})
    beta, corr = ind.rolling_beta_corr(returns, returns["M"], 30)
    for t in range(29, 120):
        x, m = stock[t - 29 : t + 1], market[t - 29 : t + 1]
        assert beta["S"].iloc[t] == pytest.approx(np.cov(x, m)[0, 1] / np.var(m, ddof=1), rel=1e-9)
        assert corr["S"].iloc[t] == pytest.approx(np.corrcoef(x, m)[0, 1], rel=1e-9)
    np.testing.assert_allclose(beta["E"].iloc[29:], 0.7, rtol=1e-9)
    np.testing.assert_allclose(corr["E"].iloc[29:], 1.0, rtol=1e-9)
    assert (beta["M"].iloc[29:] == 1.0).all() and (corr["M"].iloc[29:] == 1.0).all()
    assert beta.iloc[:29].isna().all().all()


def test_cross_sectional_percentile_rank() -> None:
    values = pd.DataFrame({"A": [1.0, 3.0], "B": [2.0, np.nan], "C": [3.0, 1.0], "IDX": [9.0, 9.0]})
    ranks = ind.cross_sectional_rank(values, exclude=("IDX",))
    np.testing.assert_allclose(ranks.loc[0, ["A", "B", "C"]], [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(ranks.loc[1, ["A", "C"]], [1.0, 0.5])
    assert ranks["IDX"].isna().all() and np.isnan(ranks.loc[1, "B"])
