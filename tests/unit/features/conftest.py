"""Fixtures for the feature tests: the bundled real prices read straight from their CSV files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

BUNDLED = Path(__file__).resolve().parents[3] / "shared" / "portfolio_engine" / "resources" / "bundled"


def _long(wide: pd.DataFrame) -> pd.DataFrame:
    return wide.rename_axis("date").reset_index().melt(id_vars="date", var_name="symbol", value_name="adj_close")


@pytest.fixture(scope="session")
def real_closes() -> pd.DataFrame:
    """20 stocks and the S&P 500 level (``^GSPC``): long table of 21 symbols x 8,313 days, adj_close only."""
    wide = pd.read_csv(BUNDLED / "sp500_dataset.csv.gz", parse_dates=["Date"], index_col="Date")
    index = pd.read_csv(BUNDLED / "sp500_index.csv.gz", parse_dates=["Date"], index_col="Date")
    wide["^GSPC"] = index["SP500"]
    return _long(wide)


@pytest.fixture(scope="session")
def real_universe(real_closes: pd.DataFrame) -> pd.DataFrame:
    """``real_closes`` plus ``SPX``: the S&P 500 with OHLCV from 1999 (a symbol that starts later, with OHLC)."""
    ohlcv = pd.read_csv(BUNDLED / "gspc_ohlcv_1999_2018.csv.gz")
    ohlcv = ohlcv.rename(
        columns={"Date": "date", "Open": "open", "High": "high", "Low": "low", "Close": "close"}
        | {"Adj Close": "adj_close", "Volume": "volume"}
    )
    ohlcv["date"] = pd.to_datetime(ohlcv["date"], format="%m/%d/%Y")
    ohlcv["symbol"] = "SPX"
    both = pd.concat([real_closes, ohlcv], ignore_index=True)
    return both.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
