"""BundledSource and the reference-set loaders, checked against the bundled files read independently."""

from __future__ import annotations

import csv
import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import portfolio_engine
from portfolio_engine.adapters.market_data.bundled import (
    DEFAULT_UNIVERSE,
    FACTOR_ETFS,
    INDEX_SYMBOL,
    BundledSource,
    load_ff3_monthly,
    load_ff_industries_monthly,
    load_index_bars,
    load_sectors,
    load_spy_total_return,
    load_treasury_curve,
    load_vix,
)
from portfolio_engine.data.schema import BAR_COLUMNS
from portfolio_engine.exceptions import ConfigurationError, EmptyDataError, UnknownSymbolError
from portfolio_engine.ports import MarketDataSource

BUNDLED = Path(portfolio_engine.__file__).parent / "resources" / "bundled"


def _rows(name: str) -> list[dict[str, str]]:
    """The file's rows with the standard library only (an independent reading)."""
    with gzip.open(BUNDLED / name, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def test_source_satisfies_the_port() -> None:
    assert isinstance(BundledSource(), MarketDataSource)


def test_twenty_stocks_with_every_day_from_1990_to_2022() -> None:
    # When fetching the default universe without dates
    bars = BundledSource().fetch(list(DEFAULT_UNIVERSE))

    # Then 20 x 8,313 canonical rows, 1990-01-02 .. 2022-12-28, adj_close = close
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert len(DEFAULT_UNIVERSE) == 20
    assert bars.groupby("symbol").size().to_dict() == dict.fromkeys(DEFAULT_UNIVERSE, 8313)
    assert bars["date"].min() == pd.Timestamp("1990-01-02")
    assert bars["date"].max() == pd.Timestamp("2022-12-28")
    assert (bars["adj_close"] == bars["close"]).all()
    assert bars[["open", "high", "low", "volume"]].isna().all().all()


def test_stock_values_equal_the_file() -> None:
    rows = _rows("sp500_dataset.csv.gz")
    bars = BundledSource().fetch(["AAPL", "XOM"])
    aapl = bars[bars["symbol"] == "AAPL"].set_index("date")["adj_close"]
    xom = bars[bars["symbol"] == "XOM"].set_index("date")["adj_close"]
    for row in (rows[0], rows[4000], rows[-1]):
        day = pd.Timestamp(row["Date"])
        assert aapl[day] == float(row["AAPL"])
        assert xom[day] == float(row["XOM"])


def test_index_is_ohlcv_from_1999_to_2018_and_close_only_outside() -> None:
    # Given both ^GSPC files read independently
    ohlcv = {pd.to_datetime(r["Date"], format="%m/%d/%Y"): r for r in _rows("gspc_ohlcv_1999_2018.csv.gz")}
    level = {pd.Timestamp(r["Date"]): float(r["SP500"]) for r in _rows("sp500_index.csv.gz")}

    # When fetching ^GSPC
    bars = BundledSource().fetch([INDEX_SYMBOL]).set_index("date")

    # Then one series over the union of dates: 8,313 days, 5,031 of them with full OHLCV
    assert len(bars) == 8313 == len(set(level) | set(ohlcv))
    inside = bars.loc["1999-01-04":"2018-12-31"]
    assert len(inside) == len(ohlcv) == 5031
    assert inside[["open", "high", "low", "close", "volume"]].notna().all().all()
    day = pd.Timestamp("2008-10-13")
    assert bars.loc[day, "open"] == float(ohlcv[day]["Open"])
    assert bars.loc[day, "close"] == float(ohlcv[day]["Close"])
    assert bars.loc[day, "volume"] == float(ohlcv[day]["Volume"])
    outside = bars.drop(inside.index)
    assert len(outside) == 8313 - 5031
    assert outside[["open", "high", "low", "volume"]].isna().all().all()
    assert (outside["close"] == [level[d] for d in outside.index]).all()
    assert (outside["adj_close"] == outside["close"]).all()
    # And where both files have a day, the closes agree to rounding
    common = [d for d in ohlcv if d in level]
    assert len(common) == 5031
    assert max(abs(float(ohlcv[d]["Close"]) - level[d]) for d in common) < 1e-3
    pd.testing.assert_frame_equal(load_index_bars(), BundledSource().fetch([INDEX_SYMBOL]))


def test_factor_etfs_from_2014() -> None:
    bars = BundledSource().fetch(list(FACTOR_ETFS))
    assert bars.groupby("symbol").size().to_dict() == dict.fromkeys(FACTOR_ETFS, 2264)
    assert bars["date"].min() == pd.Timestamp("2014-01-02")
    first = bars[(bars["symbol"] == "MTUM")].iloc[0]
    assert first["close"] == 52.704


def test_dates_filter_inclusively() -> None:
    bars = BundledSource().fetch(["AAPL", INDEX_SYMBOL], start=date(2020, 3, 2), end=date(2020, 3, 6))
    assert bars.groupby("symbol").size().to_dict() == {"AAPL": 5, INDEX_SYMBOL: 5}
    assert bars["date"].min() == pd.Timestamp("2020-03-02")
    assert bars["date"].max() == pd.Timestamp("2020-03-06")


def test_symbols_without_bars_in_range_are_left_out_and_all_empty_is_an_error() -> None:
    bars = BundledSource().fetch(["AAPL", "MTUM"], start=date(2000, 1, 3), end=date(2000, 1, 7))
    assert set(bars["symbol"]) == {"AAPL"}
    with pytest.raises(EmptyDataError):
        BundledSource().fetch(["MTUM"], start=date(2000, 1, 3), end=date(2000, 1, 7))


def test_unknown_symbol_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSymbolError, match="TSLA") as caught:
        BundledSource().fetch(["AAPL", "TSLA"])
    assert "AAPL" in caught.value.hint
    assert INDEX_SYMBOL in caught.value.hint


def test_only_daily_bars_and_ordered_dates() -> None:
    with pytest.raises(ConfigurationError):
        BundledSource().fetch(["AAPL"], interval="1h")
    with pytest.raises(ConfigurationError):
        BundledSource().fetch(["AAPL"], start=date(2020, 1, 2), end=date(2019, 1, 2))


def test_sectors_cover_the_universe() -> None:
    sectors = load_sectors()
    assert set(sectors) == set(DEFAULT_UNIVERSE)
    assert sectors["AAPL"] == "Information Technology"
    assert sectors["XOM"] == "Energy"


def test_ff3_is_converted_from_percent_to_decimal_on_month_ends() -> None:
    factors = load_ff3_monthly()
    assert list(factors.columns) == ["Mkt-RF", "SMB", "HML", "RF"]
    assert factors.shape == (1109, 4)
    # The file's first row is 192607,2.96,-2.3,-2.87,0.22 (percent)
    assert factors.index[0] == pd.Timestamp("1926-07-31")
    np.testing.assert_allclose(factors.iloc[0].to_numpy(), [0.0296, -0.023, -0.0287, 0.0022])
    assert factors.index[-1] == pd.Timestamp("2018-11-30")
    assert factors.index.is_month_end.all()


def test_ff_industries_are_decimal_on_month_ends() -> None:
    table = load_ff_industries_monthly()
    assert table.shape == (819, 35)
    assert {"Mkt-RF", "SMB", "HML", "Mom", "RF", "NoDur", "Hlth", "S1V1", "S5M5"} <= set(table.columns)
    assert table.index[0] == pd.Timestamp("1949-01-31")
    assert table.loc["1949-01-31", "Mkt-RF"] == pytest.approx(0.0023)
    assert table.index.is_month_end.all()


def test_treasury_curve_is_tz_naive_and_decimal() -> None:
    curve = load_treasury_curve()
    assert curve.shape == (6816, 11)
    assert curve.index.tz is None
    assert curve.index[0] == pd.Timestamp("1990-01-02")
    assert curve.loc["1990-01-02", "10year"] == pytest.approx(0.0794)
    assert np.isnan(curve.loc["1990-01-02", "1month"])


def test_vix_drops_holiday_markers() -> None:
    vix = load_vix()
    assert list(vix.columns) == ["vix"]
    assert vix.shape == (1259, 1)
    assert vix.index[0] == pd.Timestamp("2014-01-03")
    assert vix.loc["2014-01-03", "vix"] == 13.76
    assert pd.Timestamp("2014-01-20") not in vix.index  # Martin Luther King Jr. Day, "." in the file
    assert vix["vix"].notna().all()


def test_spy_total_return_is_tz_naive() -> None:
    spy = load_spy_total_return()
    assert spy.shape == (6357, 1)
    assert spy.index.tz is None
    assert spy.index[0] == pd.Timestamp("1993-02-01")
    assert spy.iloc[0, 0] == pytest.approx(0.007055075102412323)


def test_loaders_return_copies() -> None:
    mutated = load_ff3_monthly()
    mutated.iloc[0, 0] = 99.0
    assert load_ff3_monthly().iloc[0, 0] == pytest.approx(0.0296)
