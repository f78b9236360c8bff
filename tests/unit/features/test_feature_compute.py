"""compute_features: the long output's shape, per-symbol semantics, errors, and speed on the real data."""

from __future__ import annotations

import time

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


@pytest.mark.parametrize("problem", ["duplicate", "zero", "negative", "inf", "no_index"])
def test_bad_bars_are_refused(problem: str) -> None:
    bars = pd.concat([long("AAA", walk(50, 1)), long("^GSPC", walk(50, 2))], ignore_index=True)
    if problem == "duplicate":
        bars = pd.concat([bars, bars.iloc[[3]]])
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


def test_real_data_is_fast(real_closes: pd.DataFrame) -> None:
    # 21 symbols x 8,313 days with the default spec
    start = time.perf_counter()
    out = compute_features(real_closes)
    elapsed = time.perf_counter() - start
    assert len(out) == 21 * 8313
    assert elapsed < 5.0, f"compute_features took {elapsed:.2f} s"
    # sanity on real numbers: annualised vols below 300% (0 only in RRC's stale early 1990s), median 20-35%
    vol = out["vol_63d"].dropna()
    assert vol.between(0.0, 3.0).all() and 0.2 < vol.median() < 0.35
    assert out["drawdown"].between(-1.0, 0.0).all()
