"""Schedules on a hand-checked calendar, estimation windows, drift triggers and the fan-out split."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.backtest.windows import (
    DriftTrigger,
    EstimationWindow,
    WalkForwardWindow,
    calendar_schedule,
    regime_change_schedule,
    signal_schedule,
    split_windows,
)
from portfolio_engine.exceptions import RiskInputError, SpecificationError

# Business days 2024-01-25 .. 2024-03-05 with Feb 29 (a Thursday) removed as a holiday.
CALENDAR = pd.bdate_range("2024-01-25", "2024-03-05").drop(pd.Timestamp("2024-02-29"))


def dates(*days: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(d) for d in days])


def test_monthly_schedule_is_the_last_trading_day_of_each_month_but_never_the_final_date() -> None:
    # Given a calendar whose February ends on a holiday (Feb 29) and which stops mid-March
    # When the monthly schedule is built
    schedule = calendar_schedule(CALENDAR, "monthly")
    # Then January ends on Wed 31st, February on Wed 28th, and the partial March gives no date
    assert schedule.equals(dates("2024-01-31", "2024-02-28"))


def test_weekly_schedule_is_each_friday_or_the_last_day_before_it() -> None:
    schedule = calendar_schedule(CALENDAR, "weekly")
    expected = dates("2024-01-26", "2024-02-02", "2024-02-09", "2024-02-16", "2024-02-23", "2024-03-01")
    assert schedule.equals(expected)
    # A week whose Friday is a holiday ends on Thursday.
    holiday = CALENDAR.drop(pd.Timestamp("2024-02-09"))
    assert pd.Timestamp("2024-02-08") in calendar_schedule(holiday, "weekly")


def test_min_history_drops_early_dates_and_daily_excludes_the_last_date() -> None:
    # 2024-01-31 is row 4 of the calendar: 4 rows of history before it.
    assert calendar_schedule(CALENDAR, "monthly", min_history=5).equals(dates("2024-02-28"))
    assert calendar_schedule(CALENDAR, "monthly", min_history=4).equals(dates("2024-01-31", "2024-02-28"))
    daily = calendar_schedule(CALENDAR, "daily")
    assert daily.equals(CALENDAR[:-1])


def test_signal_and_regime_change_schedules() -> None:
    # Given labels that change at the close of row 3 and row 6
    labels = pd.Series(["calm"] * 3 + ["turbulent"] * 3 + ["calm"] * 4, index=CALENDAR[:10])
    # When the regime-change schedule is built
    schedule = regime_change_schedule(labels)
    # Then decisions come the next trading day (rows 4 and 7), seeing the change in their history
    assert schedule.equals(CALENDAR[[4, 7]])
    signal = pd.Series(False, index=CALENDAR)
    signal.iloc[[2, 5, len(CALENDAR) - 1]] = True
    assert signal_schedule(signal, CALENDAR).equals(CALENDAR[[2, 5]])


def test_schedule_errors_name_the_problem() -> None:
    with pytest.raises(RiskInputError, match="non-empty DatetimeIndex"):
        calendar_schedule(pd.DatetimeIndex([]), "monthly")
    with pytest.raises(SpecificationError, match="'fortnightly'"):
        calendar_schedule(CALENDAR, "fortnightly")  # type: ignore[arg-type]
    with pytest.raises(RiskInputError, match="boolean Series"):
        signal_schedule(pd.Series(1.0, index=CALENDAR), CALENDAR)


def test_estimation_window_bounds() -> None:
    assert EstimationWindow("rolling", 3).bounds(10) == (7, 10)
    assert EstimationWindow("expanding", 3).bounds(10) == (0, 10)
    with pytest.raises(SpecificationError, match=r"needs 20 rows .* only 10") as info:
        EstimationWindow("rolling", 20).bounds(10)
    assert "min_history" in info.value.hint
    with pytest.raises(SpecificationError):
        EstimationWindow("sliding", 3)  # type: ignore[arg-type]


def test_drift_trigger_measures() -> None:
    target = np.array([0.5, 0.5])
    weights = np.array([[0.52, 0.48], [0.58, 0.42], [0.55, 0.40]])
    assert DriftTrigger(0.05).fired(weights, target).tolist() == [False, True, True]
    # half_l1 counts cash: row 3 is |0.05| + |0.10| + cash 0.05 -> 0.10
    assert DriftTrigger(0.09, "half_l1").fired(weights, target).tolist() == [False, False, True]


def test_split_windows_cover_every_decision_once_and_round_trip() -> None:
    decisions = CALENDAR[::3]  # 10 of the 28 dates
    windows = split_windows(decisions, 4)
    assert [len(w.decisions) for w in windows] == [3, 3, 2, 2]
    assert pd.DatetimeIndex([d for w in windows for d in w.decisions]).equals(decisions)
    assert windows[0].previous is None and windows[-1].end is None
    for left, right in itertools.pairwise(windows):
        assert right.previous == left.decisions[-1] and left.end == right.decisions[0]
    assert all(WalkForwardWindow.from_dict(w.to_dict()) == w for w in windows)
    assert len(split_windows(decisions, 100)) == len(decisions)
    with pytest.raises(SpecificationError):
        split_windows(decisions, 0)
