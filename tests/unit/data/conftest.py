"""Fixtures for the data tests: the bundled real prices read straight from their CSV files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

BUNDLED = Path(__file__).resolve().parents[3] / "shared" / "portfolio_engine" / "resources" / "bundled"


@pytest.fixture(scope="session")
def real_bars() -> pd.DataFrame:
    """20 stocks' adjusted closes and the S&P 500 level (as ``^GSPC``), 1990-2022, as a long table."""
    wide = pd.read_csv(BUNDLED / "sp500_dataset.csv.gz", parse_dates=["Date"], index_col="Date")
    index = pd.read_csv(BUNDLED / "sp500_index.csv.gz", parse_dates=["Date"], index_col="Date")
    wide["^GSPC"] = index["SP500"]
    long = wide.rename_axis("date").reset_index().melt(id_vars="date", var_name="symbol", value_name="adj_close")
    return long


@pytest.fixture(scope="session")
def real_ohlcv() -> pd.DataFrame:
    """S&P 500 daily OHLCV 1999-2018 as a long table with symbol ``^GSPC``."""
    frame = pd.read_csv(BUNDLED / "gspc_ohlcv_1999_2018.csv.gz")
    frame = frame.rename(
        columns={"Date": "date", "Open": "open", "High": "high", "Low": "low", "Close": "close"}
        | {"Adj Close": "adj_close", "Volume": "volume"}
    )
    frame["date"] = pd.to_datetime(frame["date"], format="%m/%d/%Y")
    frame["symbol"] = "^GSPC"
    return frame
