"""compute_features: the long output's shape, per-symbol semantics, alignment across symbols, errors, and the real data.

Its speed is measured by ``benchmarks/bench_features.py``, not asserted here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.exceptions import FeatureError
from portfolio_engine.features import DEFAULT_FEATURE_SPEC, FeatureSpec, compute_features
from portfolio_engine.features import indicators as ind

START = "2020-01-01"


def walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, n)))


def long(symbol: str, prices: np.ndarray, dates: pd.DatetimeIndex | None = None, **columns: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "date": pd.bdate_range(START, periods=len(prices)) if dates is None else dates,
            "symbol": symbol,
            "adj_close": prices,
        }
    )
    for name, values in columns.items():
        frame[name] = values
    return frame


@pytest.fixture(scope="module")
def universe() -> pd.DataFrame:
    """Three stocks (one listed 100 bars later, one with OHLC) and the index, 400 business days."""
    n = 400
    dates = pd.bdate_range(START, periods=n)
    close = walk(n, 3)
    ohlc = {"close": close * 2.0, "open": close * 2.0, "high": close * 2.0 * 1.01, "low": close * 2.0 * 0.985}
    return pd.concat(
        [
            long("^GSPC", walk(n, 0)),
            long("AAA", walk(n, 1)),
            long("LATE", walk(n - 100, 2), dates=dates[100:]),
            long("OHLC", close, **ohlc),  # raw prices twice the adjusted ones (a 2-for-1 split later on)
        ],
        ignore_index=True,
    ).sample(frac=1.0, random_state=0)  # shuffled: the output order must not depend on the input's


@pytest.fixture(scope="module")
def features(universe: pd.DataFrame) -> pd.DataFrame:
    return compute_features(universe)


def test_long_tidy_output(universe: pd.DataFrame, features: pd.DataFrame) -> None:
    assert list(features.columns) == ["date", "symbol", *DEFAULT_FEATURE_SPEC.feature_names()]
    assert len(features) == len(universe)
    assert all(features[c].dtype == "float64" for c in DEFAULT_FEATURE_SPEC.feature_names())
    keys = features[["symbol", "date"]]
    assert keys.equals(keys.sort_values(["symbol", "date"]).reset_index(drop=True))
    assert set(features["symbol"]) == {"^GSPC", "AAA", "LATE", "OHLC"}


def test_index_rows_are_included(features: pd.DataFrame) -> None:
    index = features[features["symbol"] == "^GSPC"].reset_index(drop=True)
    assert (index["beta_63d"].iloc[63:] == 1.0).all() and index["beta_63d"].iloc[:63].isna().all()
    assert (index["corr_252d"].iloc[252:] == 1.0).all()
    assert index["rank_vol_21d"].isna().all()  # the index is not part of the cross-section


def test_warm_up_rows_are_nan_and_kept(features: pd.DataFrame) -> None:
    aaa = features[features["symbol"] == "AAA"].reset_index(drop=True)
    assert len(aaa) == 400
    for name, warm in {
        "ret_1d": 1,
        "vol_21d": 21,
        "vol_63d": 63,
        "rsi_14": 14,
        "mom_252_21": 252,
        "macd_signal_9": 33,
    }.items():
        assert aaa[name].iloc[:warm].isna().all(), name
        assert aaa[name].iloc[warm:].notna().all(), name
    assert aaa["drawdown"].notna().all()


def test_a_later_listing_gets_the_same_features_as_on_its_own(features: pd.DataFrame, universe: pd.DataFrame) -> None:
    # Given LATE starts 100 bars after the others, its features (besides the ranks) are those of its
    # own series, with beta to the index on its own dates
    alone = compute_features(universe[universe["symbol"].isin(["LATE", "^GSPC"])])
    late = features[features["symbol"] == "LATE"].reset_index(drop=True)
    late_alone = alone[alone["symbol"] == "LATE"].reset_index(drop=True)
    per_symbol = [c for c in DEFAULT_FEATURE_SPEC.feature_names() if not c.startswith("rank_")]
    pd.testing.assert_frame_equal(late[per_symbol], late_alone[per_symbol])
    assert late["vol_21d"].iloc[:21].isna().all() and late["vol_21d"].iloc[21:].notna().all()


def test_atr_where_ohlc_exists_only(features: pd.DataFrame, universe: pd.DataFrame) -> None:
    ohlc = features[features["symbol"] == "OHLC"].reset_index(drop=True)
    assert ohlc["atr_14"].iloc[:13].isna().all() and ohlc["atr_14"].iloc[13:].notna().all()
    assert features.loc[features["symbol"] != "OHLC", "atr_14"].isna().all()
    # in adjusted units: raw OHLC scaled by adj_close / close (here 1/2)
    raw = universe[universe["symbol"] == "OHLC"].sort_values("date")
    expected = ind.atr(
        pd.DataFrame({"x": raw["high"].to_numpy() / 2}),
        pd.DataFrame({"x": raw["low"].to_numpy() / 2}),
        pd.DataFrame({"x": raw["adj_close"].to_numpy()}),
        14,
    )["x"]
    np.testing.assert_allclose(ohlc["atr_14"], expected, rtol=1e-12, equal_nan=True)


def test_atr_of_a_symbol_with_ohlc_for_part_of_its_history() -> None:
    close = walk(100, 4)
    part = (np.arange(100) >= 30) & (np.arange(100) < 70)
    bars = long("IDX", close, open=np.where(part, close, np.nan), high=np.where(part, close * 1.01, np.nan))
    bars["low"] = np.where(part, close * 0.99, np.nan)
    atr = compute_features(bars, FeatureSpec(index_symbol=None, rank_features=()))["atr_14"]
    assert atr.iloc[:43].isna().all() and atr.iloc[43:70].notna().all() and atr.iloc[70:].isna().all()


def test_ranks_are_percentiles_across_stocks(features: pd.DataFrame) -> None:
    day = features[features["date"] == pd.bdate_range(START, periods=400)[300]].set_index("symbol")
    vols = day.loc[["AAA", "LATE", "OHLC"], "vol_21d"]
    np.testing.assert_allclose(day.loc[vols.index, "rank_vol_21d"], vols.rank(pct=True))


def test_no_index_symbol_skips_beta() -> None:
    bars = long("AAA", walk(50, 1))
    out = compute_features(bars, FeatureSpec(index_symbol=None, rank_features=()))
    assert not any(c.startswith(("beta", "corr", "rank")) for c in out.columns)


@pytest.mark.parametrize("problem", ["duplicate", "zero", "negative", "inf", "no_index", "no_symbol"])
def test_bad_bars_are_refused(problem: str) -> None:
    bars = pd.concat([long("AAA", walk(50, 1)), long("^GSPC", walk(50, 2))], ignore_index=True)
    if problem == "duplicate":
        bars = pd.concat([bars, bars.iloc[[3]]])
    elif problem == "no_symbol":
        bars.loc[7, "symbol"] = None
    elif problem == "no_index":
        bars = bars[bars["symbol"] != "^GSPC"]
    else:
        bars.loc[5, "adj_close"] = {"zero": 0.0, "negative": -1.0, "inf": np.inf}[problem]
    with pytest.raises(FeatureError) as caught:
        compute_features(bars)
    assert caught.value.hint


def test_missing_price_gives_nan_features_on_that_bar_only() -> None:
    prices = walk(80, 1)
    prices[60] = np.nan
    out = compute_features(long("AAA", prices), FeatureSpec(index_symbol=None, rank_features=()))
    assert out.loc[60, ["ret_1d", "rsi_14", "macd_12_26", "drawdown"]].isna().all()
    assert np.isfinite(out.loc[59, "rsi_14"]) and np.isfinite(out.loc[62, "macd_12_26"])


def test_real_data_gives_plausible_numbers(real_closes: pd.DataFrame) -> None:
    # 21 symbols x 8,313 days with the default spec
    out = compute_features(real_closes)
    assert len(out) == 21 * 8313
    # sanity on real numbers: annualised vols below 300% (0 only in RRC's stale early 1990s), median 20-35%
    vol = out["vol_63d"].dropna()
    assert vol.between(0.0, 3.0).all() and 0.2 < vol.median() < 0.35
    assert out["drawdown"].between(-1.0, 0.0).all()


# ----------------------------------------------------------------------------------------------------------------------
# each symbol on its own bars; alignment only where symbols are compared
# ----------------------------------------------------------------------------------------------------------------------
RANKS = [c for c in DEFAULT_FEATURE_SPEC.feature_names() if c.startswith("rank_")]
PER_SYMBOL = [c for c in DEFAULT_FEATURE_SPEC.feature_names() if not c.startswith("rank_")]


def rows_of(features: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return features[features["symbol"] == symbol].reset_index(drop=True)


def one_more_bar(bars: pd.DataFrame, symbol: str, day: pd.Timestamp) -> pd.DataFrame:
    """``bars`` plus one bar of ``symbol`` on ``day``, priced 3% above its bar before."""
    own = bars[(bars["symbol"] == symbol) & (bars["date"] < day)].sort_values("date").iloc[[-1]]
    extra = own.assign(date=day, adj_close=own["adj_close"] * 1.03)
    for column in ("open", "high", "low", "close"):
        if column in extra.columns:
            extra[column] = extra[column] * 1.03
    return pd.concat([bars, extra], ignore_index=True)


def moved_dates(before: pd.DataFrame, after: pd.DataFrame, symbol: str) -> set[pd.Timestamp]:
    """Dates on which ``symbol`` has a new row, or a ranked feature whose value changed.

    Rolling sums carry rounding forward, so "changed" means beyond 1e-9 relative, or NaN on one side only.
    """
    ranked = [name.removeprefix("rank_") for name in RANKS]
    new = rows_of(after, symbol).set_index("date")[ranked]
    old = rows_of(before, symbol).set_index("date")[ranked].reindex(new.index)
    same = np.isclose(old.to_numpy(), new.to_numpy(), rtol=1e-9, atol=0.0, equal_nan=True)
    return set(new.index[~same.all(axis=1)])


def assert_unchanged_but_ranks(before: pd.DataFrame, after: pd.DataFrame, symbol: str, moved: set) -> None:
    """Every per-symbol feature of ``symbol`` is unchanged; its ranks too, except on the ``moved`` dates."""
    mine, theirs = rows_of(before, symbol), rows_of(after, symbol)
    pd.testing.assert_frame_equal(theirs[["date", "symbol", *PER_SYMBOL]], mine[["date", "symbol", *PER_SYMBOL]])
    elsewhere = ~mine["date"].isin(moved).to_numpy()
    pd.testing.assert_frame_equal(theirs.loc[elsewhere, RANKS], mine.loc[elsewhere, RANKS])


@pytest.mark.parametrize(
    ("stray", "day"),
    [("AAA", "2020-06-06"), ("^GSPC", "2020-06-06"), ("AAA", "2020-06-08")],
    ids=["stock-saturday", "index-saturday", "stock-gap-filled"],
)
def test_a_stray_bar_of_one_symbol_changes_no_feature_of_another(universe: pd.DataFrame, stray: str, day: str) -> None:
    # Given the universe, and the same with one more bar for one symbol: on a Saturday nobody trades, or,
    # for a stock, on a weekday the others trade (its own bar that day removed first: a gap it fills)
    when = pd.Timestamp(day)
    base = universe[~((universe["symbol"] == stray) & (universe["date"] == when))]
    before, after = compute_features(base), compute_features(one_more_bar(base, stray, when))
    # Then no other symbol loses or gains a row, and each keeps every feature, beta and correlation included;
    # its cross-sectional ranks move only where the stray symbol's own ranked values moved (that date, and
    # the stray symbol's later bars whose windows hold the new bar); the index is in no cross-section
    assert len(after) == len(before) + 1
    moved = moved_dates(before, after, stray) if stray != "^GSPC" else set()
    assert when in moved or stray == "^GSPC"
    for symbol in sorted({"^GSPC", "AAA", "LATE", "OHLC"} - {stray}):
        assert_unchanged_but_ranks(before, after, symbol, moved)


def test_a_stray_bar_on_real_data_leaves_the_other_symbols_alone(real_closes: pd.DataFrame) -> None:
    # Given the real data, and the same with one bar for JPM on Saturday 7 March 2009
    saturday = pd.Timestamp("2009-03-07")
    before = compute_features(real_closes)
    after = compute_features(one_more_bar(real_closes, "JPM", saturday))
    # Then the Saturday has JPM's row only, and no other symbol changes but for ranks where JPM's values moved
    assert after.loc[after["date"] == saturday, "symbol"].tolist() == ["JPM"]
    moved = moved_dates(before, after, "JPM")
    assert saturday in moved and max(moved) < pd.Timestamp("2010-06-01")  # within a 252-bar window of it
    for symbol in sorted(set(real_closes["symbol"]) - {"JPM"}):
        assert_unchanged_but_ranks(before, after, symbol, moved)
    # And JPM's own features up to the Saturday are unchanged (point in time)
    jpm_before, jpm_after = rows_of(before, "JPM"), rows_of(after, "JPM")
    earlier = (jpm_before["date"] < saturday).to_numpy()
    pd.testing.assert_frame_equal(jpm_after.iloc[: earlier.sum()], jpm_before[earlier])


def test_windows_count_a_symbols_own_bars() -> None:
    # Given a symbol with 5 missing bars beside a symbol with all of them
    n = 80
    dates = pd.bdate_range(START, periods=n)
    gappy = np.delete(np.arange(n), [30, 31, 32, 33, 34])
    prices = walk(n, 7)
    bars = pd.concat([long("FULL", walk(n, 8)), long("GAPPY", prices[gappy], dates=dates[gappy])], ignore_index=True)
    spec = FeatureSpec(index_symbol=None, rank_features=())
    out = rows_of(compute_features(bars, spec), "GAPPY")
    # Then its 21-bar volatility is the std of its own last 21 log returns (one of them across the gap),
    # defined on every bar from its 22nd on
    r = np.diff(np.log(prices[gappy]))
    expected = [np.nan] * 21 + [np.std(r[t - 21 : t], ddof=1) * np.sqrt(252) for t in range(21, len(gappy))]
    np.testing.assert_allclose(out["vol_21d"], expected, rtol=1e-12, equal_nan=True)


def test_beta_pairs_returns_over_the_same_intervals() -> None:
    # Given a stock without a bar on day 100 and an index without a bar on day 120
    n = 200
    dates = pd.bdate_range(START, periods=n)
    rng = np.random.default_rng(11)
    market = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    stock = 50.0 * np.exp(np.log(market / 100.0) * 1.4 + np.cumsum(rng.normal(0, 0.008, n)))
    stock_days, index_days = np.delete(np.arange(n), [100]), np.delete(np.arange(n), [120])
    bars = pd.concat(
        [
            long("S", stock[stock_days], dates=dates[stock_days]),
            long("^GSPC", market[index_days], dates=dates[index_days]),
        ],
        ignore_index=True,
    )
    out = rows_of(compute_features(bars, FeatureSpec(beta_windows=(63,), rank_features=())), "S").set_index("date")
    # Then on each shared date, beta and correlation are those of the two price series restricted to the
    # dates both have (numpy on the last 63 pairs of returns)
    shared = np.intersect1d(stock_days, index_days)
    rs, rm = np.diff(stock[shared]) / stock[shared][:-1], np.diff(market[shared]) / market[shared][:-1]
    for k in (63, 100, 130, len(shared) - 1):
        x, m = rs[k - 63 : k], rm[k - 63 : k]
        day = dates[shared[k]]
        assert out.loc[day, "beta_63d"] == pytest.approx(np.cov(x, m)[0, 1] / np.var(m, ddof=1), rel=1e-9)
        assert out.loc[day, "corr_63d"] == pytest.approx(np.corrcoef(x, m)[0, 1], rel=1e-9)
    # And the stock's bar on the day the index lacks has none, while the next one has a value again
    assert np.isnan(out.loc[dates[120], "beta_63d"]) and np.isfinite(out.loc[dates[121], "beta_63d"])
    assert out["beta_63d"].notna().sum() == len(shared) - 63


def test_ranks_compare_the_symbols_with_a_value_on_the_date(features: pd.DataFrame) -> None:
    # On a date before LATE's 22nd bar, LATE has no vol_21d: AAA and OHLC are ranked between themselves
    day = features[features["date"] == pd.bdate_range(START, periods=400)[110]].set_index("symbol")
    assert np.isnan(day.loc["LATE", "vol_21d"]) and np.isnan(day.loc["LATE", "rank_vol_21d"])
    pair = day.loc[["AAA", "OHLC"], "vol_21d"]
    np.testing.assert_allclose(day.loc[pair.index, "rank_vol_21d"], pair.rank(pct=True))
