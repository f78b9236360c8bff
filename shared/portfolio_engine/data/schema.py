"""The canonical shape of price data inside the engine.

Sources return, the lake stores and validation checks one long table of daily (or intraday) bars:

=========  ==============  =====================================================
column     dtype           meaning
=========  ==============  =====================================================
date       datetime64[ns]  bar timestamp, tz-naive (UTC for intraday bars)
symbol     string          ticker as the source spells it (``^GSPC`` for indices)
open       float64         NaN where the source has no OHLC
high       float64
low        float64
close      float64         raw close
adj_close  float64         close adjusted for splits and dividends (always set)
volume     float64         NaN where unknown
=========  ==============  =====================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SchemaError

BAR_COLUMNS: tuple[str, ...] = ("date", "symbol", "open", "high", "low", "close", "adj_close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")


def empty_bars() -> pd.DataFrame:
    """Return an empty bar table with the canonical columns and dtypes."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS})
    frame["date"] = pd.Series(dtype="datetime64[ns]")
    frame["symbol"] = pd.Series(dtype="string")
    return frame[list(BAR_COLUMNS)]


def conform_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a bar table to the canonical schema, sorted by (symbol, date).

    Missing OHLC/volume columns are added as NaN; ``adj_close`` falls back to ``close``.

    Raises
    ------
    SchemaError
        If ``date``, ``symbol`` or both price columns are missing, or a column cannot be made numeric.
    """
    missing = {"date", "symbol"} - set(frame.columns)
    if missing:
        raise SchemaError(
            f"Bar table lacks required column(s) {sorted(missing)}; got {list(frame.columns)}.",
            hint="Provide a long table with 'date', 'symbol' and at least 'close' or 'adj_close'.",
        )
    if "close" not in frame.columns and "adj_close" not in frame.columns:
        raise SchemaError(
            f"Bar table has neither 'close' nor 'adj_close'; got {list(frame.columns)}.",
            hint="Name the price column 'close' (raw) or 'adj_close' (adjusted).",
        )
    out = frame.copy()
    if "adj_close" not in out.columns:
        out["adj_close"] = out["close"]
    if "close" not in out.columns:
        out["close"] = out["adj_close"]
    for column in NUMERIC_COLUMNS:
        if column not in out.columns:
            out[column] = np.nan
        try:
            out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise SchemaError(
                f"Column '{column}' is not numeric: {exc}.",
                hint="Remove thousands separators and text such as 'null' or '-' from price columns.",
            ) from exc
    try:
        dates = pd.to_datetime(out["date"])
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"Column 'date' cannot be parsed as dates: {exc}.", hint="Use ISO 8601 dates.") from exc
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    out["date"] = dates.astype("datetime64[ns]")
    out["symbol"] = out["symbol"].astype("string")
    out = out[list(BAR_COLUMNS)].sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    return out
