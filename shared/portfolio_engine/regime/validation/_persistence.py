"""How long regimes last and how often they switch, from a sequence of labels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError

#: Days per year for the calendar span of a DatetimeIndex (Julian year).
DAYS_PER_YEAR = 365.25


def spells(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding: the state of each spell (maximal run of equal labels) and its length.

    Parameters
    ----------
    states : ndarray of int, shape (n_observations,)

    Returns
    -------
    spell_states, lengths : ndarray of int, shape (n_spells,)
    """
    if states.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, states[1:] != states[:-1]])
    lengths = np.diff(np.r_[starts, states.size])
    return states[starts], lengths


@dataclass(frozen=True, eq=False)
class PersistenceStats:
    """Regime persistence of one label sequence.

    Attributes
    ----------
    per_state : DataFrame indexed by state
        Columns ``share`` (of periods), ``n_spells``, ``mean_duration``, ``median_duration``,
        ``max_duration`` (periods; NaN for a state never visited). The first and last spells are
        censored by the sample's ends and counted as they are.
    transition_matrix : DataFrame of shape (n_states, n_states)
        Empirical ``P(s_{t+1} = j | s_t = i)`` from consecutive pairs; NaN rows for states never left
        from (no successor observed).
    n_switches : int
        Periods whose label differs from the previous one.
    n_observations : int
    switches_per_year : float or None
        ``n_switches`` over the calendar span of the index in years, when a DatetimeIndex is given.
    """

    per_state: pd.DataFrame
    transition_matrix: pd.DataFrame
    n_switches: int
    n_observations: int
    switches_per_year: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (NaN -> None), keyed by state as strings."""

        def clean(value: Any) -> Any:
            value = float(value)
            return None if math.isnan(value) else value

        return {
            "per_state": {
                str(state): {column: clean(row[column]) for column in self.per_state.columns}
                for state, row in self.per_state.iterrows()
            },
            "transition_matrix": [[clean(v) for v in row] for row in self.transition_matrix.to_numpy()],
            "n_switches": int(self.n_switches),
            "n_observations": int(self.n_observations),
            "switches_per_year": None if self.switches_per_year is None else float(self.switches_per_year),
        }


def persistence_stats(states: Any, index: Any = None, *, n_states: int | None = None) -> PersistenceStats:
    """Share, spell count and durations per regime, the empirical transition matrix, switching frequency.

    Parameters
    ----------
    states : array-like of int, shape (n_observations,)
        Regime per period, in time order. A Series lends its index when ``index`` is None.
    index : DatetimeIndex of length n_observations, optional
        Dates of the periods; with it, ``switches_per_year`` is reported.
    n_states : int, optional
        Report states ``0..n_states-1`` even if some never occur; default: the labels present.

    Returns
    -------
    PersistenceStats

    Raises
    ------
    DataError
        If ``states`` is empty, holds missing or non-integer labels, or ``index`` has another length.
    """
    if index is None and isinstance(states, pd.Series):
        index = states.index
    values = np.asarray(pd.Series(np.asarray(states)).to_numpy(dtype="float64", na_value=np.nan))
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all() or np.any(values != np.round(values)):
        raise DataError(
            f"states must be a non-empty sequence of integer labels without gaps; got {values.size} value(s).",
            hint="Drop the warm-up rows (NA labels) first.",
        )
    labels = values.astype(np.int64)
    present = np.unique(labels)
    all_states = np.arange(n_states) if n_states is not None else present
    if n_states is not None and (present.min() < 0 or present.max() >= n_states):
        raise DataError(
            f"Labels {present.tolist()} fall outside 0..{n_states - 1}.", hint="Pass the model's number of states."
        )
    spell_states, lengths = spells(labels)
    rows = []
    for state in all_states:
        durations = lengths[spell_states == state]
        has = durations.size > 0
        rows.append(
            {
                "share": float(np.mean(labels == state)),
                "n_spells": int(durations.size),
                "mean_duration": float(durations.mean()) if has else math.nan,
                "median_duration": float(np.median(durations)) if has else math.nan,
                "max_duration": float(durations.max()) if has else math.nan,
            }
        )
    per_state = pd.DataFrame(rows, index=pd.Index(all_states, name="state"))

    position = {int(s): k for k, s in enumerate(all_states)}
    counts = np.zeros((len(all_states), len(all_states)))
    codes = np.array([position[int(s)] for s in labels])
    np.add.at(counts, (codes[:-1], codes[1:]), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        transitions = np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), np.nan)
    transition_matrix = pd.DataFrame(
        transitions, index=pd.Index(all_states, name="from"), columns=pd.Index(all_states, name="to")
    )

    n_switches = int(np.sum(labels[1:] != labels[:-1]))
    per_year = None
    if index is not None:
        if len(index) != labels.size:
            raise DataError(f"index has {len(index)} entries for {labels.size} states.", hint="Pass the states' dates.")
        if isinstance(index, pd.DatetimeIndex):
            span_years = (index[-1] - index[0]) / pd.Timedelta(days=DAYS_PER_YEAR)
            per_year = n_switches / span_years if span_years > 0 else None
    return PersistenceStats(per_state, transition_matrix, n_switches, int(labels.size), per_year)
