"""The real market data bundled in ``portfolio_engine/resources/bundled/`` (see ``PROVENANCE.md`` there).

``BundledSource`` serves, offline, in the canonical bar schema:

* the 20 S&P 500 stocks of ``sp500_dataset.csv.gz`` (``DEFAULT_UNIVERSE``), daily 1990-01-02 to
  2022-12-28; the file holds adjusted closes only, so ``adj_close = close`` = the given value and
  open, high, low and volume are NaN;
* ``^GSPC`` (``INDEX_SYMBOL``), merged from two files into one series: full OHLCV from
  ``gspc_ohlcv_1999_2018.csv.gz`` over its span (1999-01-04 to 2018-12-31), and outside that span the
  index level of ``sp500_index.csv.gz`` as close only (``adj_close = close``, no OHLC, no volume).
  Where both files have a date the OHLCV file wins; on their 5,031 common dates the closes agree to
  within 1.2e-4 index points (rounding), which ``load_index_bars`` re-checks and logs if it ever fails;
* the five iShares factor ETFs MTUM QUAL SIZE USMV VLUE (``FACTOR_ETFS``), adjusted closes, daily
  2014-01-02 to 2022-12-28.

Loaders return the reference sets as tidy DataFrames indexed by a tz-naive ``date``:
``load_sectors``, ``load_ff3_monthly`` (converted from percent to decimal), ``load_ff_industries_monthly``,
``load_treasury_curve``, ``load_vix``, ``load_spy_total_return``. Files are read once per process
(with ``importlib.resources``, so this works from a wheel or a Lambda image) and copies are returned.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from importlib.resources import files
from typing import Literal

import pandas as pd

from portfolio_engine.adapters.market_data._common import check_range, combine, normalize_symbols, within
from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import ConfigurationError, UnknownSymbolError

logger = logging.getLogger(__name__)

RESOURCE_PACKAGE = "portfolio_engine.resources"
RESOURCE_FOLDER = "bundled"

#: The 20 stocks of the bundled S&P 500 set, in the file's column order.
DEFAULT_UNIVERSE: tuple[str, ...] = (
    "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
)  # fmt: skip
#: The S&P 500 price index, as Yahoo Finance spells it.
INDEX_SYMBOL = "^GSPC"
#: iShares MSCI USA factor ETFs: momentum, quality, size, minimum volatility, value.
FACTOR_ETFS: tuple[str, ...] = ("MTUM", "QUAL", "SIZE", "USMV", "VLUE")
#: Largest tolerated gap, in index points, between the two ^GSPC files on common dates.
INDEX_AGREEMENT_TOLERANCE = 0.01


def _open_csv(name: str, na_values: Sequence[str] | None = None) -> pd.DataFrame:
    """Read one bundled CSV (gzip or bz2 by suffix) with pandas."""
    compression: Literal["bz2", "gzip"] | None = (
        "bz2" if name.endswith(".bz2") else "gzip" if name.endswith(".gz") else None
    )
    with (files(RESOURCE_PACKAGE) / RESOURCE_FOLDER / name).open("rb") as handle:
        return pd.read_csv(handle, compression=compression, na_values=na_values)


def _wide_to_bars(wide: pd.DataFrame) -> pd.DataFrame:
    """``Date`` + one adjusted-close column per symbol -> canonical bars with ``close = adj_close``."""
    long = wide.melt(id_vars="Date", var_name="symbol", value_name="adj_close").rename(columns={"Date": "date"})
    long["date"] = pd.to_datetime(long["date"], format="%Y-%m-%d")
    long["close"] = long["adj_close"]
    return conform_bars(long.dropna(subset=["adj_close"]))


@lru_cache(maxsize=1)
def _stock_bars() -> pd.DataFrame:
    return _wide_to_bars(_open_csv("sp500_dataset.csv.gz"))


@lru_cache(maxsize=1)
def _factor_bars() -> pd.DataFrame:
    return _wide_to_bars(_open_csv("factors_dataset.csv.gz"))


@lru_cache(maxsize=1)
def _index_bars() -> pd.DataFrame:
    ohlcv = _open_csv("gspc_ohlcv_1999_2018.csv.gz").rename(
        columns={
            "Date": "date",
            "Open": "open",
            "High": "high",
            "Low": "low",
            "Close": "close",
            "Adj Close": "adj_close",
            "Volume": "volume",
        }
    )
    ohlcv["date"] = pd.to_datetime(ohlcv["date"], format="%m/%d/%Y")
    level = _open_csv("sp500_index.csv.gz").rename(columns={"Date": "date", "SP500": "close"})
    level["date"] = pd.to_datetime(level["date"], format="%Y-%m-%d")

    common = ohlcv[["date", "close"]].merge(level, on="date", suffixes=("_ohlcv", "_level"))
    gap = (common["close_ohlcv"] - common["close_level"]).abs().max() if len(common) else 0.0
    if gap > INDEX_AGREEMENT_TOLERANCE:
        logger.warning(
            "bundled ^GSPC files disagree on common dates; the OHLCV file wins",
            extra={"max_abs_gap_points": float(gap), "common_dates": len(common)},
        )
    first, last = ohlcv["date"].min(), ohlcv["date"].max()
    outside = level[(level["date"] < first) | (level["date"] > last)].assign(adj_close=lambda f: f["close"])
    merged = pd.concat([outside, ohlcv], ignore_index=True)
    merged["symbol"] = INDEX_SYMBOL
    return conform_bars(merged)


def load_index_bars() -> pd.DataFrame:
    """Return the merged ``^GSPC`` bars (OHLCV 1999-2018, close-only before and after).

    Returns
    -------
    DataFrame of shape (8313, 8)
        Canonical bars, 1990-01-02 to 2022-12-28.
    """
    return _index_bars().copy()


@lru_cache(maxsize=1)
def _all_bars() -> pd.DataFrame:
    return conform_bars(pd.concat([_stock_bars(), _index_bars(), _factor_bars()], ignore_index=True))


class BundledSource:
    """Offline source over the bundled real data: ``DEFAULT_UNIVERSE``, ``INDEX_SYMBOL`` and ``FACTOR_ETFS``.

    Daily bars only. The whole set is about 190,000 rows and is read once per process.
    """

    name = "bundled"

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol this source serves."""
        return (*DEFAULT_UNIVERSE, INDEX_SYMBOL, *FACTOR_ETFS)

    def fetch(
        self,
        symbols: Sequence[str],
        start: date | None = None,
        end: date | None = None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Return bundled bars for ``symbols`` from ``start`` through ``end`` (inclusive).

        Returns
        -------
        DataFrame
            Canonical bars sorted by (symbol, date).

        Raises
        ------
        UnknownSymbolError
            A symbol is not bundled (the message lists the ones that are).
        EmptyDataError
            No requested symbol has a bar in the range.
        ConfigurationError
            ``interval`` is not ``"1d"`` or ``start`` is after ``end``.
        """
        if interval != "1d":
            raise ConfigurationError(
                f"The bundled data is daily; got interval {interval!r}.",
                hint="Use interval='1d', or a network source ('yahoo') for other intervals.",
            )
        names = normalize_symbols(symbols, source=self.name)
        first, last = check_range(start, end)
        unknown = [s for s in names if s not in self.symbols]
        if unknown:
            raise UnknownSymbolError(
                f"The bundled data has no {unknown}.",
                hint=f"Bundled symbols: {', '.join(self.symbols)}. Use a network source for others.",
            )
        bars = _all_bars()
        frames = {symbol: within(bars[bars["symbol"] == symbol], first, last) for symbol in names}
        return combine(frames, source=self.name, start=first, end=last)


def load_sectors() -> dict[str, str]:
    """Return the GICS sector of each of the 20 bundled stocks (``{"AAPL": "Information Technology", ...}``)."""
    text = (files(RESOURCE_PACKAGE) / RESOURCE_FOLDER / "sectors.json").read_text(encoding="utf-8")
    sectors = json.loads(text)
    return {str(symbol): str(sector) for symbol, sector in sectors.items()}


@lru_cache(maxsize=1)
def _ff3_monthly() -> pd.DataFrame:
    raw = _open_csv("ff3_monthly_1926_2018.csv.gz")
    months = pd.to_datetime(raw["Date"].astype(str), format="%Y%m") + pd.offsets.MonthEnd(0)
    frame = raw.drop(columns="Date").astype("float64") / 100.0
    frame.index = pd.DatetimeIndex(months, name="date")
    return frame


def load_ff3_monthly() -> pd.DataFrame:
    """Return the Fama-French three factors and the risk-free rate, monthly, in decimal.

    The file gives percent (``2.96`` for 2.96 %); this returns ``0.0296``.

    Returns
    -------
    DataFrame of shape (1109, 4)
        Columns ``Mkt-RF``, ``SMB``, ``HML``, ``RF``; index the month-end date, 1926-07-31 to 2018-11-30.

    References
    ----------
    Fama, E. F. and French, K. R. (1993), "Common risk factors in the returns on stocks and bonds",
    Journal of Financial Economics 33(1), 3-56. Data: Kenneth R. French's data library.
    """
    return _ff3_monthly().copy()


@lru_cache(maxsize=1)
def _ff_industries_monthly() -> pd.DataFrame:
    raw = _open_csv("ff_factors_industries_monthly_1949_2017.csv.bz2")
    months = pd.to_datetime(raw["dates"], format="%Y-%m-%d") + pd.offsets.MonthEnd(0)
    frame = raw.drop(columns="dates").astype("float64").rename(columns={"MktRF": "Mkt-RF"})
    frame.index = pd.DatetimeIndex(months, name="date")
    return frame


def load_ff_industries_monthly() -> pd.DataFrame:
    """Return factors (Mkt-RF SMB HML Mom RF), 12 industry and 18 sorted portfolios, monthly, in decimal.

    The file stamps each month with its first day; the index here is the month-end, as in
    ``load_ff3_monthly``, and ``MktRF`` is renamed ``Mkt-RF`` to match it.

    Returns
    -------
    DataFrame of shape (819, 35)
        Index the month-end date, 1949-01-31 to 2017-03-31.
    """
    return _ff_industries_monthly().copy()


def _naive_dates(values: pd.Series) -> pd.DatetimeIndex:
    dates = pd.to_datetime(values, utc=True).dt.tz_convert(None)
    return pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="date")


@lru_cache(maxsize=1)
def _treasury_curve() -> pd.DataFrame:
    raw = _open_csv("treasury_curves_1990_2017.csv.gz")
    frame = raw.drop(columns="Time Period").astype("float64")
    frame.index = _naive_dates(raw["Time Period"])
    return frame


def load_treasury_curve() -> pd.DataFrame:
    """Return US Treasury constant-maturity yields, daily, decimal and annualised.

    Returns
    -------
    DataFrame of shape (6816, 11)
        Columns ``1month`` ... ``30year`` (NaN where a tenor was not published); index tz-naive dates,
        1990-01-02 to 2017-03-29.
    """
    return _treasury_curve().copy()


@lru_cache(maxsize=1)
def _vix() -> pd.DataFrame:
    # The file follows FRED: market holidays are rows with "." for a value; they are dropped.
    raw = _open_csv("vix_2014_2019.csv.gz", na_values=["."]).dropna(subset=["vix"]).reset_index(drop=True)
    frame = raw[["vix"]].astype("float64")
    frame.index = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y"), name="date")
    return frame


def load_vix() -> pd.DataFrame:
    """Return the CBOE VIX close, daily.

    The file marks the 46 market holidays in its span with ``"."`` (FRED's convention); they are left out.

    Returns
    -------
    DataFrame of shape (1259, 1)
        Column ``vix`` in volatility points; index dates 2014-01-03 to 2019-01-03.
    """
    return _vix().copy()


@lru_cache(maxsize=1)
def _spy_total_return() -> pd.DataFrame:
    raw = _open_csv("spy_total_return_1993_2018.csv.gz")
    frame = raw[["return"]].astype("float64")
    frame.index = _naive_dates(raw["date"])
    return frame


def load_spy_total_return() -> pd.DataFrame:
    """Return SPY's daily total return (decimal).

    Returns
    -------
    DataFrame of shape (6357, 1)
        Column ``return``; index tz-naive dates, 1993-02-01 to 2018-04-27.
    """
    return _spy_total_return().copy()
