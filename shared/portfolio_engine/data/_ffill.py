"""Bounded forward filling of missing and unusable prices, within each symbol, never backward.

Each symbol is filled along its own bars plus the bars its calendar says it lacks (``missing``, from
:func:`portfolio_engine.data._calendar.missing_bars`): an exchange's sessions between the symbol's first
and last bar, or the universe's dates without a calendar. No other symbol's dates enter. A price cell
needs repair when it is missing (no bar that day), NaN, infinite or not positive. Repairs copy the
last good value of the same column of the same symbol. A run of cells to repair is filled only when
it is at most ``max_ffill`` cells long: a longer outage is not papered over (none of it is filled)
and stays an error for the policy to reject or quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio_engine.data._findings import OHLC_COLUMNS
from portfolio_engine.data.schema import BAR_COLUMNS, PRICE_COLUMNS


@dataclass(frozen=True)
class FillLog:
    """What :func:`forward_fill` changed, for the report.

    Attributes
    ----------
    cells : int
        Price cells filled in the returned table.
    rows_inserted : int
        Bars added for calendar gaps.
    cells_by_symbol, inserted_by_symbol : dict of str to int
        The same per symbol.
    inserted, non_finite, non_positive : tuple of ndarray
        ``(symbols, dates)`` of the bars filled for each reason (a bar may appear under both value reasons).
    """

    cells: int
    rows_inserted: int
    cells_by_symbol: dict[str, int]
    inserted_by_symbol: dict[str, int]
    inserted: tuple[np.ndarray, np.ndarray]
    non_finite: tuple[np.ndarray, np.ndarray]
    non_positive: tuple[np.ndarray, np.ndarray]


def _run_lengths(invalid: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Length of the run of consecutive True cells that each cell belongs to, within one symbol.

    Parameters
    ----------
    invalid : ndarray of bool, shape (n_rows,)
    first : ndarray of bool, shape (n_rows,)
        True on each symbol's first row: runs never cross symbols.

    Returns
    -------
    ndarray of int, shape (n_rows,)
        Run length for True cells, 0 elsewhere.
    """
    # Valid cells and each symbol's first row open a new label: every invalid cell shares its label
    # with the invalid cells above it, back to the previous valid cell of the same symbol.
    label = np.cumsum(~invalid | first)
    counts = np.bincount(label[invalid], minlength=int(label[-1]) + 1 if len(label) else 1)
    return np.where(invalid, counts[label], 0)


def forward_fill(
    frame: pd.DataFrame, max_ffill: int, missing: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[pd.DataFrame, FillLog]:
    """Fill missing, non-finite and non-positive prices forward, at most ``max_ffill`` bars in a row.

    Parameters
    ----------
    frame : DataFrame of shape (n_rows, 8)
        Prepared canonical bars: sorted by ``(symbol, date)``, unique keys.
    max_ffill : int
        Longest run of consecutive bars a column may be filled over; 0 fills nothing.
    missing : tuple of (ndarray, ndarray), optional
        ``(symbols, dates)`` of the bars each symbol lacks, between its first and last bar, that may
        be inserted. None inserts nothing (only the prices of existing bars are repaired).

    Returns
    -------
    filled : DataFrame of shape (n_rows + n_inserted, 8)
        Canonical bars sorted by ``(symbol, date)``. Valid prices are never changed; inserted bars
        (gaps short enough to fill) have NaN volume. Open/high/low are filled only on bars that
        report some of them, and on inserted bars that follow a bar with OHLC.
    log : FillLog
        What was filled, and why.
    """
    rows = frame[list(BAR_COLUMNS)].assign(_present=True)
    if missing is not None and len(missing[0]):
        extra = pd.DataFrame(
            {
                "date": np.asarray(missing[1], dtype="datetime64[ns]"),
                "symbol": pd.array(np.asarray(missing[0], dtype=object), dtype="string"),
            }
        )
        rows = pd.concat([rows, extra.assign(_present=False)], ignore_index=True)
        rows = rows.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    n = len(rows)
    symbols = rows["symbol"].to_numpy(dtype=object)
    dates = rows["date"].to_numpy(dtype="datetime64[ns]")
    present = rows["_present"].to_numpy(dtype=bool)
    first = np.ones(n, dtype=bool)
    first[1:] = symbols[1:] != symbols[:-1]
    group = np.cumsum(first) - 1

    def carry(values: np.ndarray) -> np.ndarray:
        """Carry the last non-NaN value forward within each symbol."""
        return pd.Series(values).groupby(group).ffill().to_numpy(dtype="float64")

    # OHLC cells need a price on bars that report any of open/high/low; an inserted bar follows the
    # bar before it (OHLC if that bar had it), so a gap inside an OHLC period gets OHLC too.
    ohlc_bar = np.isfinite(rows[list(OHLC_COLUMNS)].to_numpy(dtype="float64")).any(axis=1)
    needs_ohlc = np.where(present, ohlc_bar, carry(np.where(present, ohlc_bar, np.nan)) == 1.0)

    filled: dict[str, np.ndarray] = {}
    fillable: dict[str, np.ndarray] = {}
    non_finite_cells = np.zeros(n, dtype=bool)
    non_positive_cells = np.zeros(n, dtype=bool)
    for column in PRICE_COLUMNS:
        values = rows[column].to_numpy(dtype="float64")
        required = np.ones(n, dtype=bool) if column not in OHLC_COLUMNS else needs_ohlc
        with np.errstate(invalid="ignore"):
            good = np.isfinite(values) & (values > 0)
        invalid = required & ~good
        # The source of a fill is the last good value of the column: mask everything else and carry forward.
        carried = carry(np.where(good, values, np.nan))
        can = invalid & (_run_lengths(invalid, first) <= max_ffill) & np.isfinite(carried)
        filled[column] = np.where(can, carried, values)
        fillable[column] = can
        non_finite_cells |= can & present & ~np.isfinite(values)
        with np.errstate(invalid="ignore"):
            non_positive_cells |= can & present & np.isfinite(values) & (values <= 0)

    # A missing bar is inserted only if its adjusted close can be filled: the rest of the gap stays a gap.
    inserted = ~present & fillable["adj_close"]
    keep = present | inserted
    columns: dict[str, object] = {
        "date": pd.DatetimeIndex(dates[keep]).astype("datetime64[ns]"),
        "symbol": pd.array(symbols[keep], dtype="string"),
    }
    for column in PRICE_COLUMNS:
        columns[column] = filled[column][keep]
    columns["volume"] = rows["volume"].to_numpy(dtype="float64")[keep]
    out = pd.DataFrame(columns)[list(BAR_COLUMNS)]

    cells = sum(fillable[c] & keep for c in PRICE_COLUMNS)
    cells_by_symbol = pd.Series(np.asarray(cells, dtype=np.int64)).groupby(symbols).sum()
    inserted_by_symbol = pd.Series(inserted.astype(np.int64)).groupby(symbols).sum()

    def where(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return symbols[mask], dates[mask]

    log = FillLog(
        cells=int(np.sum(cells)),
        rows_inserted=int(inserted.sum()),
        cells_by_symbol={str(s): int(k) for s, k in cells_by_symbol.items() if k},
        inserted_by_symbol={str(s): int(k) for s, k in inserted_by_symbol.items() if k},
        inserted=where(inserted),
        non_finite=where(non_finite_cells),
        non_positive=where(non_positive_cells),
    )
    return out, log
