"""The individual data checks behind :func:`portfolio_engine.data.validation.validate_bars`.

Every check here is pure and vectorised over the whole long table (no Python loop over dates). A
check returns :class:`Finding` objects: the ``(symbol, date)`` of every offending bar, the check's
default severity and an optional one-line detail per symbol. Turning findings into the report's
issues, applying severity overrides and policies is the job of ``validation.py``.

The input of the value checks is a *prepared* table: canonical columns (``schema.conform_bars``),
sorted by ``(symbol, date)``, unique ``(symbol, date)`` keys, a ``RangeIndex``.

The calendar checks (``off_calendar``, ``calendar_gap``) compare each symbol with the sessions of an
exchange (:class:`TradingCalendar`, built from ``exchange_calendars``), or, without one, with the
union of the dates of the symbols in the table (the fallback for sources with no exchange calendar).
A bar belongs to the session of its date: for daily bars (stamped at midnight) the date itself, for
intraday bars (UTC) the date in the exchange's time zone, so the night between two sessions is
never a gap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import ConfigurationError

# Check names, in the order the report lists them.
SCHEMA = "schema"
MISSING_KEY = "missing_key"
MISSING_SYMBOL = "missing_symbol"
DUPLICATE_TIMESTAMP = "duplicate_timestamp"
NON_MONOTONIC = "non_monotonic"
OFF_CALENDAR = "off_calendar"
CALENDAR_GAP = "calendar_gap"
LONG_GAP = "long_gap"
NON_FINITE = "non_finite"
NON_POSITIVE = "non_positive"
STALE_PRICE = "stale_price"
SPLIT_JUMP = "split_jump"
PRICE_SPIKE = "price_spike"
OUTLIER = "outlier"
OHLC_PARTIAL = "ohlc_partial"
OHLC_INCONSISTENT = "ohlc_inconsistent"

CHECKS: tuple[str, ...] = (
    SCHEMA,
    MISSING_KEY,
    MISSING_SYMBOL,
    DUPLICATE_TIMESTAMP,
    NON_MONOTONIC,
    OFF_CALENDAR,
    CALENDAR_GAP,
    LONG_GAP,
    NON_FINITE,
    NON_POSITIVE,
    STALE_PRICE,
    SPLIT_JUMP,
    PRICE_SPIKE,
    OUTLIER,
    OHLC_PARTIAL,
    OHLC_INCONSISTENT,
)

# Errors that forward filling can repair (a missing or unusable price, filled from the last good one).
# Under ``forward_fill`` an ``off_calendar`` bar is repaired too, by dropping it: nothing is invented.
FILLABLE_CHECKS: frozenset[str] = frozenset({CALENDAR_GAP, NON_FINITE, NON_POSITIVE})

# Checks whose severity a policy may not lower: ignoring them would make the cleaned table silently
# differ from the input (rows dropped or de-duplicated without an error).
STRUCTURAL_CHECKS: frozenset[str] = frozenset({SCHEMA, MISSING_KEY, DUPLICATE_TIMESTAMP})

OHLC_COLUMNS: tuple[str, ...] = ("open", "high", "low")

# Scale factor that makes the median absolute deviation a consistent estimator of a normal sigma.
_MAD_TO_SIGMA = 1.4826
# Mean absolute deviation to sigma for a normal variable, sqrt(pi / 2): the fallback when MAD is 0.
_MEAN_AD_TO_SIGMA = math.sqrt(math.pi / 2.0)


@dataclass(frozen=True)
class Finding:
    """Offending bars of one check at one default severity.

    Attributes
    ----------
    check : str
        Check name (one of ``CHECKS``).
    severity : str
        Default severity, ``"error"`` or ``"warning"``, before the policy's overrides.
    symbols : ndarray of shape (n_items,)
        Symbol of each offending bar (object dtype).
    dates : ndarray of shape (n_items,)
        Timestamp of each offending bar (``datetime64[ns]``); NaT where no date applies.
    details : Mapping[str, str]
        Optional one-line detail per symbol.
    """

    check: str
    severity: str
    symbols: np.ndarray
    dates: np.ndarray
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return len(self.symbols) == 0


@dataclass(frozen=True)
class CheckParams:
    """Thresholds the value checks need (a plain copy of the policy's numbers)."""

    max_gap_bdays: int
    stale_bars: int
    outlier_z: float
    jump_threshold: float
    reversal_bars: int
    reversal_fraction: float
    split_ratios: Sequence[int]
    split_tolerance: float
    ohlc_tolerance: float


def _finding(
    check: str, severity: str, frame: pd.DataFrame, mask: np.ndarray, details: Mapping[str, str] | None = None
) -> Finding:
    return Finding(
        check=check,
        severity=severity,
        symbols=frame["symbol"].to_numpy(dtype=object)[mask],
        dates=frame["date"].to_numpy(dtype="datetime64[ns]")[mask],
        details=dict(details or {}),
    )


def _fmt_date(value: np.datetime64 | pd.Timestamp) -> str:
    stamp = pd.Timestamp(value)
    return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()


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


# ---------------------------------------------------------------------------------------------------------------------
# trading calendars
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TradingCalendar:
    """The sessions of one exchange over a span of whole years.

    Attributes
    ----------
    name : str
        Calendar code of ``exchange_calendars`` (ISO 10383 MIC, e.g. ``"XNYS"``).
    tz : str
        The exchange's time zone: intraday bars (UTC) belong to the session of their local date.
    sessions : ndarray of shape (n_sessions,)
        Session dates (``datetime64[ns]`` at midnight), sorted. Holidays and unscheduled closures
        (11-14 Sep 2001, Hurricane Sandy 29-30 Oct 2012, national days of mourning) are not sessions.
    """

    name: str
    tz: str
    sessions: np.ndarray

    def session_of(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return the session date each bar belongs to, and whether its symbol has intraday bars.

        A symbol is intraday when any of its timestamps is not at midnight; its bars (UTC) belong to
        the date they fall on in the exchange's time zone. A daily bar belongs to its own date.

        Returns
        -------
        day : ndarray of datetime64[ns], shape (n_rows,)
        intraday : ndarray of bool, shape (n_rows,)
        """
        stamps = pd.DatetimeIndex(frame["date"].to_numpy(dtype="datetime64[ns]"))
        midnight = stamps.normalize()
        day = midnight.to_numpy(dtype="datetime64[ns]", copy=True)
        symbols = frame["symbol"].to_numpy(dtype=object)
        intraday = pd.Series(stamps != midnight).groupby(symbols).transform("any").to_numpy(dtype=bool)
        if intraday.any():
            local = stamps[intraday].tz_localize("UTC").tz_convert(self.tz).tz_localize(None).normalize()
            day[intraday] = local.to_numpy(dtype="datetime64[ns]")
        return day, intraday

    def locate(self, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the index of each date in ``sessions`` and whether the date is a session at all."""
        position = np.searchsorted(self.sessions, day)
        inside = position < len(self.sessions)
        is_session = np.zeros(len(day), dtype=bool)
        is_session[inside] = self.sessions[position[inside]] == day[inside]
        return position, is_session


def calendar_names() -> frozenset[str]:
    """Return the calendar codes and aliases ``exchange_calendars`` knows (``XNYS``, ``NYSE``, ``24/7``, ...)."""
    import exchange_calendars

    return frozenset(exchange_calendars.get_calendar_names(include_aliases=True))


def canonical_calendar_name(name: str) -> str:
    """Return the calendar code an alias stands for (``"NYSE"`` -> ``"XNYS"``)."""
    import exchange_calendars

    return str(exchange_calendars.resolve_alias(name))


@lru_cache(maxsize=16)
def _calendar_for_years(name: str, first_year: int, last_year: int) -> TradingCalendar:
    # Imported on first use: the package costs ~0.16 s to import and ~0.14 s per calendar built,
    # which every Lambda that imports validation would pay at cold start even when it never validates.
    import exchange_calendars

    with warnings.catch_warnings():
        # exchange_calendars 4.13 reads a tz-aware Series' .values, deprecated in pandas 3.1; the values it
        # gets (UTC nanoseconds) are the ones it wants, so the warning says nothing about our data.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray", category=DeprecationWarning)
        calendar = exchange_calendars.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    sessions = pd.DatetimeIndex(calendar.sessions).tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return TradingCalendar(name=name, tz=str(calendar.tz), sessions=sessions)


def trading_calendar(name: str, first: pd.Timestamp, last: pd.Timestamp) -> TradingCalendar:
    """Return the sessions of calendar ``name`` over the years from ``first`` to ``last``.

    Calendars are computed offline from the rules and the closures ``exchange_calendars`` ships with
    (no download); they are cached per process by whole years.

    Raises
    ------
    ConfigurationError
        For an unknown name, or dates outside what the calendar covers.
    """
    from exchange_calendars.errors import CalendarError

    # A day of margin: an intraday bar's local date can be the day before its UTC date.
    first_year = (first - pd.Timedelta(days=1)).year
    last_year = (last + pd.Timedelta(days=1)).year
    try:
        return _calendar_for_years(name, first_year, last_year)
    except CalendarError as exc:
        raise ConfigurationError(
            f"Exchange calendar {name!r} cannot cover bars from {first.date()} to {last.date()}: {exc}",
            hint="Choose another calendar in the validation policy, or calendar=None to use the bars' own dates.",
        ) from exc


@dataclass(frozen=True)
class MissingBars:
    """Bars a symbol lacks between its first and last bar, by its calendar.

    Attributes
    ----------
    symbols, dates : ndarray of shape (n_missing,)
        The missing ``(symbol, date)``, sorted by symbol then date (dates are session dates for a
        calendar, universe dates without one).
    fillable : ndarray of bool, shape (n_missing,)
        Whether one bar stands for the missing date, so that ``forward_fill`` may insert it: daily
        bars, and any bar without a calendar. A session missing from an intraday series is a whole
        day of bars, which filling does not invent.
    detail : Mapping[str, str]
        One line per symbol: how many, the longest run.
    """

    symbols: np.ndarray
    dates: np.ndarray
    fillable: np.ndarray
    detail: Mapping[str, str] = field(default_factory=dict)


def _runs_detail(symbols: np.ndarray, index: np.ndarray, dates: np.ndarray, what: str) -> dict[str, str]:
    """Per symbol: the count and the longest run of consecutive missing items (``index`` steps of 1)."""
    if len(symbols) == 0:
        return {}
    starts = np.ones(len(symbols), dtype=bool)
    starts[1:] = (symbols[1:] != symbols[:-1]) | (index[1:] != index[:-1] + 1)
    run_id = np.cumsum(starts) - 1
    length = np.bincount(run_id)
    run_start = np.flatnonzero(starts)
    details: dict[str, str] = {}
    for symbol in pd.unique(symbols):
        runs = np.unique(run_id[symbols == symbol])
        worst = runs[int(length[runs].argmax())]
        first, n = run_start[worst], int(length[worst])
        details[str(symbol)] = (
            f"{int(length[runs].sum())} {what}; longest run {n} from {_fmt_date(dates[first])} "
            f"to {_fmt_date(dates[first + n - 1])}"
        )
    return details


def missing_bars(frame: pd.DataFrame, calendar: TradingCalendar | None) -> MissingBars:
    """Find the dates each symbol lacks between its first and last bar.

    With a calendar, those are the exchange's sessions on which the symbol has no bar (bars on other
    days are :func:`off_calendar`, and do not count as sessions); without one, the dates of the
    union of all symbols' dates that the symbol lacks. Dates before a symbol's first bar (a later
    listing) or after its last bar are not missing.

    Parameters
    ----------
    frame : DataFrame of shape (n_rows, 8)
        Prepared canonical bars.
    calendar : TradingCalendar or None

    Returns
    -------
    MissingBars
    """
    if calendar is None:
        return _missing_from_union(frame)
    empty = np.zeros(0, dtype=object)
    if frame.empty:
        return MissingBars(empty, np.zeros(0, dtype="datetime64[ns]"), np.zeros(0, dtype=bool))
    day, intraday = calendar.session_of(frame)
    position, is_session = calendar.locate(day)
    codes, names = pd.factorize(frame["symbol"].to_numpy(dtype=object)[is_session], sort=True)
    symbols = np.asarray(names, dtype=object)
    sym_idx = np.asarray(codes, dtype=np.int64)
    position = position[is_session].astype(np.int64)
    first = np.full(len(symbols), len(calendar.sessions), dtype=np.int64)
    last = np.full(len(symbols), -1, dtype=np.int64)
    np.minimum.at(first, sym_idx, position)
    np.maximum.at(last, sym_idx, position)
    # Every session from each symbol's first to its last, laid end to end: symbol k's sessions start
    # at starts[k]; a bar marks its own slot, and the unmarked slots are the missing sessions.
    counts = last - first + 1
    starts = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(symbols)), counts)
    expected = np.repeat(first, counts) + np.arange(int(counts.sum())) - np.repeat(starts, counts)
    present = np.zeros(len(expected), dtype=bool)
    present[starts[sym_idx] + position - first[sym_idx]] = True
    lacking = ~present
    miss_symbols = symbols[owner[lacking]]
    miss_index = expected[lacking]
    miss_dates = calendar.sessions[miss_index]
    intraday_symbols = set(frame["symbol"].to_numpy(dtype=object)[intraday])
    fillable = ~pd.Index(miss_symbols, dtype=object).isin(list(intraday_symbols))
    detail = _runs_detail(miss_symbols, miss_index, miss_dates, f"{calendar.name} session(s) without a bar")
    for symbol in intraday_symbols & set(detail):
        detail[str(symbol)] += " (intraday: a missing session is not filled)"
    return MissingBars(miss_symbols, miss_dates, fillable, detail)


def _missing_from_union(frame: pd.DataFrame) -> MissingBars:
    """Missing bars against the union of all symbols' dates (the fallback without a calendar)."""
    if frame.empty:
        return MissingBars(np.zeros(0, dtype=object), np.zeros(0, dtype="datetime64[ns]"), np.zeros(0, dtype=bool))
    calendar, date_idx = np.unique(frame["date"].to_numpy(dtype="datetime64[ns]"), return_inverse=True)
    symbols, sym_idx = np.unique(frame["symbol"].to_numpy(dtype=object), return_inverse=True)
    present = np.zeros((len(calendar), len(symbols)), dtype=bool)
    present[date_idx, sym_idx] = True
    first = np.full(len(symbols), len(calendar))
    last = np.full(len(symbols), -1)
    np.minimum.at(first, sym_idx, date_idx)
    np.maximum.at(last, sym_idx, date_idx)
    rows = np.arange(len(calendar))[:, None]
    missing = (rows >= first[None, :]) & (rows <= last[None, :]) & ~present
    s_idx, d_idx = np.nonzero(missing.T)  # symbol-major: sorted by (symbol, date)
    detail = _runs_detail(symbols[s_idx], d_idx, calendar[d_idx], "date(s) of the universe without a bar")
    return MissingBars(symbols[s_idx], calendar[d_idx], np.ones(len(s_idx), dtype=bool), detail)


# ---------------------------------------------------------------------------------------------------------------------
# value checks on the prepared table
# ---------------------------------------------------------------------------------------------------------------------
def off_calendar_mask(frame: pd.DataFrame, calendar: TradingCalendar | None) -> np.ndarray:
    """Return a mask of shape (n_rows,) of the bars whose session date is not a session (none without a calendar)."""
    if calendar is None or frame.empty:
        return np.zeros(len(frame), dtype=bool)
    day, _ = calendar.session_of(frame)
    _, is_session = calendar.locate(day)
    return ~is_session


def off_calendar(frame: pd.DataFrame, calendar: TradingCalendar | None) -> Finding:
    """Find bars whose session date is not a session of the calendar (a weekend, a holiday, a closure).

    Such a bar is not a price the exchange made: a vendor's stray bar, a date stamped in the wrong
    time zone, or a series from another market. Without a calendar nothing is flagged.
    """
    flagged = off_calendar_mask(frame, calendar)
    details: dict[str, str] = {}
    if flagged.any():
        assert calendar is not None  # nothing is flagged without one
        day, _ = calendar.session_of(frame)
        symbols = frame["symbol"].to_numpy(dtype=object)
        for symbol in pd.unique(symbols[flagged]):
            days = pd.DatetimeIndex(np.unique(day[flagged & (symbols == symbol)]))
            shown = ", ".join(f"{d.date().isoformat()} ({d.day_name()[:3]})" for d in days[:3])
            details[str(symbol)] = f"bars on {len(days)} day(s) that are not {calendar.name} sessions: {shown}" + (
                " ..." if len(days) > 3 else ""
            )
    return _finding(OFF_CALENDAR, "error", frame, flagged, details)


def calendar_gaps(frame: pd.DataFrame, calendar: TradingCalendar | None = None) -> Finding:
    """Find the dates a symbol lacks between its first and last bar (see :func:`missing_bars`).

    Returns
    -------
    Finding
        One item per missing ``(symbol, date)``.
    """
    missing = missing_bars(frame, calendar)
    return Finding(CALENDAR_GAP, "error", missing.symbols, missing.dates, dict(missing.detail))


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
