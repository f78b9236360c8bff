"""Point in time: a feature at date t never changes when anything after t changes.

On the real bundled data (20 stocks, the S&P 500 level, and the S&P 500 with OHLC from 1999 as
``SPX``), every row after t is perturbed, deleted, or new rows are appended after t; every feature at
dates <= t must be unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_engine.data.schema import PRICE_COLUMNS
from portfolio_engine.features import DEFAULT_FEATURE_SPEC, compute_features

FEATURES = DEFAULT_FEATURE_SPEC.feature_names()


@pytest.fixture(scope="module")
def baseline(real_universe: pd.DataFrame) -> pd.DataFrame:
    return compute_features(real_universe)


def perturb(bars: pd.DataFrame, t: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Scale every price after t by a random positive factor (one per bar, all OHLC fields alike)."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    after = (out["date"] > t).to_numpy()
    factor = np.exp(rng.normal(0.0, 0.2, after.sum()))
    for column in PRICE_COLUMNS:
        if column in out.columns:
            out.loc[after, column] = out.loc[after, column].to_numpy() * factor
    return out


def delete(bars: pd.DataFrame, t: pd.Timestamp, seed: int) -> pd.DataFrame:
    return bars[bars["date"] <= t]


def append(bars: pd.DataFrame, t: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Add a new symbol listed after t, and a week of bars after the last date of the data for every symbol."""
    rng = np.random.default_rng(seed)
    later = np.sort(bars.loc[bars["date"] > t, "date"].unique())[:300]
    new_symbol = pd.DataFrame(
        {"date": later, "symbol": "NEW", "adj_close": 10.0 * np.exp(np.cumsum(rng.normal(0, 0.05, len(later))))}
    )
    last = bars.groupby("symbol").tail(1)
    end = bars["date"].max()  # >= t, so every appended bar is after t
    extra = [
        last.assign(date=end + pd.offsets.BDay(k), adj_close=last["adj_close"] * (1 + 0.1 * k)) for k in range(1, 6)
    ]
    return pd.concat([bars, new_symbol, *extra], ignore_index=True)


def assert_same_up_to(t: pd.Timestamp, before: pd.DataFrame, after: pd.DataFrame) -> None:
    left = before[before["date"] <= t].reset_index(drop=True)
    right = after[after["date"] <= t]
    right = right[right["symbol"].isin(set(left["symbol"]))].reset_index(drop=True)
    assert len(left) == len(right) and left[["symbol", "date"]].equals(right[["symbol", "date"]])
    for name in FEATURES:
        np.testing.assert_allclose(right[name], left[name], rtol=0, atol=1e-12, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("change", [perturb, delete, append])
@pytest.mark.parametrize("t", ["2000-03-24", "2008-09-15"])
def test_features_up_to_t_ignore_everything_after(
    real_universe: pd.DataFrame, baseline: pd.DataFrame, change, t: str
) -> None:
    # Given the features of the real data, and the same data changed after t
    cut = pd.Timestamp(t)
    changed = compute_features(change(real_universe, cut, seed=7))
    # Then every feature at every date <= t is unchanged
    assert_same_up_to(cut, baseline, changed)


@settings(max_examples=6, deadline=None)
@given(position=st.integers(min_value=0, max_value=8312), seed=st.integers(0, 2**16), kind=st.sampled_from([0, 1, 2]))
def test_point_in_time_at_random_dates(
    real_universe: pd.DataFrame, baseline: pd.DataFrame, position: int, seed: int, kind: int
) -> None:
    dates = np.sort(real_universe["date"].unique())
    cut = pd.Timestamp(dates[position])
    change = (perturb, delete, append)[kind]
    assert_same_up_to(cut, baseline, compute_features(change(real_universe, cut, seed)))
