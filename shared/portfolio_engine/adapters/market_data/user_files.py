"""Prices a user uploads: CSV or Parquet, long or wide, read into canonical bars.

Accepted layouts (column names matched case-insensitively, ignoring spaces, ``.``, ``_`` and ``-``):

* **long**: a date column, a symbol column, and at least a close or adjusted close column, e.g.
  ``Date,Ticker,Open,High,Low,Close,Adj Close,Volume``;
* **wide**: a date column (or a date index in Parquet) and one column of closes per symbol, e.g.
  ``Date,AAPL,MSFT``. The values are taken as ``close`` (and so ``adj_close``).

Aliases: date = ``date``, ``datetime``, ``timestamp``, ``time``, ``day``; symbol = ``symbol``,
``ticker``, ``asset``, ``security``; close = ``close``, ``price``, ``last``; adjusted close =
``adj close``, ``adjclose``, ``adj_close``, ``adjusted close``, ``Adj. Close``; volume = ``volume``, ``vol``.

Rows that are not bars are dropped and listed (``read_user_file``, ``UserFileSource.dropped_rows``),
never dropped silently: a row without a date, a long row without a symbol, and in a wide file a blank
cell between a symbol's first and last price. Blank cells before a symbol's first price or after its
last are not rows (the symbols of a wide file start and end on different days). A long row with a
symbol and date but no price is kept as a bar with a NaN price, for ingest and validation to judge.

The input is a local path, a URI pyarrow understands (``s3://bucket/key``, ``file:///...``; pass a
``pyarrow.fs`` filesystem for a custom endpoint) or the file's bytes. Format comes from the suffix
(``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``) or, for bytes, from the Parquet magic number.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from portfolio_engine.adapters.market_data._common import check_range, combine, normalize_symbols, within
from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import ConfigurationError, SchemaError, UnknownSymbolError

logger = logging.getLogger(__name__)

FileFormat = Literal["csv", "parquet"]
_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
_ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "datetime", "timestamp", "time", "day"),
    "symbol": ("symbol", "ticker", "asset", "security"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "price", "last"),
    "adj_close": ("adjclose", "adjustedclose"),
    "volume": ("volume", "vol"),
}
_CANONICAL_BY_ALIAS = {alias: canonical for canonical, aliases in _ALIASES.items() for alias in aliases}


def _key(name: object) -> str:
    """``"Adj. Close"``, ``"adj_close"``, ``" AdjClose "`` -> ``"adjclose"``."""
    return re.sub(r"[\s._\-]", "", str(name)).lower()


def _detect_format(data: bytes, name: str | None) -> FileFormat:
    if name is not None:
        lowered = name.lower()
        if lowered.endswith((".parquet", ".pq", ".parq")):
            return "parquet"
        if lowered.endswith((".csv", ".csv.gz", ".txt")):
            return "csv"
    return "parquet" if data[:4] == _PARQUET_MAGIC else "csv"


def _read_source(source: str | Path | bytes, filesystem: pafs.FileSystem | None) -> tuple[bytes, str | None]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), None
    text = str(source)
    try:
        if filesystem is not None:
            fs, path = filesystem, text
        elif "://" in text:
            fs, path = pafs.FileSystem.from_uri(text)
        else:
            fs, path = pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())
        with fs.open_input_stream(path) as stream:
            return stream.read(), text
    except (OSError, pa.ArrowInvalid) as exc:
        raise ConfigurationError(
            f"Cannot read the price file {text!r}: {exc}.",
            hint="Check the path (or URI) and permissions; upload CSV or Parquet.",
        ) from exc


def _parse(data: bytes, fmt: FileFormat, label: str) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
            if isinstance(frame.index, pd.DatetimeIndex):
                index_name = "date" if frame.index.name is None else str(frame.index.name)
                frame = frame.rename_axis(index_name).reset_index()
            return frame
        compression: Literal["gzip"] | None = "gzip" if data[:2] == _GZIP_MAGIC else None
        with warnings.catch_warnings():
            # A row longer than the header would silently become the index (or be cut): refuse it.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.BytesIO(data), compression=compression, index_col=False)
    except (
        ValueError,
        OSError,
        pa.ArrowException,
        pd.errors.ParserError,
        pd.errors.ParserWarning,
        UnicodeDecodeError,
    ) as exc:
        raise SchemaError(
            f"{label} is not a readable {fmt.upper()} file: {type(exc).__name__}: {exc}.",
            hint="Export the prices as UTF-8 CSV with a header row, or as Parquet.",
        ) from exc


def _canonical_columns(frame: pd.DataFrame) -> dict[str, str]:
    """Map original column -> canonical name for the columns that have an alias (first match wins)."""
    mapping: dict[str, str] = {}
    for column in frame.columns:
        canonical = _CANONICAL_BY_ALIAS.get(_key(column))
        if canonical is not None and canonical not in mapping.values():
            mapping[str(column)] = canonical
    return mapping


def read_user_bars(
    source: str | Path | bytes,
    *,
    file_format: FileFormat | None = None,
    filesystem: pafs.FileSystem | None = None,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Read a user's price file into canonical bars (``read_user_file`` also says which rows it dropped).

    Raises
    ------
    ConfigurationError, SchemaError
        See ``read_user_file``.
    """
    bars, dropped = read_user_file(source, file_format=file_format, filesystem=filesystem, symbol=symbol)
    if len(dropped):
        logger.warning("rows dropped from a price file", extra={"rows": len(dropped)})
    return bars


def read_user_file(
    source: str | Path | bytes,
    *,
    file_format: FileFormat | None = None,
    filesystem: pafs.FileSystem | None = None,
    symbol: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a user's price file into canonical bars, and list the rows that are not bars.

    Parameters
    ----------
    source : str, Path or bytes
        Local path, URI (``s3://...``) or the file's content.
    file_format : {"csv", "parquet"}, optional
        Overrides detection from the suffix or content.
    filesystem : pyarrow.fs.FileSystem, optional
        Filesystem to open ``source`` with (e.g. ``S3FileSystem(endpoint_override=...)``).
    symbol : str, optional
        Ticker of a single-symbol file with OHLC columns but no symbol column.

    Returns
    -------
    bars : DataFrame
        Canonical bars sorted by (symbol, date).
    dropped : DataFrame of shape (n_dropped, 4)
        ``row`` (1-based data row of the file, the header not counted), ``symbol`` and ``date``
        (missing when that is why) and ``reason`` (``no date``, ``no symbol``, ``no price``).

    Raises
    ------
    ConfigurationError
        The file cannot be opened.
    SchemaError
        The file is not CSV/Parquet, is empty, has no date column, has neither a symbol column nor
        symbol columns, has no price column, or has values that are not numbers or dates.
    """
    data, name = _read_source(source, filesystem)
    label = repr(name) if name is not None else "The uploaded file"
    if not data.strip():
        raise SchemaError(f"{label} is empty.", hint="Upload a CSV or Parquet file with a header and price rows.")
    fmt = file_format or _detect_format(data, name)
    frame = _parse(data, fmt, label)
    if frame.empty:
        raise SchemaError(f"{label} has a header but no rows.", hint="Upload a file with at least one price row.")
    mapping = _canonical_columns(frame)
    if "date" not in mapping.values():
        raise SchemaError(
            f"{label} has no date column; columns: {[str(c) for c in frame.columns]}.",
            hint="Name the date column 'date' (or 'Date', 'datetime', 'timestamp').",
        )
    price_columns = {"open", "high", "low", "close", "adj_close", "volume"} & set(mapping.values())
    single_symbol = "symbol" not in mapping.values() and (
        bool({"close", "adj_close"} & price_columns) or len(price_columns) >= 2
    )
    if single_symbol:
        if symbol is None:
            raise SchemaError(
                f"{label} looks like bars of one symbol (columns {[str(c) for c in frame.columns]}) "
                "but has no symbol column.",
                hint="Add a 'symbol' column, or pass symbol='TICKER' for a single-symbol file.",
            )
        frame = frame.assign(symbol=symbol)
        mapping["symbol"] = "symbol"
    rows = np.arange(1, len(frame) + 1)
    wide_format = "symbol" not in mapping.values()
    if not wide_format:
        long = frame[list(mapping)].rename(columns=mapping).assign(_row=rows)
        if not {"close", "adj_close"} & set(long.columns):
            raise SchemaError(
                f"{label} is in long format but has no price column; columns: {[str(c) for c in frame.columns]}.",
                hint="Add a 'close' or 'adj close' column.",
            )
    else:
        date_column = next(column for column, canonical in mapping.items() if canonical == "date")
        symbol_columns = [c for c in frame.columns if str(c) != date_column]
        if not symbol_columns:
            raise SchemaError(
                f"{label} has a date column but no symbol or price columns.",
                hint="Use long format (date, symbol, close, ...) or wide format (date, one column per symbol).",
            )
        wide = frame.rename(columns={date_column: "date"}).assign(_row=rows)
        long = wide.melt(id_vars=["date", "_row"], value_vars=symbol_columns, var_name="symbol", value_name="close")
    long["date"] = _parse_dates(long["date"])
    names = long["symbol"].astype("string").str.strip()
    long["symbol"] = names.mask(names == "")
    reason = pd.Series("", index=long.index, dtype=object)
    reason[long["symbol"].isna()] = "no symbol"
    reason[long["date"].isna()] = "no date"
    if wide_format:
        # A blank cell inside a symbol's dated range is a missing price; outside it, not a row at all.
        priced = long["close"].notna() & long["date"].notna()
        first_day = long["date"].where(priced).groupby(long["symbol"]).transform("min")
        last_day = long["date"].where(priced).groupby(long["symbol"]).transform("max")
        blank = long["close"].isna()
        reason[blank] = ""
        reason[blank & long["symbol"].notna() & (long["date"] > first_day) & (long["date"] < last_day)] = "no price"
        long = long[~blank | (reason != "")]
        reason = reason[long.index]
    dropped = long.loc[reason != "", ["_row", "symbol", "date"]].rename(columns={"_row": "row"})
    dropped = dropped.assign(reason=reason[reason != ""]).sort_values("row", kind="stable").reset_index(drop=True)
    bars = conform_bars(long[reason == ""].drop(columns="_row"))
    if bars.empty:
        raise SchemaError(f"{label} has no price values.", hint="Fill the price columns; blanks and 'n/a' are skipped.")
    duplicated = bars.duplicated(subset=["symbol", "date"])
    if duplicated.any():
        first = bars.loc[duplicated, ["symbol", "date"]].iloc[0]
        raise SchemaError(
            f"{label} has {int(duplicated.sum())} repeated (symbol, date) rows, "
            f"e.g. {first['symbol']} {first['date']:%Y-%m-%d}.",
            hint="Keep one row per symbol and date.",
        )
    return bars, dropped


def _parse_dates(values: pd.Series) -> pd.Series:
    """Parse the date column as ``conform_bars`` does; a blank is a missing date (NaT), text is an error.

    Raises
    ------
    SchemaError
        If a value is neither blank nor a date.
    """
    try:
        return pd.to_datetime(values)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"Column 'date' cannot be parsed as dates: {exc}.", hint="Use ISO 8601 dates.") from exc


class UserFileSource:
    """A ``MarketDataSource`` over one uploaded price file (read once, at construction).

    Parameters
    ----------
    source : str, Path or bytes
        Local path, URI or content; see ``read_user_bars``.
    file_format : {"csv", "parquet"}, optional
        Overrides format detection.
    filesystem : pyarrow.fs.FileSystem, optional
        Filesystem to open ``source`` with.
    symbol : str, optional
        Ticker of a single-symbol file without a symbol column.
    name : str, default "file"
        Source name recorded with the bars in the lake.

    Raises
    ------
    ConfigurationError, SchemaError
        See ``read_user_bars``.
    """

    #: A file is the whole history in hand: ingest re-reads all of it, so a corrected (or broken)
    #: old bar is noticed; the lake's upsert keeps only what changed.
    incremental = False

    def __init__(
        self,
        source: str | Path | bytes,
        *,
        file_format: FileFormat | None = None,
        filesystem: pafs.FileSystem | None = None,
        symbol: str | None = None,
        name: str = "file",
    ) -> None:
        self.name = name
        self._bars, self._dropped = read_user_file(
            source, file_format=file_format, filesystem=filesystem, symbol=symbol
        )

    @property
    def dropped_rows(self) -> pd.DataFrame:
        """Rows of the file that are not bars: ``row``, ``symbol``, ``date``, ``reason`` (see ``read_user_file``)."""
        return self._dropped.copy()

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols found in the file, sorted."""
        return tuple(sorted(self._bars["symbol"].astype(str).unique()))

    def fetch(
        self,
        symbols: Sequence[str],
        start: date | None = None,
        end: date | None = None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Return the file's bars for ``symbols`` from ``start`` through ``end`` (inclusive).

        ``interval`` is recorded by the caller; the file's own frequency is served as is.

        Raises
        ------
        UnknownSymbolError
            A symbol is not in the file (the message lists those that are).
        EmptyDataError
            No requested symbol has a bar in the range.
        ConfigurationError
            ``start`` is after ``end``.
        """
        names = normalize_symbols(symbols, source=self.name)
        first, last = check_range(start, end)
        unknown = [s for s in names if s not in self.symbols]
        if unknown:
            raise UnknownSymbolError(
                f"The uploaded file has no {unknown}.", hint=f"Symbols in the file: {', '.join(self.symbols)}."
            )
        frames = {s: within(self._bars[self._bars["symbol"] == s], first, last) for s in names}
        return combine(frames, source=self.name, start=first, end=last)
