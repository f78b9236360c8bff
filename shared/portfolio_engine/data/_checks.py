"""The individual data checks behind :func:`portfolio_engine.data.validation.validate_bars`.

Every check here is pure and vectorised over the whole long table (no Python loop over dates). A
check returns :class:`Finding` objects: the ``(symbol, date)`` of every offending bar, the check's
default severity and an optional one-line detail per symbol. Turning findings into the report's
issues, applying severity overrides and policies is the job of ``validation.py``.

The input of the value checks is a *prepared* table: canonical columns (``schema.conform_bars``),
sorted by ``(symbol, date)``, unique ``(symbol, date)`` keys, a ``RangeIndex``.

The definitions they share (check names, :class:`Finding`) are in ``_findings.py``; the calendar checks
(``off_calendar``, ``calendar_gap``, missing bars) in ``_calendar.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio_engine.data._calendar import TradingCalendar, calendar_gaps, off_calendar
from portfolio_engine.data._findings import (
    _MAD_TO_SIGMA,
    _MEAN_AD_TO_SIGMA,
    DUPLICATE_TIMESTAMP,
    LONG_GAP,
    MISSING_SYMBOL,
    NON_FINITE,
    NON_MONOTONIC,
    NON_POSITIVE,
    OHLC_COLUMNS,
    OHLC_INCONSISTENT,
    OHLC_PARTIAL,
    OUTLIER,
    PRICE_SPIKE,
    SPLIT_JUMP,
    STALE_PRICE,
    CheckParams,
    Finding,
    _finding,
    _fmt_date,
)


# ---------------------------------------------------------------------------------------------------------------------
# structural checks: on the table as given (before sorting and de-duplication)
# ---------------------------------------------------------------------------------------------------------------------
def duplicate_timestamps(frame: pd.DataFrame) -> tuple[Finding, np.ndarray]:
    """Find repeated ``(symbol, date)`` keys.

    Parameters
    ----------
    frame : DataFrame of shape (n_rows, >=2)
        Table with parsed ``date`` and ``symbol`` columns, any row order.

    Returns
    -------
    finding : Finding
        Every repeat after the first occurrence of a key.
    repeated : ndarray of bool, shape (n_rows,)
        The same rows as a mask, so the caller can drop them for the value checks.
    """
    repeated = frame.duplicated(["symbol", "date"], keep="first").to_numpy()
    return _finding(DUPLICATE_TIMESTAMP, "error", frame, repeated), repeated


def non_monotonic(frame: pd.DataFrame) -> Finding:
    """Find bars whose timestamp is earlier than the previous bar of the same symbol, in input order.

    A table sorted newest-first is flagged too: the engine's tables are oldest-first, and a row out of
    place in the middle of a download is a sign that the download is corrupt.
    """
    previous = frame.groupby("symbol", sort=False)["date"].shift(1)
    decreasing = (frame["date"] < previous).fillna(False).to_numpy(dtype=bool)
    return _finding(NON_MONOTONIC, "error", frame, decreasing)


def missing_symbols(present: Sequence[str], expected: Sequence[str]) -> Finding:
    """Symbols the caller expected that have no bar at all."""
    have = set(present)
    absent = np.array([s for s in dict.fromkeys(expected) if s not in have], dtype=object)
    return Finding(
        MISSING_SYMBOL,
        "error",
        absent,
        np.full(len(absent), np.datetime64("NaT"), dtype="datetime64[ns]"),
        {s: "no bars at all for an expected symbol" for s in absent},
    )


# ---------------------------------------------------------------------------------------------------------------------
# helpers on the prepared table
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """Arrays derived once from the prepared table and shared by the value checks."""

    frame: pd.DataFrame
    first: np.ndarray  # bool (n,): the row is its symbol's first
    log_price: np.ndarray  # float (n,): log(adj_close), NaN where adj_close is not a positive finite number
    log_return: np.ndarray  # float (n,): one-bar log return of adj_close within a symbol, NaN if undefined
    ohlc_bar: np.ndarray  # bool (n,): the bar reports at least one of open/high/low
    has_ohlc: np.ndarray  # bool (n,): the bar's symbol reports open/high/low on some bar

    @classmethod
    def build(cls, frame: pd.DataFrame) -> Prepared:
        symbols = frame["symbol"].to_numpy(dtype=object)
        first = np.ones(len(frame), dtype=bool)
        first[1:] = symbols[1:] != symbols[:-1]
        adj = frame["adj_close"].to_numpy(dtype="float64")
        usable = np.isfinite(adj) & (adj > 0)
        log_price = np.full(len(frame), np.nan)
        log_price[usable] = np.log(adj[usable])
        log_return = np.full(len(frame), np.nan)
        log_return[1:] = log_price[1:] - log_price[:-1]
        log_return[first] = np.nan
        ohlc_bar = np.isfinite(frame[list(OHLC_COLUMNS)].to_numpy(dtype="float64")).any(axis=1)
        has_ohlc = pd.Series(ohlc_bar).groupby(frame["symbol"].to_numpy(dtype=object)).transform("any").to_numpy(bool)
        return cls(frame, first, log_price, log_return, ohlc_bar, has_ohlc)

    def previous(self, values: np.ndarray) -> np.ndarray:
        """Return the previous bar's value within the same symbol (NaN on each symbol's first bar)."""
        out = np.empty(len(values), dtype="float64")
        out[0:1] = np.nan
        out[1:] = values[:-1]
        out[self.first] = np.nan
        return out

    def ahead(self, values: np.ndarray, steps: int) -> np.ndarray:
        """Return the value ``steps`` bars later within the same symbol (NaN past the symbol's last bar)."""
        n = len(values)
        out = np.full(n, np.nan)
        if steps >= n:
            return out
        symbols = self.frame["symbol"].to_numpy(dtype=object)
        same = symbols[steps:] == symbols[:-steps]
        out[:-steps] = np.where(same, values[steps:], np.nan)
        return out


def long_gaps(data: Prepared, params: CheckParams) -> Finding:
    """Find bars preceded by more than ``max_gap_bdays`` missing business days (Mon-Fri, no holidays).

    Run without a calendar only, as a secondary check to :func:`calendar_gaps`: it catches gaps the
    whole universe shares (an exchange closure, a source outage), which the universe's own dates
    cannot see. With a calendar, every missing session is a ``calendar_gap`` and a closure is none.
    """
    frame = data.frame
    days = frame["date"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    flagged = np.zeros(len(frame), dtype=bool)
    missing = np.zeros(len(frame), dtype=np.int64)
    if len(frame) > 1:
        missing[1:] = np.busday_count(days[:-1], days[1:]) - 1
        missing[data.first] = 0
        flagged = missing > params.max_gap_bdays
    details: dict[str, str] = {}
    if flagged.any():
        sub = pd.DataFrame(
            {"symbol": frame["symbol"].to_numpy(dtype=object)[flagged], "gap": missing[flagged], "date": days[flagged]}
        )
        for symbol, group in sub.groupby("symbol", sort=True):
            worst = group.iloc[int(group["gap"].to_numpy().argmax())]
            details[str(symbol)] = (
                f"{len(group)} gap(s) over {params.max_gap_bdays} business days; longest {int(worst['gap'])} "
                f"missing business days before {_fmt_date(worst['date'])}"
            )
    return _finding(LONG_GAP, "warning", frame, flagged, details)


def _price_matrix(data: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """Price columns as (n, 5) and a mask of the cells that must hold a price (OHLC on bars that report any)."""
    from portfolio_engine.data.schema import PRICE_COLUMNS

    values = data.frame[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    required = np.ones(values.shape, dtype=bool)
    for j, column in enumerate(PRICE_COLUMNS):
        if column in OHLC_COLUMNS:
            required[:, j] = data.ohlc_bar
    return values, required


def non_finite_prices(data: Prepared) -> Finding:
    """Find bars with a NaN or infinite price.

    ``close`` and ``adj_close`` must always be finite; a bar that reports any of ``open``/``high``/``low``
    must report all three (a bar with none is a close-only bar, see :func:`ohlc_partial`); no price
    may be infinite.
    """
    from portfolio_engine.data.schema import PRICE_COLUMNS

    values, required = _price_matrix(data)
    bad_cells = (np.isnan(values) & required) | np.isinf(values)
    flagged = bad_cells.any(axis=1)
    details = _column_details(data.frame, bad_cells, flagged, PRICE_COLUMNS, "NaN/inf")
    return _finding(NON_FINITE, "error", data.frame, flagged, details)


def non_positive_prices(data: Prepared) -> Finding:
    """Find bars with a zero or negative (finite) price in any price column."""
    from portfolio_engine.data.schema import PRICE_COLUMNS

    values, _ = _price_matrix(data)
    with np.errstate(invalid="ignore"):
        bad_cells = np.isfinite(values) & (values <= 0)
    flagged = bad_cells.any(axis=1)
    details = _column_details(data.frame, bad_cells, flagged, PRICE_COLUMNS, "<= 0")
    return _finding(NON_POSITIVE, "error", data.frame, flagged, details)


def _column_details(
    frame: pd.DataFrame, bad_cells: np.ndarray, flagged: np.ndarray, columns: Sequence[str], what: str
) -> dict[str, str]:
    if not flagged.any():
        return {}
    counts = (
        pd.DataFrame(bad_cells[flagged], columns=list(columns))
        .groupby(frame["symbol"].to_numpy(dtype=object)[flagged])
        .sum()
    )
    return {
        str(symbol): f"{what} in " + ", ".join(f"{col} ({int(n)})" for col, n in row.items() if n)
        for symbol, row in counts.iterrows()
    }


def stale_prices(data: Prepared, params: CheckParams) -> Finding:
    """Find runs of more than ``stale_bars`` consecutive bars with exactly the same ``adj_close``.

    Every bar of such a run is flagged (the count is in bars, the detail gives runs and the longest).
    """
    frame = data.frame
    adj = frame["adj_close"].to_numpy(dtype="float64")
    previous = data.previous(adj)
    repeats = np.isfinite(adj) & (adj == previous)
    # Each bar that does not repeat its predecessor opens a new run; repeats are False on a symbol's
    # first bar, so no run crosses symbols.
    run_id = np.cumsum(~repeats) - 1
    length = np.bincount(run_id)[run_id]
    flagged = length > params.stale_bars
    details: dict[str, str] = {}
    if flagged.any():
        sub = pd.DataFrame(
            {
                "symbol": frame["symbol"].to_numpy(dtype=object)[flagged],
                "run": run_id[flagged],
                "length": length[flagged],
                "date": frame["date"].to_numpy()[flagged],
            }
        )
        for symbol, group in sub.groupby("symbol", sort=True):
            runs = group.drop_duplicates("run")
            worst = runs.iloc[int(runs["length"].to_numpy().argmax())]
            details[str(symbol)] = (
                f"{len(runs)} run(s) of more than {params.stale_bars} equal adj_close; longest {int(worst['length'])} "
                f"bars from {_fmt_date(worst['date'])}"
            )
    return _finding(STALE_PRICE, "warning", frame, flagged, details)


def split_jumps(data: Prepared, params: CheckParams) -> list[Finding]:
    """Find one-bar ``adj_close`` ratios within ``split_tolerance`` (in log) of k or 1/k, k a split ratio.

    A split or reverse split that the adjustment missed shows in ``adj_close`` as a jump by almost
    exactly the split ratio. Where the source also reports a raw ``close`` that differs from
    ``adj_close`` (it does adjust), such a jump is an error: a split the adjustment should have
    absorbed. Where the source gives one series only (``close`` equals ``adj_close`` on every bar),
    the same jump could be a real move and is a warning.

    Returns
    -------
    list of Finding
        At most two: errors (adjusting sources) and warnings (single-series sources).
    """
    frame = data.frame
    lr = data.log_return
    targets = np.log(np.asarray(sorted(set(params.split_ratios)), dtype="float64"))
    near = np.zeros(len(frame), dtype=bool)
    if len(targets):
        distance = np.abs(np.abs(lr)[:, None] - targets[None, :]).min(axis=1)
        near = np.nan_to_num(distance, nan=np.inf) < params.split_tolerance
    close = frame["close"].to_numpy(dtype="float64")
    adj = frame["adj_close"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        differs = np.isfinite(close) & np.isfinite(adj) & (np.abs(close - adj) > 1e-9 * np.abs(adj))
    symbols = frame["symbol"].to_numpy(dtype=object)
    dates = frame["date"].to_numpy(dtype="datetime64[ns]")
    adjusting = pd.Series(differs).groupby(symbols).transform("any").to_numpy(bool)
    out = []
    for severity, mask in (("error", near & adjusting), ("warning", near & ~adjusting)):
        details: dict[str, str] = {}
        for symbol in pd.unique(symbols[mask]):
            rows = np.flatnonzero(mask & (symbols == symbol))
            shown = ", ".join(f"{_fmt_date(dates[i])} x{math.exp(lr[i]):.4f}" for i in rows[:3])
            why = "split not absorbed by the adjustment" if severity == "error" else "unadjusted split or real move"
            details[str(symbol)] = f"adj_close ratio near a split ratio ({why}): {shown}" + (
                " ..." if len(rows) > 3 else ""
            )
        out.append(_finding(SPLIT_JUMP, severity, frame, mask, details))
    return out


def price_spikes(data: Prepared, params: CheckParams) -> Finding:
    """Find ``adj_close`` jumps with ``|log return| > jump_threshold`` that reverse soon after.

    A jump reverses when, within ``reversal_bars`` bars, the log price moves back by at least
    ``reversal_fraction`` of the jump: the pattern of a bad tick (x, 2x, x) or of a split that was
    adjusted late. Real crashes (1987, 2000, 2008) do not give most of their loss back within days.
    """
    frame = data.frame
    lr = data.log_return
    with np.errstate(invalid="ignore"):
        jump = np.abs(lr) > params.jump_threshold
    reversed_ = np.zeros(len(frame), dtype=bool)
    if jump.any():
        sign = np.sign(lr)
        for steps in range(1, params.reversal_bars + 1):
            move = data.ahead(data.log_price, steps) - data.log_price
            with np.errstate(invalid="ignore"):
                reversed_ |= sign * move <= -params.reversal_fraction * np.abs(lr)
    flagged = jump & reversed_
    details = {
        str(s): f"|log return| > {params.jump_threshold} reversed by >= {params.reversal_fraction:.0%} "
        f"within {params.reversal_bars} bars"
        for s in pd.unique(frame["symbol"].to_numpy(dtype=object)[flagged])
    }
    return _finding(PRICE_SPIKE, "error", frame, flagged, details)


def outliers(data: Prepared, params: CheckParams) -> Finding:
    """Find log returns whose robust z-score exceeds ``outlier_z``.

    The z-score uses each symbol's median and median absolute deviation (scaled by 1.4826) of its
    one-bar log returns, so the outliers themselves do not inflate the scale. Where the MAD is 0 (a
    mostly flat series) the mean absolute deviation (scaled by sqrt(pi/2)) stands in; where that is 0
    too, no return is an outlier.
    """
    frame = data.frame
    lr = pd.Series(data.log_return)
    groups = lr.groupby(frame["symbol"].to_numpy(dtype=object))
    centre = groups.transform("median")
    deviation = (lr - centre).abs()
    dev_groups = deviation.groupby(frame["symbol"].to_numpy(dtype=object))
    scale = dev_groups.transform("median") * _MAD_TO_SIGMA
    fallback = dev_groups.transform("mean") * _MEAN_AD_TO_SIGMA
    scale = scale.where(scale > 0, fallback)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (deviation / scale.where(scale > 0)).to_numpy(dtype="float64")
    flagged = np.nan_to_num(z, nan=0.0) > params.outlier_z
    details: dict[str, str] = {}
    if flagged.any():
        sub = pd.DataFrame({"symbol": frame["symbol"].to_numpy(dtype=object)[flagged], "z": z[flagged]})
        for symbol, group in sub.groupby("symbol", sort=True):
            details[str(symbol)] = f"robust |z| > {params.outlier_z:g}; largest {group['z'].max():.1f}"
    return _finding(OUTLIER, "warning", frame, flagged, details)


def ohlc_partial(data: Prepared) -> Finding:
    """Find close-only bars of symbols that report OHLC on other bars.

    Sources often have OHLC for part of a history only (the bundled S&P 500 has it for 1999-2018);
    such bars are usable, but OHLC features (ATR) are NaN on them, hence a warning.
    """
    frame = data.frame
    flagged = data.has_ohlc & ~data.ohlc_bar
    details: dict[str, str] = {}
    if flagged.any():
        symbols = frame["symbol"].to_numpy(dtype=object)
        with_ohlc = pd.Series(data.ohlc_bar).groupby(symbols).sum()
        totals = pd.Series(symbols).value_counts()
        for symbol in pd.unique(symbols[flagged]):
            details[str(symbol)] = (
                f"OHLC on {int(with_ohlc[symbol])} of {int(totals[symbol])} bars; ATR is NaN on the rest"
            )
    return _finding(OHLC_PARTIAL, "warning", frame, flagged, details)


def ohlc_inconsistent(data: Prepared, params: CheckParams) -> Finding:
    """Find bars where ``low <= open, close <= high`` fails (bars with all four prices finite only).

    ``close`` here is the raw close, the price OHLC bars are quoted in. ``ohlc_tolerance`` is relative,
    to absorb rounding in sources that round each field separately.
    """
    frame = data.frame
    o, h, lo, c = (frame[col].to_numpy(dtype="float64") for col in ("open", "high", "low", "close"))
    complete = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
    tol = params.ohlc_tolerance
    with np.errstate(invalid="ignore"):
        body_low = np.minimum(o, c)
        body_high = np.maximum(o, c)
        bad = (
            (lo - body_low > tol * np.abs(body_low))
            | (body_high - h > tol * np.abs(body_high))
            | (lo - h > tol * np.abs(h))
        )
    flagged = complete & bad
    details = {
        str(s): "low <= open/close <= high violated" for s in pd.unique(frame["symbol"].to_numpy(dtype=object)[flagged])
    }
    return _finding(OHLC_INCONSISTENT, "error", frame, flagged, details)


def value_checks(frame: pd.DataFrame, params: CheckParams, calendar: TradingCalendar | None = None) -> list[Finding]:
    """Run every value check on a prepared table, in report order (``long_gap`` only without a calendar)."""
    data = Prepared.build(frame)
    no_long_gaps = _finding(LONG_GAP, "warning", frame, np.zeros(len(frame), dtype=bool))
    return [
        off_calendar(frame, calendar),
        calendar_gaps(frame, calendar),
        long_gaps(data, params) if calendar is None else no_long_gaps,
        non_finite_prices(data),
        non_positive_prices(data),
        stale_prices(data, params),
        *split_jumps(data, params),
        price_spikes(data, params),
        outliers(data, params),
        ohlc_partial(data),
        ohlc_inconsistent(data, params),
    ]
