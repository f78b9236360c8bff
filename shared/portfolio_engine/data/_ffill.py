"""Bounded forward filling of missing and unusable prices, within each symbol, never backward.

The table is laid on a grid of (universe calendar date, symbol). A price cell needs repair when it
lies between the symbol's first and last bar and is missing (no bar that day), NaN, infinite or not
positive. Repairs copy the last good value of the same column of the same symbol. A run of cells to
repair is filled only when it is at most ``max_ffill`` cells long: a longer outage is not papered
over (none of it is filled) and stays an error for the policy to reject or quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio_engine.data._checks import OHLC_COLUMNS
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


def _run_lengths(invalid: np.ndarray) -> np.ndarray:
    """Length of the run of consecutive True cells (down each column) that each cell belongs to.

    Parameters
    ----------
    invalid : ndarray of bool, shape (n_dates, n_columns)

    Returns
    -------
    ndarray of int, shape (n_dates, n_columns)
        Run length for True cells, 0 elsewhere.
    """
    n_dates, n_cols = invalid.shape
    # Valid cells close a run: every invalid cell shares its label with the invalid cells above it up
    # to the previous valid cell. Offsetting each column keeps labels of different columns apart.
    label = np.cumsum(~invalid, axis=0) + np.arange(n_cols)[None, :] * (n_dates + 1)
    counts = np.bincount(label[invalid], minlength=n_cols * (n_dates + 1))
    return np.where(invalid, counts[label], 0)


def forward_fill(frame: pd.DataFrame, max_ffill: int) -> tuple[pd.DataFrame, FillLog]:
    """Fill missing, non-finite and non-positive prices forward, at most ``max_ffill`` bars in a row.

    Parameters
    ----------
    frame : DataFrame of shape (n_rows, 8)
        Prepared canonical bars: sorted by ``(symbol, date)``, unique keys.
    max_ffill : int
        Longest run of consecutive bars a column may be filled over; 0 fills nothing.

    Returns
    -------
    filled : DataFrame of shape (n_rows + n_inserted, 8)
        Canonical bars sorted by ``(symbol, date)``. Valid prices are never changed; inserted bars
        (calendar gaps short enough to fill) have NaN volume. Open/high/low are filled only on bars
        that report some of them, and on inserted bars that follow a bar with OHLC.
    log : FillLog
        What was filled, and why.
    """
    calendar, date_idx = np.unique(frame["date"].to_numpy(dtype="datetime64[ns]"), return_inverse=True)
    symbols, sym_idx = np.unique(frame["symbol"].to_numpy(dtype=object), return_inverse=True)
    n_dates, n_syms = len(calendar), len(symbols)
    present = np.zeros((n_dates, n_syms), dtype=bool)
    present[date_idx, sym_idx] = True
    first = np.full(n_syms, n_dates)
    last = np.full(n_syms, -1)
    np.minimum.at(first, sym_idx, date_idx)
    np.maximum.at(last, sym_idx, date_idx)
    rows = np.arange(n_dates)[:, None]
    span = (rows >= first[None, :]) & (rows <= last[None, :])

    def grid(column: str) -> np.ndarray:
        out = np.full((n_dates, n_syms), np.nan)
        out[date_idx, sym_idx] = frame[column].to_numpy(dtype="float64")
        return out

    # OHLC cells need a price on bars that report any of open/high/low; an inserted bar follows the
    # bar before it (OHLC if that bar had it), so a gap inside an OHLC period gets OHLC too.
    ohlc_bar = np.isfinite(np.stack([grid(c) for c in OHLC_COLUMNS])).any(axis=0)
    carried_flag = pd.DataFrame(np.where(present, ohlc_bar, np.nan)).ffill().to_numpy()
    needs_ohlc = np.where(present, ohlc_bar, carried_flag == 1.0)

    filled_grids: dict[str, np.ndarray] = {}
    fillable: dict[str, np.ndarray] = {}
    non_finite_cells = np.zeros((n_dates, n_syms), dtype=bool)
    non_positive_cells = np.zeros((n_dates, n_syms), dtype=bool)
    for column in PRICE_COLUMNS:
        values = grid(column)
        required = span if column not in OHLC_COLUMNS else span & needs_ohlc
        with np.errstate(invalid="ignore"):
            good = np.isfinite(values) & (values > 0)
        invalid = required & ~good
        # The source of a fill is the last good value of the column: mask everything else and carry forward.
        carried = pd.DataFrame(np.where(good, values, np.nan)).ffill().to_numpy()
        can = invalid & (_run_lengths(invalid) <= max_ffill) & np.isfinite(carried)
        filled_grids[column] = np.where(can, carried, values)
        fillable[column] = can
        non_finite_cells |= can & present & ~np.isfinite(values)
        with np.errstate(invalid="ignore"):
            non_positive_cells |= can & present & np.isfinite(values) & (values <= 0)

    # A missing bar is inserted only if its adjusted close can be filled: the rest of the gap stays a gap.
    inserted = span & ~present & fillable["adj_close"]
    keep = present | inserted
    s_idx, d_idx = np.nonzero(keep.T)  # symbol-major: sorted by (symbol, date)
    volume = grid("volume")
    columns: dict[str, object] = {
        "date": pd.DatetimeIndex(calendar[d_idx]).astype("datetime64[ns]"),
        "symbol": pd.array(symbols[s_idx], dtype="string"),
    }
    for column in PRICE_COLUMNS:
        columns[column] = filled_grids[column][d_idx, s_idx]
    columns["volume"] = volume[d_idx, s_idx]
    out = pd.DataFrame(columns)[list(BAR_COLUMNS)]

    cells_per_symbol = sum((fillable[c] & keep).sum(axis=0) for c in PRICE_COLUMNS)
    inserted_per_symbol = inserted.sum(axis=0)

    def where(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, d = np.nonzero(mask.T)
        return symbols[s], calendar[d]

    log = FillLog(
        cells=int(np.sum(cells_per_symbol)),
        rows_inserted=int(inserted.sum()),
        cells_by_symbol={str(s): int(n) for s, n in zip(symbols, cells_per_symbol, strict=True) if n},
        inserted_by_symbol={str(s): int(n) for s, n in zip(symbols, inserted_per_symbol, strict=True) if n},
        inserted=where(inserted),
        non_finite=where(non_finite_cells),
        non_positive=where(non_positive_cells),
    )
    return out, log
