"""Features: ``compute_features`` against a straightforward per-symbol pandas loop, same run.

Computes the default feature set on the bundled 20 stocks and ``^GSPC`` (21 symbols x 8,313 days,
the index with OHLC over 1999-2018) both ways, checks that they agree, and prints a table and, last,
exactly: ``RESULT features_seconds=<s> vs_naive_loop=<x>`` (s: best time of ``compute_features``;
x: how many times faster it is than the loop).

The baseline is what one writes first: for each symbol, its own bars as pandas Series, one indicator
after another; beta merged with the index on shared dates; ranks by a groupby over dates.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, INDEX_SYMBOL, BundledSource
from portfolio_engine.features import DEFAULT_FEATURE_SPEC, compute_features

SQRT_YEAR = np.sqrt(252)


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def wilder(x: pd.Series, n: int) -> pd.Series:
    """Wilder's smoothing of one series: mean of the first n values, then m += (x - m) / n."""
    seed = x.rolling(n, min_periods=n).mean()
    start = seed.first_valid_index()
    if start is None:
        return pd.Series(np.nan, index=x.index)
    seeded = x.copy()
    seeded[seeded.index < start] = np.nan
    seeded[start] = seed[start]
    out = seeded.ewm(alpha=1.0 / n, adjust=False).mean()
    out[out.index < start] = np.nan
    return out


def one_symbol(bars: pd.DataFrame) -> pd.DataFrame:
    """The per-symbol features of one symbol's bars (sorted by date), as Series on its dates."""
    p = bars["adj_close"]
    factor = p / bars["close"]
    high, low = bars["high"] * factor, bars["low"] * factor
    ret = p / p.shift(1) - 1.0
    logret = np.log(p).diff()
    out = pd.DataFrame(index=bars.index)
    out["ret_1d"], out["logret_1d"] = ret, logret
    out["vol_21d"] = logret.rolling(21).std() * SQRT_YEAR
    out["vol_63d"] = logret.rolling(63).std() * SQRT_YEAR
    out["ewmavol_hl20"] = np.sqrt((logret**2).ewm(halflife=20, min_periods=20).mean() * 252)
    out["mom_252_21"] = p.shift(21) / p.shift(252) - 1.0
    out["mom_63"] = p / p.shift(63) - 1.0
    change = p.diff()
    gain, loss = wilder(change.clip(lower=0.0), 14), wilder((-change).clip(lower=0.0), 14)
    rsi = 100.0 * gain / (gain + loss)
    out["rsi_14"] = rsi.mask((gain + loss == 0) & gain.notna(), 50.0)
    line = p.ewm(span=12, adjust=False, min_periods=26).mean() - p.ewm(span=26, adjust=False, min_periods=26).mean()
    signal = line.ewm(span=9, adjust=False, min_periods=9).mean()
    out["macd_12_26"], out["macd_signal_9"], out["macd_hist"] = line, signal, line - signal
    mid, sd = p.rolling(20).mean(), p.rolling(20).std(ddof=0)
    band = (4.0 * sd).where(sd > 0)
    out["bb_pctb_20"], out["bb_width_20"] = (p - (mid - 2.0 * sd)) / band, band / mid
    previous = p.shift(1)
    gaps = np.fmax((high - previous).abs(), (low - previous).abs())
    true_range = np.fmax(high - low, gaps).where((high - low).notna())
    out["atr_14"] = wilder(true_range, 14).where(true_range.notna())
    out["drawdown"] = p / p.cummax() - 1.0
    return out


def naive_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The default feature set, one symbol at a time."""
    index = bars[bars["symbol"] == INDEX_SYMBOL].set_index("date")["adj_close"]
    parts = []
    for symbol, group in bars.groupby("symbol", sort=True):
        group = group.sort_values("date").set_index("date")
        out = one_symbol(group)
        both = pd.concat([group["adj_close"], index], axis=1, join="inner", keys=["s", "m"])
        rs, rm = both["s"] / both["s"].shift(1) - 1.0, both["m"] / both["m"].shift(1) - 1.0
        for w in (63, 252):
            beta = rs.rolling(w).cov(rm) / rm.rolling(w).var()
            corr = rs.rolling(w).corr(rm)
            if symbol == INDEX_SYMBOL:
                beta, corr = beta.notna().map({True: 1.0, False: np.nan}), corr.notna().map({True: 1.0, False: np.nan})
            out[f"beta_{w}d"], out[f"corr_{w}d"] = beta.reindex(out.index), corr.reindex(out.index)
        out = out.where(group["adj_close"].notna(), np.nan)
        parts.append(out.reset_index().assign(symbol=symbol))
    frame = pd.concat(parts, ignore_index=True)
    stocks = frame["symbol"] != INDEX_SYMBOL
    for name in ("mom_252_21", "vol_21d"):
        frame[f"rank_{name}"] = frame[stocks].groupby("date")[name].rank(pct=True)
    return frame[["date", "symbol", *DEFAULT_FEATURE_SPEC.feature_names()]]


def main() -> None:
    bars = BundledSource().fetch([*DEFAULT_UNIVERSE, INDEX_SYMBOL])
    n_symbols, n_days = bars["symbol"].nunique(), bars["date"].nunique()
    fast, naive = compute_features(bars), naive_features(bars)
    # Same rows, same numbers: the comparison is between two ways of computing one thing.
    assert fast[["date", "symbol"]].astype(str).equals(naive[["date", "symbol"]].astype(str))
    worst = 0.0
    for name in DEFAULT_FEATURE_SPEC.feature_names():
        a, b = fast[name].to_numpy(dtype="float64"), naive[name].to_numpy(dtype="float64")
        assert (np.isnan(a) == np.isnan(b)).all(), name
        both = ~np.isnan(a)
        gap = float(np.max(np.abs(a[both] - b[both]) / np.maximum(1.0, np.abs(b[both])))) if both.any() else 0.0
        assert gap < 1e-9, (name, gap)
        worst = max(worst, gap)

    fast_seconds = best_of(lambda: compute_features(bars), repeat=7)
    naive_seconds = best_of(lambda: naive_features(bars), repeat=3)
    n_features = len(DEFAULT_FEATURE_SPEC.feature_names())
    print(f"default feature set ({n_features} features) on {n_symbols} symbols x {n_days:,} days")
    print(f"{'method':<42}{'seconds':>10}")
    print(f"{'compute_features (all symbols at once)':<42}{fast_seconds:>10.4f}")
    print(f"{'per-symbol pandas loop':<42}{naive_seconds:>10.4f}")
    print(f"largest relative difference between the two: {worst:.1e}")
    print(f"RESULT features_seconds={fast_seconds:.3f} vs_naive_loop={naive_seconds / fast_seconds:.1f}")


if __name__ == "__main__":
    main()
