"""Validation of bar tables: each check on a hand-built series, each policy, the trading calendar, and the real
bundled data.

Hand-built series trade on NYSE sessions (from ``exchange_calendars``, the default policy's calendar) unless a
test says otherwise; the closures and holidays the calendar tests rely on are written out by hand.
"""

from __future__ import annotations

import json
import warnings
from functools import cache

import exchange_calendars
import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from portfolio_engine.data.validation import (
    CHECKS,
    ValidationPolicy,
    ValidationReport,
    ValidationResult,
    validate_bars,
)
from portfolio_engine.exceptions import DataValidationError, EmptyDataError

START = "2024-01-02"  # the first NYSE session of 2024 (a Tuesday; 1 January is a holiday)


@cache
def _nyse(start: str = START) -> pd.DatetimeIndex:
    with warnings.catch_warnings():  # exchange_calendars 4.13 under pandas 3.1: a deprecation inside the package
        warnings.simplefilter("ignore", DeprecationWarning)
        calendar = exchange_calendars.get_calendar("XNYS", start=start, end="2026-12-31")
    return pd.DatetimeIndex(calendar.sessions).tz_localize(None)


def sessions(n: int, start: str = START) -> pd.DatetimeIndex:
    """The first n NYSE sessions from ``start``."""
    return _nyse(start)[:n]


def walk(n: int, seed: int, start_price: float = 100.0) -> np.ndarray:
    """A seeded random walk of n prices with 1% daily moves: clean data for every check."""
    rng = np.random.default_rng(seed)
    return start_price * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))


def bars(symbol: str, adj_close, *, close=None, dates=None, **columns) -> pd.DataFrame:
    adj = np.asarray(adj_close, dtype="float64")
    frame = pd.DataFrame(
        {
            "date": sessions(len(adj)) if dates is None else pd.DatetimeIndex(dates),
            "symbol": symbol,
            "adj_close": adj,
            "close": adj if close is None else np.asarray(close, dtype="float64"),
        }
    )
    for name, values in columns.items():
        frame[name] = np.asarray(values, dtype="float64")
    return frame


def rejected(frame: pd.DataFrame, policy: ValidationPolicy | None = None, **kwargs) -> ValidationReport:
    """Validate expecting a rejection; return the report the error carries."""
    with pytest.raises(DataValidationError) as caught:
        validate_bars(frame, policy, **kwargs)
    report = caught.value.report  # type: ignore[attr-defined]
    assert isinstance(report, ValidationReport)
    assert not report.passed
    return report


def checks_of(report: ValidationReport, severity: str | None = None, unresolved: bool = False) -> set[str]:
    return {
        i.check
        for i in report.issues
        if (severity is None or i.severity == severity) and (not unresolved or i.unresolved)
    }


# ----------------------------------------------------------------------------------------------------------------------
# one check at a time (default policy: reject)
# ----------------------------------------------------------------------------------------------------------------------
def test_clean_series_passes_without_issues() -> None:
    # Given two clean random walks on the same business days
    frame = pd.concat([bars("AAA", walk(60, 1)), bars("BBB", walk(60, 2))])
    # When validated under the default policy
    result = validate_bars(frame)
    # Then nothing is reported and nothing is changed
    assert isinstance(result, ValidationResult)
    assert result.report.passed and result.report.issues == ()
    assert result.report.symbol_status == {"AAA": "ok", "BBB": "ok"}
    assert result.report.forward_filled == 0 and len(result.bars) == 120
    assert list(result.bars.columns) == ["date", "symbol", "open", "high", "low", "close", "adj_close", "volume"]


def test_duplicate_timestamp_is_an_error() -> None:
    frame = bars("AAA", walk(30, 1))
    frame = pd.concat([frame, frame.iloc[[10]]], ignore_index=True)
    report = rejected(frame)
    (issue,) = report.issues_for("duplicate_timestamp")
    assert issue.symbol == "AAA" and issue.count == 1 and issue.severity == "error"
    assert issue.first_date == pd.Timestamp(frame["date"].iloc[10])


def test_decreasing_timestamp_is_an_error() -> None:
    frame = bars("AAA", walk(30, 1))
    order = list(range(30))
    order[12], order[13] = 13, 12  # one bar out of place
    report = rejected(frame.iloc[order])
    (issue,) = report.issues_for("non_monotonic")
    assert issue.count == 1 and issue.first_date == pd.Timestamp(frame["date"].iloc[12])


def test_calendar_gap_is_a_missing_session_of_the_symbol() -> None:
    # Given BBB lacks one NYSE session that AAA trades
    aaa = bars("AAA", walk(40, 1))
    bbb = bars("BBB", walk(40, 2)).drop(index=[17])
    report = rejected(pd.concat([aaa, bbb]))
    (issue,) = report.issues_for("calendar_gap")
    assert issue.symbol == "BBB" and issue.count == 1
    assert issue.first_date == sessions(40)[17]
    assert "1 XNYS session(s) without a bar" in issue.detail


def test_later_listing_is_not_a_calendar_gap() -> None:
    aaa = bars("AAA", walk(40, 1))
    late = bars("LATE", walk(20, 2), dates=aaa["date"].iloc[20:])
    result = validate_bars(pd.concat([aaa, late]))
    assert result.report.issues_for("calendar_gap") == ()


def test_a_gap_of_a_single_symbol_is_a_calendar_gap() -> None:
    # Given a single symbol whose bars skip two weeks of sessions: its own dates cannot show it
    dates = sessions(50).delete(range(20, 30))
    # When validated against the NYSE calendar (the default), it is an error; under forward_fill
    # with max_ffill=3 too, since the run of 10 is too long to fill
    report = rejected(bars("AAA", walk(40, 1), dates=dates))
    (issue,) = report.issues_for("calendar_gap")
    assert issue.count == 10 and issue.first_date == sessions(50)[20] and issue.last_date == sessions(50)[29]
    assert "longest run 10" in issue.detail
    assert report.issues_for("long_gap") == ()  # folded into calendar_gap when there is a calendar
    rejected(bars("AAA", walk(40, 1), dates=dates), ValidationPolicy(mode="forward_fill", max_ffill=3))


def test_without_a_calendar_the_same_gap_is_only_a_long_gap_warning() -> None:
    # Given the same two-week hole, validated against the union of the symbols' dates
    dates = sessions(50).delete(range(20, 30))
    result = validate_bars(bars("AAA", walk(40, 1), dates=dates), ValidationPolicy(calendar=None))
    # Then the universe's calendar cannot see it: a long_gap warning only
    (issue,) = result.report.issues_for("long_gap")
    assert issue.severity == "warning" and issue.count == 1 and "10 missing business days" in issue.detail
    assert result.report.passed and result.report.issues_for("calendar_gap") == ()


def test_a_gap_every_symbol_shares_is_a_calendar_gap_for_each() -> None:
    # Given a source outage: sessions 30-31 missing for all three symbols
    frame = pd.concat([bars(s, walk(60, i)).drop(index=[30, 31]) for i, s in enumerate(("AAA", "BBB", "CCC"))])
    report = rejected(frame)
    gaps = report.issues_for("calendar_gap")
    assert [(i.symbol, i.count, i.first_date) for i in gaps] == [
        (s, 2, sessions(60)[30]) for s in ("AAA", "BBB", "CCC")
    ]
    # And without a calendar nobody sees it (two missing days are not a long gap either)
    assert validate_bars(frame, ValidationPolicy(calendar=None)).report.issues == ()


@pytest.mark.parametrize(
    ("bad", "check"), [(np.nan, "non_finite"), (np.inf, "non_finite"), (0.0, "non_positive"), (-3.0, "non_positive")]
)
def test_unusable_price_is_an_error(bad: float, check: str) -> None:
    prices = walk(30, 1)
    prices[9] = bad
    report = rejected(bars("AAA", prices))
    (issue,) = report.issues_for(check)
    assert issue.count == 1 and issue.severity == "error"
    assert checks_of(report, "error") == {check}


def test_missing_open_of_a_symbol_with_ohlc_is_non_finite() -> None:
    close = walk(30, 1)
    opens = close.copy()
    opens[5] = np.nan
    report = rejected(bars("AAA", close, open=opens, high=close * 1.01, low=close * 0.99))
    (issue,) = report.issues_for("non_finite")
    assert issue.count == 1 and "open (1)" in issue.detail


def test_ohlc_for_part_of_the_history_is_a_warning() -> None:
    # Given OHLC on bars 20..39 only (like an index whose OHLC history is shorter than its closes)
    close = walk(60, 1)
    ohlc = {name: np.where((np.arange(60) >= 20) & (np.arange(60) < 40), close * f, np.nan) for name, f in
            (("open", 1.0), ("high", 1.01), ("low", 0.99))}  # fmt: skip
    frame = bars("IDX", close, **ohlc)
    result = validate_bars(frame)
    (issue,) = result.report.issues_for("ohlc_partial")
    assert issue.severity == "warning" and issue.count == 40 and "OHLC on 20 of 60 bars" in issue.detail
    # And a bar missing inside the OHLC period is filled with OHLC, one outside without
    gappy = pd.concat([frame.drop(index=[10, 30]), bars("REF", walk(60, 2))])
    out = validate_bars(gappy, ValidationPolicy(mode="forward_fill")).bars.set_index(["symbol", "date"])
    days = sessions(60)
    assert out.loc[("IDX", days[30]), "high"] == out.loc[("IDX", days[29]), "high"]
    assert np.isnan(out.loc[("IDX", days[10]), "high"])


def test_stale_run_is_a_warning() -> None:
    prices = walk(40, 1)
    prices[10:18] = prices[10]  # 8 bars with the same price
    prices[25:30] = prices[25]  # 5 bars: allowed
    result = validate_bars(bars("AAA", prices), ValidationPolicy(stale_bars=5))
    (issue,) = result.report.issues_for("stale_price")
    assert issue.severity == "warning" and issue.count == 8
    assert issue.first_date == pd.Timestamp(sessions(40)[10])
    assert result.report.passed


def test_unadjusted_split_in_an_adjusting_source_is_an_error() -> None:
    # Given a source that adjusts (adj_close is 2% below close before a dividend) whose adj_close
    # nevertheless halves with the raw close on a 2-for-1 split day
    close = walk(40, 1)
    close[20:] = close[20:] / 2.0
    adj = close.copy()
    adj[:10] *= 0.98
    report = rejected(bars("AAA", adj, close=close))
    (issue,) = report.issues_for("split_jump")
    assert issue.severity == "error" and issue.count == 1
    assert issue.first_date == pd.Timestamp(sessions(40)[20])
    assert "x0.5" in issue.detail


def test_split_absorbed_by_the_adjustment_is_clean() -> None:
    adj = walk(40, 1)
    close = adj.copy()
    close[20:] = close[20:] / 2.0  # raw close halves, adjusted close does not
    result = validate_bars(bars("AAA", adj, close=close))
    assert result.report.issues_for("split_jump") == ()


def test_split_like_jump_in_a_single_series_is_a_warning() -> None:
    prices = walk(40, 1)
    prices[20:] = prices[20:] / 3.0
    result = validate_bars(bars("AAA", prices))
    (issue,) = result.report.issues_for("split_jump")
    assert issue.severity == "warning"
    # ... and a policy can promote it
    report = rejected(bars("AAA", prices), ValidationPolicy(severity_overrides={"split_jump": "error"}))
    assert checks_of(report, unresolved=True) == {"split_jump"}


def test_spike_that_reverses_is_an_error() -> None:
    prices = walk(40, 1)
    prices[15] *= 1.8  # a bad tick: up 80% for one bar
    report = rejected(bars("AAA", prices))
    (issue,) = report.issues_for("price_spike")
    assert issue.count == 1 and issue.first_date == pd.Timestamp(sessions(40)[15])


def test_outlier_is_a_warning() -> None:
    # Given 1% daily moves and one 25% jump (25 sigma, but it sticks: a real move, not a bad tick)
    prices = walk(200, 1)
    prices[100:] *= 1.25
    result = validate_bars(bars("AAA", prices))
    (issue,) = result.report.issues_for("outlier")
    assert issue.severity == "warning" and issue.count == 1 and result.report.passed
    # And a lower threshold flags more
    looser = validate_bars(bars("AAA", prices), ValidationPolicy(outlier_z=2.5))
    assert looser.report.count("outlier") > 1


def test_ohlc_inconsistency_is_an_error() -> None:
    close = walk(30, 1)
    high, low = close * 1.02, close * 0.98
    low[7] = close[7] * 1.01  # low above the close
    report = rejected(bars("AAA", close, open=close, high=high, low=low))
    (issue,) = report.issues_for("ohlc_inconsistent")
    assert issue.count == 1


def test_expected_symbol_without_bars_is_an_error() -> None:
    report = rejected(bars("AAA", walk(30, 1)), expected_symbols=["AAA", "ZZZ"])
    (issue,) = report.issues_for("missing_symbol")
    assert issue.symbol == "ZZZ" and report.symbol_status["ZZZ"] == "error"


def test_missing_required_column_fails_the_schema_check_under_any_policy() -> None:
    frame = bars("AAA", walk(10, 1)).drop(columns=["adj_close", "close"])
    for mode in ("reject", "forward_fill", "quarantine"):
        report = rejected(frame, ValidationPolicy(mode=mode))
        assert checks_of(report) == {"schema"}


def test_prices_parsed_from_text_are_a_schema_warning() -> None:
    frame = bars("AAA", walk(10, 1))
    frame["adj_close"] = frame["adj_close"].map(str)
    frame["vendor_note"] = "x"
    result = validate_bars(frame)
    (issue,) = result.report.issues_for("schema")
    assert issue.severity == "warning" and "adj_close" in issue.detail and "vendor_note" in issue.detail
    assert result.report.changes["columns_dropped"] == 1
    assert result.bars["adj_close"].dtype == "float64"


def test_empty_table_is_refused() -> None:
    with pytest.raises(EmptyDataError):
        validate_bars(bars("AAA", []))


def test_severity_overrides_are_checked() -> None:
    with pytest.raises(pydantic.ValidationError):
        ValidationPolicy(severity_overrides={"no_such_check": "off"})
    with pytest.raises(pydantic.ValidationError):
        ValidationPolicy(severity_overrides={"duplicate_timestamp": "warning"})
    prices = walk(30, 1)
    prices[4] = np.nan
    relaxed = validate_bars(bars("AAA", prices), ValidationPolicy(severity_overrides={"non_finite": "warning"}))
    assert relaxed.report.passed and relaxed.report.issues_for("non_finite")[0].severity == "warning"


# ----------------------------------------------------------------------------------------------------------------------
# policies
# ----------------------------------------------------------------------------------------------------------------------
def _dirty_universe() -> pd.DataFrame:
    """AAA clean; BBB with a 2-bar NaN run and a missing date (both fillable); CCC with a 6-bar NaN run."""
    aaa = bars("AAA", walk(60, 1))
    bbb_prices = walk(60, 2)
    bbb_prices[[20, 21]] = np.nan
    bbb = bars("BBB", bbb_prices).drop(index=[40])
    ccc_prices = walk(60, 3)
    ccc_prices[30:36] = np.nan
    ccc = bars("CCC", ccc_prices)
    return pd.concat([aaa, bbb, ccc], ignore_index=True)


def test_reject_raises_with_the_report() -> None:
    report = rejected(_dirty_universe())
    assert report.mode == "reject"
    assert {i.symbol for i in report.issues if i.unresolved} == {"BBB", "CCC"}
    assert "DataValidationError" not in report.summary() and "failed" in report.summary()


def test_quarantine_drops_the_failing_symbols_and_lists_them() -> None:
    result = validate_bars(_dirty_universe(), ValidationPolicy(mode="quarantine"))
    report = result.report
    assert report.passed and report.quarantined == ("BBB", "CCC")
    assert set(result.bars["symbol"]) == {"AAA"} and len(result.bars) == 60
    assert report.symbol_status == {"AAA": "ok", "BBB": "quarantined", "CCC": "quarantined"}
    assert all(i.action == "quarantined" for i in report.errors)
    assert report.changes["symbols_quarantined"] == 2 and report.changes["rows_dropped"] == 59 + 60


def test_forward_fill_repairs_short_runs_and_rejects_long_ones() -> None:
    # Given a 6-bar outage in CCC, longer than max_ffill=3
    report = rejected(_dirty_universe(), ValidationPolicy(mode="forward_fill", max_ffill=3))
    # Then CCC's outage is unresolved (none of it filled) while BBB's were repaired
    unresolved = [i for i in report.issues if i.unresolved]
    assert [(i.check, i.symbol, i.count) for i in unresolved] == [("non_finite", "CCC", 6)]
    filled = {(i.check, i.symbol): i.count for i in report.issues if i.action == "forward_filled"}
    assert filled == {("calendar_gap", "BBB"): 1, ("non_finite", "BBB"): 2}


def test_forward_fill_then_quarantine_counts_every_change() -> None:
    frame = _dirty_universe()
    result = validate_bars(frame, ValidationPolicy(mode="forward_fill", max_ffill=3, on_unfixable="quarantine"))
    report, out = result.report, result.bars
    assert report.passed and report.quarantined == ("CCC",)
    assert report.symbol_status == {"AAA": "ok", "BBB": "filled", "CCC": "quarantined"}
    # BBB: 2 NaN bars (close and adj_close each) + 1 inserted bar (close and adj_close) = 6 cells
    assert report.forward_filled == 6 and report.changes["rows_inserted"] == 1
    bbb = out[out["symbol"] == "BBB"].set_index("date")["adj_close"]
    original = frame[frame["symbol"] == "BBB"].set_index("date")["adj_close"]
    days = sessions(60)
    assert len(bbb) == 60  # the missing date is back
    assert bbb[days[20]] == bbb[days[21]] == original[days[19]]
    assert bbb[days[40]] == original[days[39]]
    # Valid prices are untouched
    common = original.dropna().index
    np.testing.assert_array_equal(bbb[common].to_numpy(), original[common].to_numpy())


def test_quarantining_every_symbol_raises() -> None:
    prices = walk(30, 1)
    prices[3] = -1.0
    with pytest.raises(DataValidationError, match="Every symbol") as caught:
        validate_bars(bars("AAA", prices), ValidationPolicy(mode="quarantine"))
    report = caught.value.report  # type: ignore[attr-defined]
    assert report.quarantined == ("AAA",) and report.n_rows_out == 0


def test_rows_without_a_key_are_an_error_and_dropped_under_quarantine() -> None:
    clean = pd.concat([bars("AAA", walk(30, 1)), bars("BBB", walk(30, 2))], ignore_index=True)
    stray = clean.iloc[[4, 40]].copy()
    stray.iloc[0, stray.columns.get_loc("symbol")] = None
    stray.iloc[1, stray.columns.get_loc("date")] = None
    frame = pd.concat([clean, stray], ignore_index=True)
    report = rejected(frame)
    (issue,) = report.issues_for("missing_key")
    assert issue.symbol is None and issue.count == 2
    result = validate_bars(frame, ValidationPolicy(mode="quarantine"))
    assert result.report.issues_for("missing_key")[0].action == "dropped"
    assert len(result.bars) == 60 and result.report.changes["rows_dropped"] == 2


def test_forward_fill_never_fills_backward() -> None:
    prices = walk(30, 1)
    prices[0] = np.nan  # nothing before it to carry forward
    report = rejected(bars("AAA", prices), ValidationPolicy(mode="forward_fill", max_ffill=5))
    (issue,) = report.issues_for("non_finite")
    assert issue.unresolved and issue.first_date == pd.Timestamp(START)


def test_forward_fill_of_an_ohlc_bar_keeps_it_consistent() -> None:
    close = walk(30, 1)
    frame = bars("AAA", close, open=close, high=close * 1.01, low=close * 0.99)
    frame = frame.drop(index=[12])  # a missing bar; a second symbol makes it a calendar gap
    other = bars("BBB", walk(30, 2))
    result = validate_bars(pd.concat([frame, other]), ValidationPolicy(mode="forward_fill"))
    out = result.bars[result.bars["symbol"] == "AAA"].reset_index(drop=True)
    previous, inserted = out.iloc[11], out.iloc[12]
    for column in ("open", "high", "low", "close", "adj_close"):
        assert inserted[column] == previous[column]
    assert np.isnan(inserted["volume"])
    assert result.report.issues_for("ohlc_inconsistent") == ()


def test_report_is_json_ready() -> None:
    result = validate_bars(_dirty_universe(), ValidationPolicy(mode="quarantine"))
    document = json.loads(json.dumps(result.report.to_dict()))
    assert document["passed"] is True and document["quarantined"] == ["BBB", "CCC"]
    assert {i["check"] for i in document["issues"]} <= set(CHECKS)
    assert document["issues"][0]["first_date"].count("-") == 2  # ISO dates
    assert document["policy"]["mode"] == "quarantine"


# ----------------------------------------------------------------------------------------------------------------------
# the trading calendar: each symbol against the exchange's sessions, never against the other symbols
# ----------------------------------------------------------------------------------------------------------------------
SATURDAY = pd.Timestamp("2024-01-06")
MLK_DAY = pd.Timestamp("2024-01-15")  # Martin Luther King Jr. Day: the NYSE is closed


def with_bar(frame: pd.DataFrame, day: pd.Timestamp, factor: float = 1.001) -> pd.DataFrame:
    """Add one bar on ``day``, priced like the bar before it times ``factor``."""
    before = frame[frame["date"] < day].iloc[[-1]].copy()
    before["date"] = day
    for column in ("adj_close", "close"):
        before[column] = before[column] * factor
    return pd.concat([frame, before]).sort_values("date", kind="stable").reset_index(drop=True)


def stray_universe() -> tuple[pd.DataFrame, pd.DataFrame]:
    """AAA clean on 40 sessions; BBB the same days plus a Saturday bar and a bar on a holiday."""
    aaa = bars("AAA", walk(40, 1))
    bbb = with_bar(with_bar(bars("BBB", walk(40, 2)), SATURDAY), MLK_DAY)
    return aaa, bbb


def assert_rows_add_up(report: ValidationReport) -> None:
    changes = report.changes
    expected = report.n_rows_in - changes["duplicates_dropped"] - changes["rows_dropped"] + changes["rows_inserted"]
    assert report.n_rows_out == expected, changes


def test_bars_on_a_weekend_and_a_holiday_are_off_calendar() -> None:
    # Given BBB with a bar on a Saturday and one on a holiday, beside a clean AAA
    aaa, bbb = stray_universe()
    # When validated under the default policy
    report = rejected(pd.concat([aaa, bbb]))
    # Then both are off_calendar errors of BBB, and AAA has no gap on BBB's days
    (issue,) = report.issues_for("off_calendar")
    assert (issue.symbol, issue.count, issue.severity) == ("BBB", 2, "error")
    assert (issue.first_date, issue.last_date) == (SATURDAY, MLK_DAY)
    assert "2024-01-06 (Sat), 2024-01-15 (Mon)" in issue.detail
    assert checks_of(report) == {"off_calendar"} and report.symbol_status == {"AAA": "ok", "BBB": "error"}


def test_forward_fill_drops_off_calendar_bars_and_invents_none() -> None:
    aaa, bbb = stray_universe()
    result = validate_bars(pd.concat([aaa, bbb]), ValidationPolicy(mode="forward_fill"))
    report = result.report
    # Then the two stray bars are dropped, counted and reported; nothing is inserted or filled
    assert report.passed
    (issue,) = report.issues_for("off_calendar")
    assert (issue.symbol, issue.count, issue.action) == ("BBB", 2, "dropped") and "2 bar(s) dropped" in issue.detail
    assert report.changes["rows_dropped"] == 2 and report.changes["rows_inserted"] == 0 and report.forward_filled == 0
    assert report.symbol_status == {"AAA": "ok", "BBB": "filled"}
    assert_rows_add_up(report)
    # And the output is each symbol's own session bars, exactly
    out = result.bars
    pd.testing.assert_frame_equal(out[out["symbol"] == "AAA"].reset_index(drop=True), validate_bars(aaa).bars)
    bbb_clean = bbb[bbb["date"].isin(sessions(40))]
    pd.testing.assert_frame_equal(out[out["symbol"] == "BBB"].reset_index(drop=True), validate_bars(bbb_clean).bars)


def test_quarantine_drops_a_symbol_with_off_calendar_bars() -> None:
    aaa, bbb = stray_universe()
    result = validate_bars(pd.concat([aaa, bbb]), ValidationPolicy(mode="quarantine"))
    assert result.report.quarantined == ("BBB",) and set(result.bars["symbol"]) == {"AAA"}
    assert result.report.changes["rows_dropped"] == 42
    assert_rows_add_up(result.report)


def test_off_calendar_lowered_to_a_warning_keeps_and_reports_the_bars() -> None:
    aaa, bbb = stray_universe()
    policy = ValidationPolicy(mode="forward_fill", severity_overrides={"off_calendar": "warning"})
    result = validate_bars(pd.concat([aaa, bbb]), policy)
    (issue,) = result.report.issues_for("off_calendar")
    assert issue.severity == "warning" and issue.action == "none" and issue.count == 2
    assert len(result.bars) == 82 and result.report.changes["rows_dropped"] == 0


@pytest.mark.parametrize("mode", ["reject", "forward_fill", "quarantine"])
def test_a_symbols_validation_does_not_depend_on_the_other_symbols(mode: str) -> None:
    # Given AAA with a missing session and a NaN price (clean under quarantine, so that it survives alone),
    # and BBB with stray bars and a gap of its own
    aaa_prices = walk(60, 1)
    if mode != "quarantine":
        aaa_prices[12] = np.nan
    aaa = bars("AAA", aaa_prices).drop(index=[30] if mode != "quarantine" else [])
    _, bbb = stray_universe()
    bbb = bbb.drop(index=[20, 21])
    policy = ValidationPolicy(mode=mode)

    def run(frame: pd.DataFrame) -> tuple[ValidationReport, pd.DataFrame | None]:
        try:
            result = validate_bars(frame, policy)
        except DataValidationError as exc:
            return exc.report, None  # type: ignore[attr-defined]
        return result.report, result.bars[result.bars["symbol"] == "AAA"].reset_index(drop=True)

    # When AAA is validated alone and together with BBB
    (alone, alone_bars), (together, together_bars) = run(aaa), run(pd.concat([aaa, bbb]))
    # Then AAA's issues, and its bars where some are returned, are the same
    assert together.issues_for(symbol="AAA") == alone.issues_for(symbol="AAA") != () or mode == "quarantine"
    assert (alone_bars is None) == (together_bars is None) == (mode == "reject")
    if alone_bars is not None and together_bars is not None:
        pd.testing.assert_frame_equal(together_bars, alone_bars)
        assert_rows_add_up(together)


def test_the_union_fallback_invents_bars_from_other_symbols_dates() -> None:
    # The reason for the calendar, kept visible: without one, BBB's stray Saturday bar is a "gap" of AAA
    # that forward_fill repairs by inventing a Saturday bar for AAA.
    aaa, bbb = stray_universe()
    result = validate_bars(pd.concat([aaa, bbb]), ValidationPolicy(mode="forward_fill", calendar=None))
    aaa_out = result.bars[result.bars["symbol"] == "AAA"]
    assert {SATURDAY, MLK_DAY} <= set(aaa_out["date"]) and result.report.changes["rows_inserted"] == 2


def test_forward_fill_inserts_a_symbols_own_missing_sessions_only() -> None:
    # Given AAA missing two sessions (one after a holiday weekend) and BBB trading only half the period
    aaa = bars("AAA", walk(40, 1)).drop(index=[5, 9])
    bbb = bars("BBB", walk(20, 2))
    result = validate_bars(pd.concat([aaa, bbb]), ValidationPolicy(mode="forward_fill"))
    out = result.bars.set_index(["symbol", "date"])["adj_close"]
    # Then exactly AAA's two sessions are back, carried from the session before each
    days = sessions(40)
    filled = {(i.check, i.symbol): (i.count, i.action) for i in result.report.issues}
    assert filled == {("calendar_gap", "AAA"): (2, "forward_filled")}
    assert out[("AAA", days[5])] == out[("AAA", days[4])] and out[("AAA", days[9])] == out[("AAA", days[8])]
    assert days[9] == pd.Timestamp("2024-01-16")  # the Tuesday after MLK day: Monday is not filled
    assert ("AAA", MLK_DAY) not in out.index and len(out.loc["BBB"]) == 20
    assert result.report.changes["rows_inserted"] == 2
    assert_rows_add_up(result.report)


def test_forward_fill_then_quarantine_counts_input_rows_only() -> None:
    # Given CCC with a fillable missing session, a stray bar and an unfixable 6-bar NaN run
    ccc_prices = walk(60, 3)
    ccc_prices[30:36] = np.nan
    ccc = with_bar(bars("CCC", ccc_prices).drop(index=[10]), SATURDAY)
    frame = pd.concat([bars("AAA", walk(60, 1)), ccc])
    result = validate_bars(frame, ValidationPolicy(mode="forward_fill", on_unfixable="quarantine"))
    report = result.report
    # Then CCC is quarantined: its 59 input bars and its stray bar are the rows dropped, its inserted bar is not
    assert report.quarantined == ("CCC",) and report.changes["rows_dropped"] == 60
    assert report.changes["rows_inserted"] == 0 and report.forward_filled == 0
    assert_rows_add_up(report)


# ------------------------------------------------------------------------------------------------- intraday bars
def five_minute_bars(symbol: str, days: list[str], seed: int = 1) -> pd.DataFrame:
    """Regular-hours 5-minute bars (09:30-15:55 New York) of ``days``, stamped in naive UTC like the lake."""
    stamps = pd.DatetimeIndex(
        [t for day in days for t in pd.date_range(f"{day} 09:30", f"{day} 15:55", freq="5min", tz="America/New_York")]
    )
    utc = stamps.tz_convert("UTC").tz_localize(None)
    rng = np.random.default_rng(seed)
    return bars(symbol, 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, len(utc)))), dates=utc)


def test_intraday_bars_belong_to_new_york_sessions_and_nights_are_no_gaps() -> None:
    # Given two sessions around a weekend and a daylight-saving change (14:30 then 13:30 UTC opens),
    # and an after-hours bar at 19:30 New York on Friday, which is 00:30 UTC on Saturday
    frame = five_minute_bars("AAPL", ["2024-03-08", "2024-03-11"])
    late = frame.iloc[[77]].assign(date=pd.Timestamp("2024-03-09 00:30"))
    frame = pd.concat([frame.iloc[:78], late, frame.iloc[78:]], ignore_index=True)
    # When validated under the default policy
    result = validate_bars(frame)
    # Then neither the nights, the weekend nor the after-hours bar is a calendar issue
    assert not checks_of(result.report) & {"off_calendar", "calendar_gap", "long_gap"}
    assert len(result.bars) == 157


def test_an_intraday_session_without_bars_is_a_gap_that_filling_does_not_invent() -> None:
    # Given Friday and Tuesday, and nothing on Monday 11 March 2024
    frame = five_minute_bars("AAPL", ["2024-03-08", "2024-03-12"])
    report = rejected(frame)
    (issue,) = report.issues_for("calendar_gap")
    assert (issue.count, issue.first_date) == (1, pd.Timestamp("2024-03-11")) and "intraday" in issue.detail
    # And forward_fill does not make up a day of bars: the gap stays an error
    report = rejected(frame, ValidationPolicy(mode="forward_fill", max_ffill=5))
    assert report.issues_for("calendar_gap")[0].unresolved and report.changes["rows_inserted"] == 0


def test_an_intraday_bar_on_a_saturday_is_off_calendar() -> None:
    frame = pd.concat(
        [five_minute_bars("AAPL", ["2024-03-08"]), bars("AAPL", [170.0], dates=[pd.Timestamp("2024-03-09 15:00")])]
    )
    (issue,) = rejected(frame).issues_for("off_calendar")
    assert issue.count == 1 and "2024-03-09 (Sat)" in issue.detail


# ------------------------------------------------------------------------------------------------- the policy field
def test_the_calendar_of_a_policy() -> None:
    assert ValidationPolicy().calendar == "XNYS"
    assert ValidationPolicy(calendar="NYSE").calendar == "XNYS"  # aliases are stored as the exchange's code
    assert ValidationPolicy(calendar=None).model_dump(mode="json")["calendar"] is None
    with pytest.raises(pydantic.ValidationError, match="unknown exchange calendar"):
        ValidationPolicy(calendar="NOPE")


def test_a_market_that_trades_every_day_needs_its_own_calendar() -> None:
    # Given a crypto-like series with a bar every calendar day
    frame = bars("BTC-USD", walk(30, 1), dates=pd.date_range("2024-01-01", periods=30, freq="D"))
    # Then NYSE's calendar rejects its weekends and holidays, and the 24/7 calendar takes it
    assert rejected(frame).count("off_calendar") == 10
    assert validate_bars(frame, ValidationPolicy(calendar="24/7")).report.issues == ()


# ----------------------------------------------------------------------------------------------------------------------
# real data
# ----------------------------------------------------------------------------------------------------------------------
def test_bundled_stocks_pass_the_default_policy_with_warnings_only(real_bars: pd.DataFrame) -> None:
    # When the 20 stocks and the index (1990-2022) are validated under the default (reject) policy
    result = validate_bars(real_bars, expected_symbols=sorted(real_bars["symbol"].unique()))
    report = result.report
    # Then it passes, with warnings of known kinds only and nothing changed
    assert report.passed and report.n_errors == 0
    assert checks_of(report) == {"stale_price", "split_jump", "outlier"}
    assert len(result.bars) == len(real_bars) == 21 * 8313
    assert report.forward_filled == 0 and report.changes["rows_dropped"] == 0
    # RRC's early-1990s quotes in eighths of a dollar sit still for weeks
    stale = {i.symbol: i.count for i in report.issues_for("stale_price")}
    assert 400 < stale.pop("RRC") < 800 and sum(stale.values()) < 50
    (split,) = report.issues_for("split_jump")
    assert split.symbol == "RRC" and split.first_date == pd.Timestamp("1990-04-10")
    # Real moves (1987 is before the data; 2000, 2008, 2020 are in it) are outlier warnings
    assert 80 < report.count("outlier") < 300
    assert report.symbol_status["^GSPC"] == "warning"


# Unscheduled NYSE closures inside the bundled period, from the exchange's own history, written out here as
# the independent reference: none is a session, and the data has no bar on any of them.
CLOSURES = {
    "1994-04-27": "funeral of Richard Nixon",
    "2001-09-11": "September 11 attacks",
    "2001-09-12": "September 11 attacks",
    "2001-09-13": "September 11 attacks",
    "2001-09-14": "September 11 attacks",
    "2004-06-11": "funeral of Ronald Reagan",
    "2007-01-02": "funeral of Gerald Ford",
    "2012-10-29": "Hurricane Sandy",
    "2012-10-30": "Hurricane Sandy",
    "2018-12-05": "funeral of George H. W. Bush",
}


def test_bundled_dates_are_exactly_the_nyse_sessions(real_bars: pd.DataFrame) -> None:
    dates = pd.DatetimeIndex(np.sort(real_bars["date"].unique()))
    nyse = _nyse("1990-01-02")
    assert dates.equals(nyse[(nyse >= dates[0]) & (nyse <= dates[-1])]) and len(dates) == 8313
    assert not set(pd.to_datetime(list(CLOSURES))) & set(dates)


def test_a_bar_on_each_closure_is_off_calendar(real_bars: pd.DataFrame) -> None:
    # Given AAPL's real bars plus one made-up bar on each closure day
    aapl = real_bars[real_bars["symbol"] == "AAPL"]
    extra = pd.DataFrame({"date": pd.to_datetime(list(CLOSURES)), "symbol": "AAPL", "adj_close": 1.0})
    frame = pd.concat([aapl, extra], ignore_index=True).sort_values("date", kind="stable")
    # When validated under the default and the forward_fill policies
    (issue,) = rejected(frame).issues_for("off_calendar")
    result = validate_bars(frame, ValidationPolicy(mode="forward_fill"))
    # Then every one of them is flagged, and forward_fill gives back the real bars exactly
    assert issue.count == len(CLOSURES)
    assert result.report.changes["rows_dropped"] == len(CLOSURES) and result.report.changes["rows_inserted"] == 0
    pd.testing.assert_frame_equal(result.bars, validate_bars(aapl).bars)


def test_bundled_source_passes_the_default_policy(real_bars: pd.DataFrame) -> None:
    # The bars as the pipeline sees them: ^GSPC with OHLCV over 1999-2018 merged in, through the source
    from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, INDEX_SYMBOL, BundledSource

    bars_ = BundledSource().fetch([*DEFAULT_UNIVERSE, INDEX_SYMBOL])
    result = validate_bars(bars_)
    assert result.report.passed and result.report.n_errors == 0
    assert checks_of(result.report) == {"stale_price", "split_jump", "outlier", "ohlc_partial"}
    assert len(result.bars) == len(bars_) == 21 * 8313


def test_without_a_calendar_the_2001_closure_is_a_long_gap(real_bars: pd.DataFrame) -> None:
    report = validate_bars(real_bars, ValidationPolicy(calendar=None)).report
    assert report.passed and checks_of(report) == {"long_gap", "stale_price", "split_jump", "outlier"}
    # 11-17 Sep 2001: every symbol has the same 4-business-day closure
    gaps = report.issues_for("long_gap")
    assert len(gaps) == 21 and {i.first_date for i in gaps} == {pd.Timestamp("2001-09-17")}


def test_bundled_ohlcv_passes_including_ohlc_consistency(real_ohlcv: pd.DataFrame) -> None:
    result = validate_bars(real_ohlcv)
    assert result.report.passed and result.report.n_errors == 0
    assert checks_of(result.report) <= {"outlier"}
    assert len(result.bars) == 5031


def test_bundled_stocks_under_forward_fill_are_unchanged(real_bars: pd.DataFrame) -> None:
    result = validate_bars(real_bars, ValidationPolicy(mode="forward_fill"))
    assert result.report.forward_filled == 0 and result.report.changes["rows_inserted"] == 0
    expected = validate_bars(real_bars).bars
    pd.testing.assert_frame_equal(result.bars, expected)


# ----------------------------------------------------------------------------------------------------------------------
# property: forward filling is bounded and leaves valid prices alone
# ----------------------------------------------------------------------------------------------------------------------
_KIND = st.sampled_from(["ok"] * 10 + ["nan", "inf", "zero", "negative", "missing"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(_KIND, min_size=3, max_size=40),
    max_ffill=st.integers(min_value=0, max_value=4),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_forward_fill_is_bounded_and_keeps_valid_prices(kinds: list[str], max_ffill: int, seed: int) -> None:
    # Given a symbol XXX whose adj_close has random bad cells and missing sessions, beside a clean REF
    # (which must make no difference: XXX's missing bars are sessions of the NYSE calendar)
    n = len(kinds)
    days = sessions(n)
    clean = walk(n, seed)
    values = clean.copy()
    replacement = {"nan": np.nan, "inf": np.inf, "zero": 0.0, "negative": -1.0}
    for i, kind in enumerate(kinds):
        if kind in replacement:
            values[i] = replacement[kind]
    xxx = bars("XXX", values, close=clean).loc[[k != "missing" for k in kinds]]
    frame = pd.concat([bars("REF", walk(n, seed + 1)), xxx], ignore_index=True)
    policy = ValidationPolicy(
        mode="forward_fill",
        max_ffill=max_ffill,
        on_unfixable="quarantine",
        severity_overrides={"outlier": "off", "split_jump": "off", "price_spike": "off"},
    )

    # When validated
    result = validate_bars(frame, policy)

    # Then either XXX was quarantined, or every bar of its output is valid and within the rules
    report = result.report
    event("quarantined" if "XXX" in report.quarantined else "kept")
    if "XXX" in report.quarantined:
        assert "XXX" not in set(result.bars["symbol"])
        return
    out = result.bars[result.bars["symbol"] == "XXX"].set_index("date")["adj_close"]
    valid_in = {d: v for d, v, k in zip(days, values, kinds, strict=True) if k == "ok"}
    assert (out > 0).all() and np.isfinite(out).all()
    run, last_valid = 0, None
    for day in out.index:
        if day in valid_in:
            assert out[day] == valid_in[day]  # a valid price never changes
            run, last_valid = 0, valid_in[day]
        else:
            run += 1
            assert run <= max_ffill  # never more than max_ffill filled in a row
            assert out[day] == last_valid  # filled from the last valid price, never from a later one
    filled = sum(1 for day in out.index if day not in valid_in)
    assert (
        report.count("non_finite", action="forward_filled")
        + report.count("non_positive", action="forward_filled")
        + report.count("calendar_gap", action="forward_filled")
        == filled
    )
