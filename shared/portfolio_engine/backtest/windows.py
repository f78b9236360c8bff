"""Rebalance schedules, estimation windows and the split of a backtest into independent tasks.

Timing convention (the whole backtest package uses it). ``returns`` row ``t`` is the close-to-close simple
return from the close of the previous trading date to the close of ``t``. A *decision at t*:

* sees only rows strictly before ``t`` (information available at the close of ``t - 1``);
* trades at the close of ``t``, so the return of day ``t`` still accrues to the old (drifted) weights and the new
  target earns from ``t + 1`` on. Costs are charged on day ``t``.

Calendar schedules pick the last trading day of each period from the trading calendar (the returns index);
triggered schedules come from a boolean signal or a regime-label series known before the decision; a
state-dependent trigger (drift, :class:`DriftTrigger`) is evaluated by the engine on its own holdings.

Fan-out. :func:`split_windows` cuts the decision dates into consecutive blocks. A block's task recomputes the
target of the decision just before its first one (a pure function of the returns strictly before that date), drifts
it to its first decision and carries on alone; the blocks' outputs, concatenated, are the single-process result
bit for bit (see :mod:`portfolio_engine.backtest.engine`). That holds when the schedule does not depend on the
holdings (no state trigger) and the policy ignores ``context.current_weights``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import RiskInputError, SpecificationError

__all__ = [
    "DriftTrigger",
    "EstimationWindow",
    "Frequency",
    "WalkForwardWindow",
    "calendar_schedule",
    "regime_change_schedule",
    "signal_schedule",
    "split_windows",
]

Frequency = Literal["daily", "weekly", "monthly", "quarterly", "yearly"]
_PERIODS: dict[str, str] = {"weekly": "W", "monthly": "M", "quarterly": "Q", "yearly": "Y"}


def _calendar(calendar: pd.Index) -> pd.DatetimeIndex:
    if not isinstance(calendar, pd.DatetimeIndex) or len(calendar) == 0:
        raise RiskInputError(
            f"The trading calendar must be a non-empty DatetimeIndex; got {type(calendar).__name__} of length "
            f"{len(calendar) if hasattr(calendar, '__len__') else '?'}.",
            hint="Pass returns.index of a DataFrame of daily returns indexed by date.",
        )
    if not (calendar.is_monotonic_increasing and calendar.is_unique):
        raise RiskInputError(
            "The trading calendar must be strictly increasing (sorted, no repeated date).",
            hint="Sort the returns by date and drop duplicate rows (returns.sort_index()).",
        )
    return calendar


def _drop_short(dates: pd.DatetimeIndex, calendar: pd.DatetimeIndex, min_history: int) -> pd.DatetimeIndex:
    if not isinstance(min_history, int | np.integer) or min_history < 0:
        raise SpecificationError(f"min_history must be an integer >= 0; got {min_history!r}.", hint="e.g. 252.")
    positions = calendar.get_indexer(dates)
    return dates[positions >= min_history]


def calendar_schedule(
    calendar: pd.Index, frequency: Frequency = "monthly", *, min_history: int = 0
) -> pd.DatetimeIndex:
    """Decision dates on the last trading day of each period of ``calendar``.

    A date ends its period when the next trading date falls in another period. The calendar's final date is
    never a decision date: a trade at its close would earn nothing and only cost.

    Parameters
    ----------
    calendar : DatetimeIndex of shape (n_days,)
        Trading dates, sorted (the returns index).
    frequency : {"daily", "weekly", "monthly", "quarterly", "yearly"}, default "monthly"
        Weeks end on the last trading day of each Monday-Sunday week.
    min_history : int, default 0
        Drop decision dates with fewer than this many trading dates before them (the estimation warm-up).

    Returns
    -------
    DatetimeIndex

    Raises
    ------
    RiskInputError
        An empty, unsorted or non-date calendar.
    SpecificationError
        An unknown frequency or a negative ``min_history``.
    """
    cal = _calendar(calendar)
    if frequency == "daily":
        return _drop_short(cal[:-1], cal, min_history)
    if frequency not in _PERIODS:
        raise SpecificationError(
            f"Unknown rebalance frequency {frequency!r}.", hint="Choose daily, weekly, monthly, quarterly or yearly."
        )
    # Periods of a tz-naive copy: to_period drops the time zone anyway, and warns on tz-aware indexes.
    periods = (
        cal.tz_localize(None).to_period(_PERIODS[frequency]).asi8 if cal.tz else cal.to_period(_PERIODS[frequency]).asi8
    )
    ends = periods[:-1] != periods[1:]
    return _drop_short(cal[:-1][ends], cal, min_history)


def signal_schedule(signal: pd.Series, calendar: pd.Index, *, min_history: int = 0) -> pd.DatetimeIndex:
    """Decision dates where a precomputed boolean ``signal`` is True.

    ``signal[t]`` must be computed from data strictly before ``t`` (it triggers the decision at ``t``).

    Parameters
    ----------
    signal : Series of bool, indexed by date
        Dates outside ``calendar`` are ignored; calendar dates missing from it count as False.
    calendar : DatetimeIndex of shape (n_days,)
    min_history : int, default 0

    Returns
    -------
    DatetimeIndex

    Raises
    ------
    RiskInputError
        The signal is not a boolean Series, or the calendar is invalid.
    """
    cal = _calendar(calendar)
    if not isinstance(signal, pd.Series) or not pd.api.types.is_bool_dtype(signal.dtype):
        raise RiskInputError(
            f"signal must be a boolean Series indexed by date; got {type(signal).__name__} "
            f"{getattr(signal, 'dtype', '')}.",
            hint="Build it with a comparison, e.g. labels.ne(labels.shift()).shift(1, fill_value=False).",
        )
    on = signal.reindex(cal, fill_value=False).to_numpy(dtype=bool, copy=True)
    on[-1] = False
    return _drop_short(cal[on], cal, min_history)


def regime_change_schedule(labels: pd.Series, *, min_history: int = 0) -> pd.DatetimeIndex:
    """Decision dates that follow a change of regime label.

    ``labels[d]`` is the regime inferred from data up to the close of ``d``. A change seen at the close of ``d``
    (``labels[d] != labels[d - 1]``) triggers the decision at the next trading date, which sees ``d`` in its
    history. The calendar is ``labels.index``.

    Parameters
    ----------
    labels : Series indexed by date
        Regime state names or integers.
    min_history : int, default 0

    Returns
    -------
    DatetimeIndex

    Raises
    ------
    RiskInputError
        ``labels`` is not a Series on a valid calendar, or holds missing labels.
    """
    if not isinstance(labels, pd.Series) or labels.isna().any():
        raise RiskInputError(
            f"labels must be a Series of regime labels without missing values; got {type(labels).__name__}.",
            hint="Pass the filtered (not smoothed) labels, one per trading date.",
        )
    cal = _calendar(labels.index)
    changed = labels.ne(labels.shift()).to_numpy(dtype=bool, copy=True)
    changed[0] = False
    # The change observed at the close of d acts at the next trading date.
    acts = np.concatenate([[False], changed[:-1]])
    acts[-1] = False
    return _drop_short(cal[acts], cal, min_history)


@dataclass(frozen=True)
class EstimationWindow:
    """Which rows of history a decision's policy sees: the last ``length`` (rolling) or all (expanding).

    Parameters
    ----------
    kind : {"rolling", "expanding"}, default "expanding"
    length : int, default 252
        Rows for ``rolling``; the minimum number of rows for ``expanding``.

    Raises
    ------
    SpecificationError
        Unknown kind or a length < 1.
    """

    kind: Literal["rolling", "expanding"] = "expanding"
    length: int = 252

    def __post_init__(self) -> None:
        if self.kind not in ("rolling", "expanding"):
            raise SpecificationError(f"Unknown window kind {self.kind!r}.", hint="Choose 'rolling' or 'expanding'.")
        if not isinstance(self.length, int | np.integer) or isinstance(self.length, bool) or self.length < 1:
            raise SpecificationError(f"Window length must be an integer >= 1; got {self.length!r}.", hint="e.g. 252.")

    def bounds(self, position: int, date: Any = None) -> tuple[int, int]:
        """Row positions ``[start, stop)`` of the history of a decision at row ``position`` (stop == position).

        Raises
        ------
        SpecificationError
            Fewer than ``length`` rows before ``position``.
        """
        if position < self.length:
            raise SpecificationError(
                f"The {self.kind} window needs {self.length} rows of history before the decision at "
                f"{date if date is not None else position}; only {position} are available.",
                hint="Start the schedule later (calendar_schedule(..., min_history=window.length)) or shorten it.",
            )
        return (position - self.length if self.kind == "rolling" else 0, position)


@dataclass(frozen=True)
class DriftTrigger:
    """Trigger a rebalance when the holdings drift from their target by more than ``threshold``.

    Evaluated by the engine on the weights at each close; a drift seen at the close of ``d`` triggers the
    decision at the next trading date.

    Parameters
    ----------
    threshold : float
        In the units of ``measure``, > 0.
    measure : {"max_abs", "half_l1"}, default "max_abs"
        ``max |w - target|`` or one-way turnover ``sum |w - target| / 2`` (cash included).

    Raises
    ------
    SpecificationError
        A threshold <= 0 or an unknown measure.
    """

    threshold: float
    measure: Literal["max_abs", "half_l1"] = "max_abs"

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, int | float) and np.isfinite(self.threshold) and self.threshold > 0):
            raise SpecificationError(f"DriftTrigger.threshold must be > 0; got {self.threshold!r}.", hint="e.g. 0.05.")
        if self.measure not in ("max_abs", "half_l1"):
            raise SpecificationError(f"Unknown drift measure {self.measure!r}.", hint="Choose 'max_abs' or 'half_l1'.")

    def fired(self, weights: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Whether each row of ``weights`` (n_closes, n_assets) drifted past the threshold from ``target``."""
        gap = np.abs(weights - target)
        if self.measure == "max_abs":
            return np.asarray(gap.max(axis=1) > self.threshold)
        cash_gap = np.abs(weights.sum(axis=1) - target.sum())
        return np.asarray((gap.sum(axis=1) + cash_gap) / 2 > self.threshold)


@dataclass(frozen=True)
class WalkForwardWindow:
    """One fan-out task: a block of consecutive decision dates.

    Attributes
    ----------
    index : int
        Position of the block (0 first).
    decisions : tuple of Timestamp
        The block's decision dates, increasing.
    previous : Timestamp or None
        The decision just before the block (its target is recomputed by the task), None for the first block.
    end : Timestamp or None
        Exclusive end of the block's daily output (the next block's first decision), None for the last block.
    """

    index: int
    decisions: tuple[pd.Timestamp, ...]
    previous: pd.Timestamp | None
    end: pd.Timestamp | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO dates), small enough for a Step Functions Map item."""
        return {
            "index": self.index,
            "decisions": [d.isoformat() for d in self.decisions],
            "previous": None if self.previous is None else self.previous.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WalkForwardWindow:
        """Read :meth:`to_dict` output back."""
        return cls(
            index=int(data["index"]),
            decisions=tuple(pd.Timestamp(d) for d in data["decisions"]),
            previous=None if data.get("previous") is None else pd.Timestamp(data["previous"]),
            end=None if data.get("end") is None else pd.Timestamp(data["end"]),
        )


def split_windows(
    decision_dates: Sequence[pd.Timestamp] | pd.DatetimeIndex, n_windows: int
) -> tuple[WalkForwardWindow, ...]:
    """Cut the decision dates into ``n_windows`` consecutive blocks of near-equal size (fan-out tasks).

    Parameters
    ----------
    decision_dates : DatetimeIndex
        Every decision of the backtest, increasing.
    n_windows : int
        Number of tasks, clipped to the number of decisions.

    Returns
    -------
    tuple of WalkForwardWindow

    Raises
    ------
    SpecificationError
        No decision dates, unsorted dates, or ``n_windows < 1``.
    """
    dates = pd.DatetimeIndex(list(decision_dates))
    if len(dates) == 0 or not (dates.is_monotonic_increasing and dates.is_unique):
        raise SpecificationError(
            f"split_windows needs increasing, distinct decision dates; got {len(dates)} dates.",
            hint="Build them with calendar_schedule(returns.index, 'monthly').",
        )
    if not isinstance(n_windows, int | np.integer) or n_windows < 1:
        raise SpecificationError(f"n_windows must be an integer >= 1; got {n_windows!r}.", hint="e.g. 8.")
    blocks = [b for b in np.array_split(np.arange(len(dates)), min(int(n_windows), len(dates))) if len(b)]
    return tuple(
        WalkForwardWindow(
            index=i,
            decisions=tuple(dates[b]),
            previous=dates[b[0] - 1] if b[0] > 0 else None,
            end=dates[b[-1] + 1] if b[-1] + 1 < len(dates) else None,
        )
        for i, b in enumerate(blocks)
    )
