"""UserFileSource / read_user_bars: CSV and Parquet, long and wide, paths and bytes, and files it must refuse."""

from __future__ import annotations

import gzip
import io
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from portfolio_engine.adapters.market_data.user_files import UserFileSource, read_user_bars, read_user_file
from portfolio_engine.data.schema import BAR_COLUMNS
from portfolio_engine.exceptions import ConfigurationError, EmptyDataError, SchemaError, UnknownSymbolError
from portfolio_engine.ports import MarketDataSource

LONG_CSV = """Date,Ticker,Open,High,Low,Close,Adj Close,Volume
2024-01-02,AAPL,187.15,188.44,183.885,185.64,184.532,82488700
2024-01-03,AAPL,184.22,185.88,183.43,184.25,183.15,58414500
2024-01-02,MSFT,373.86,375.9,366.77,370.87,368.87,25258600
2024-01-03,MSFT,369.01,373.26,368.51,370.6,368.6,23083500
"""

WIDE_CSV = """date,AAPL,MSFT
2024-01-02,185.64,370.87
2024-01-03,184.25,370.6
2024-01-04,181.91,
"""


def _wide_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"AAPL": [185.64, 184.25, 181.91], "MSFT": [370.87, 370.6, None]},
        index=pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"], name="Date"),
    )


def _parquet_bytes(frame: pd.DataFrame, index: bool = False) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=index)
    return buffer.getvalue()


def test_long_csv_with_aliases_becomes_canonical_bars(tmp_path: Path) -> None:
    # Given a long CSV with Date/Ticker/Adj Close headers
    path = tmp_path / "prices.csv"
    path.write_text(LONG_CSV)

    # When reading it
    bars = read_user_bars(str(path))

    # Then canonical columns, sorted by (symbol, date), values kept
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert bars["symbol"].tolist() == ["AAPL", "AAPL", "MSFT", "MSFT"]
    assert bars.loc[0, ["open", "close", "adj_close", "volume"]].tolist() == [187.15, 185.64, 184.532, 82488700.0]
    assert bars["date"].dtype == "datetime64[ns]"


def test_wide_csv_gives_closes_per_symbol_and_drops_blanks() -> None:
    bars = read_user_bars(WIDE_CSV.encode())
    assert bars.groupby("symbol").size().to_dict() == {"AAPL": 3, "MSFT": 2}
    aapl = bars[bars["symbol"] == "AAPL"]
    assert aapl["close"].tolist() == [185.64, 184.25, 181.91]
    assert (aapl["adj_close"] == aapl["close"]).all()


def test_gzipped_csv_bytes_are_read() -> None:
    bars = read_user_bars(gzip.compress(LONG_CSV.encode()))
    assert len(bars) == 4


def test_long_parquet_file(tmp_path: Path) -> None:
    frame = pd.read_csv(io.StringIO(LONG_CSV)).rename(columns={"Ticker": "symbol", "Adj Close": "adjclose"})
    path = tmp_path / "prices.parquet"
    frame.to_parquet(path, index=False)
    bars = read_user_bars(path)
    assert len(bars) == 4
    assert bars["adj_close"].tolist() == [184.532, 183.15, 368.87, 368.6]


def test_wide_parquet_with_a_date_index_from_bytes() -> None:
    bars = read_user_bars(_parquet_bytes(_wide_frame(), index=True))
    assert bars.groupby("symbol").size().to_dict() == {"AAPL": 3, "MSFT": 2}
    assert bars["date"].min() == pd.Timestamp("2024-01-02")


def test_single_symbol_ohlcv_file_needs_a_symbol() -> None:
    single = "Date,Open,High,Low,Close,Volume\n2024-01-02,187.15,188.44,183.885,185.64,82488700\n"
    with pytest.raises(SchemaError, match="no symbol column") as caught:
        read_user_bars(single.encode())
    assert "symbol=" in caught.value.hint
    bars = read_user_bars(single.encode(), symbol="AAPL")
    assert bars.loc[0, ["symbol", "close"]].tolist() == ["AAPL", 185.64]


def test_a_ticker_named_like_a_price_column_stays_a_ticker_in_wide_files() -> None:
    # LOW is Lowe's: one price-like header among tickers is still wide format
    bars = read_user_bars(b"date,AAPL,LOW\n2024-01-02,185.64,226.63\n")
    assert set(bars["symbol"]) == {"AAPL", "LOW"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"Date,AAPL\n", "no rows"),
        (b"when,AAPL\n2024-01-02,185.64\n", "no date column"),
        (b"Date\n2024-01-02\n", "no symbol or price columns"),
        (b"Date,Ticker,Volume\n2024-01-02,AAPL,100\n", "no price column"),
        (b"Date,Ticker,Close\n2024-01-02,AAPL,1.234,56\n", "not a readable CSV"),
        (b"Date,AAPL\n2024-01-02,abc\n", "not numeric"),
        (b"Date,AAPL\n2024-01-02,n/a\n", "no price values"),
        (b"Date,AAPL\nyesterday,185.64\n", "cannot be parsed as dates"),
        (b"Date,Ticker,Close\n2024-01-02,AAPL,185.64\n2024-01-02,AAPL,185.65\n", "repeated"),
        (b"PAR1\x00\x01garbage", "not a readable PARQUET"),
    ],
    ids=[
        "empty",
        "header-only",
        "no-date",
        "no-values",
        "no-price",
        "ragged",
        "text-price",
        "blank-prices",
        "bad-date",
        "dupes",
        "bad-pq",
    ],
)
def test_unusable_files_raise_schema_error_with_a_hint(content: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as caught:
        read_user_bars(content)
    assert caught.value.hint


def test_missing_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Cannot read"):
        read_user_bars(str(tmp_path / "nope.csv"))


def test_source_filters_symbols_and_dates(tmp_path: Path) -> None:
    # Given a source over the long CSV
    path = tmp_path / "prices.csv"
    path.write_text(LONG_CSV)
    source = UserFileSource(str(path))
    assert isinstance(source, MarketDataSource)
    assert source.symbols == ("AAPL", "MSFT")

    # When fetching one symbol for one day, then one bar
    bars = source.fetch(["MSFT"], start=date(2024, 1, 3), end=date(2024, 1, 3))
    assert bars[["symbol", "close"]].values.tolist() == [["MSFT", 370.6]]

    # And unknown symbols and empty ranges are errors
    with pytest.raises(UnknownSymbolError, match="TSLA") as caught:
        source.fetch(["TSLA"])
    assert "AAPL" in caught.value.hint
    with pytest.raises(EmptyDataError):
        source.fetch(["AAPL"], start=date(2025, 1, 1))


def test_rows_that_are_not_bars_are_listed_never_dropped_silently() -> None:
    # Given a wide file with a blank cell inside MSFT's history, one before its first price and a row without a date
    content = b"date,AAPL,MSFT\n2024-01-02,185.64,\n2024-01-03,184.25,370.6\n,183.0,371.0\n2024-01-04,181.91,\n"
    content += b"2024-01-05,181.18,367.75\n"
    # When it is read
    bars, dropped = read_user_file(content)
    # Then the interior blank and both cells of the dateless row are listed, by file row, with a reason
    assert dropped[["row", "symbol", "reason"]].values.tolist() == [
        [3, "AAPL", "no date"],
        [3, "MSFT", "no date"],
        [4, "MSFT", "no price"],
    ]
    assert dropped.loc[2, "date"] == pd.Timestamp("2024-01-04")
    # and the blank before MSFT's first price is not a row: MSFT's bars are its two prices
    assert bars.groupby("symbol").size().to_dict() == {"AAPL": 4, "MSFT": 2}


def test_a_long_row_without_a_symbol_is_listed_not_read_as_a_ticker_named_nan(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("Date,Ticker,Close\n2024-01-02,AAPL,185.64\n2024-01-03,,184.25\n2024-01-04,AAPL,\n")
    source = UserFileSource(str(path))
    assert source.symbols == ("AAPL",)
    assert source.dropped_rows[["row", "reason"]].values.tolist() == [[2, "no symbol"]]
    # a row with a symbol and a date but no price stays a bar (NaN), for ingest and validation to judge
    assert source.fetch(["AAPL"])["close"].isna().tolist() == [False, True]
