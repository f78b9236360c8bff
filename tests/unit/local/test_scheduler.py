"""The local EventBridge scheduler: fire times of cron and rate expressions, run ids, payloads, the loop.

Fire times are checked against hand-checked calendars (AWS's documented examples and the repo's own three
schedules, 2024's calendar: 1 January was a Monday, February had 29 days) and, by hypothesis, against an
independent reading of generated cron expressions (the sets of minutes, hours, days they name).
"""

from __future__ import annotations

import calendar
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_engine.contracts import IngestInput, RunRequest
from portfolio_engine.contracts.backtest import BacktestRequest
from portfolio_engine.contracts.runs import RebalanceAllRequest
from portfolio_engine.contracts.tasks import _RUN_ID
from portfolio_engine.contracts.training import RetrainRegimeRequest
from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.local.runner import REPO_ROOT
from portfolio_engine.local.scheduler import (
    Outcome,
    RunReport,
    Schedule,
    ScheduledRun,
    Scheduler,
    load_schedules,
    parse_expression,
    run_id_for,
)

CDK_JSON = REPO_ROOT / "infra" / "cdk" / "cdk.json"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- fire times, hand-checked --------------------------------------------------------------------------------------

# (expression, t, the first fire time after t, the latest fire time at or before t)
HAND_CHECKED = [
    # AWS's examples: 10:00 UTC every day
    ("cron(0 10 * * ? *)", at(2024, 1, 1, 10), at(2024, 1, 2, 10), at(2024, 1, 1, 10)),
    ("cron(0 10 * * ? *)", at(2024, 1, 1, 9, 59), at(2024, 1, 1, 10), at(2023, 12, 31, 10)),
    # 12:15 every day, over the leap day
    ("cron(15 12 * * ? *)", at(2024, 2, 28, 12, 15), at(2024, 2, 29, 12, 15), at(2024, 2, 28, 12, 15)),
    # 18:00 Monday to Friday: Friday 5 January's, then Monday 8 January's
    ("cron(0 18 ? * MON-FRI *)", at(2024, 1, 5, 18), at(2024, 1, 8, 18), at(2024, 1, 5, 18)),
    ("cron(0 18 ? * MON-FRI *)", at(2024, 1, 7, 12), at(2024, 1, 8, 18), at(2024, 1, 5, 18)),
    # 08:00 on the first day of every month
    ("cron(0 8 1 * ? *)", at(2024, 1, 1, 8), at(2024, 2, 1, 8), at(2024, 1, 1, 8)),
    ("cron(0 8 1 * ? *)", at(2024, 3, 15), at(2024, 4, 1, 8), at(2024, 3, 1, 8)),
    # every 15 minutes
    ("cron(0/15 * * * ? *)", at(2024, 1, 1, 0, 7, 30), at(2024, 1, 1, 0, 15), at(2024, 1, 1, 0, 0)),
    # every 10 minutes Monday to Friday: from Friday's last to Monday's first
    ("cron(0/10 * ? * MON-FRI *)", at(2024, 1, 5, 23, 55), at(2024, 1, 8, 0, 0), at(2024, 1, 5, 23, 50)),
    # every 5 minutes 08:00-17:55 Monday to Friday
    ("cron(0/5 8-17 ? * MON-FRI *)", at(2024, 1, 12, 17, 55), at(2024, 1, 15, 8), at(2024, 1, 12, 17, 55)),
    ("cron(0/5 8-17 ? * MON-FRI *)", at(2024, 1, 13, 9), at(2024, 1, 15, 8), at(2024, 1, 12, 17, 55)),
    # 09:00 on the first Monday of the month (2#1: AWS's day 2 is Monday)
    ("cron(0 9 ? * 2#1 *)", at(2024, 1, 1, 9), at(2024, 2, 5, 9), at(2024, 1, 1, 9)),
    ("cron(0 9 ? * 2#1 *)", at(2024, 1, 31), at(2024, 2, 5, 9), at(2024, 1, 1, 9)),
    # The repo's schedules (infra/cdk/cdk.json)
    ("cron(30 21 ? * MON-FRI *)", at(2024, 1, 5, 21, 30), at(2024, 1, 8, 21, 30), at(2024, 1, 5, 21, 30)),
    ("cron(30 21 ? * MON-FRI *)", at(2024, 1, 6, 21, 30), at(2024, 1, 8, 21, 30), at(2024, 1, 5, 21, 30)),
    ("cron(0 22 ? * MON-FRI *)", at(2024, 1, 8, 21, 59), at(2024, 1, 8, 22), at(2024, 1, 5, 22)),
    ("cron(0 6 ? * SAT *)", at(2024, 1, 1), at(2024, 1, 6, 6), at(2023, 12, 30, 6)),
    ("cron(0 6 ? * SAT *)", at(2024, 1, 12, 23), at(2024, 1, 13, 6), at(2024, 1, 6, 6)),
    # Numeric days of the week: 1 = SUN, 7 = SAT (APScheduler's 0 is Monday: never passed through)
    ("cron(0 12 ? * 1 *)", at(2024, 1, 1), at(2024, 1, 7, 12), at(2023, 12, 31, 12)),
    ("cron(0 12 ? * 7 *)", at(2024, 1, 1), at(2024, 1, 6, 12), at(2023, 12, 30, 12)),
    ("cron(0 12 ? * 2-6 *)", at(2024, 1, 6), at(2024, 1, 8, 12), at(2024, 1, 5, 12)),
    # L: the last day of the month; 6L: the last Friday; 6#5: the fifth Friday (March, May, August, November)
    ("cron(0 0 L * ? *)", at(2024, 1, 31), at(2024, 2, 29), at(2024, 1, 31)),
    ("cron(0 0 L * ? *)", at(2023, 3, 1), at(2023, 3, 31), at(2023, 2, 28)),
    ("cron(0 0 ? * 6L *)", at(2024, 1, 1), at(2024, 1, 26), at(2023, 12, 29)),
    ("cron(0 0 ? * 6#5 *)", at(2024, 1, 1), at(2024, 3, 29), at(2023, 12, 29)),
    ("cron(0 0 ? * FRI#5 *)", at(2024, 3, 29), at(2024, 5, 31), at(2024, 3, 29)),
    # Months by name, a year range
    ("cron(0 0 1 JAN,JUL ? 2024-2025)", at(2024, 3, 1), at(2024, 7, 1), at(2024, 1, 1)),
    ("cron(0 0 1 JAN,JUL ? 2024-2025)", at(2025, 8, 1), None, at(2025, 7, 1)),
    # Rates count from the Unix epoch (EventBridge from the rule's creation)
    ("rate(5 minutes)", at(2024, 1, 1, 0, 2, 30), at(2024, 1, 1, 0, 5), at(2024, 1, 1, 0, 0)),
    ("rate(1 hour)", at(2024, 1, 1, 10), at(2024, 1, 1, 11), at(2024, 1, 1, 10)),
    ("rate(2 hours)", at(2024, 1, 1, 9, 30), at(2024, 1, 1, 10), at(2024, 1, 1, 8)),
    ("rate(1 day)", at(2024, 2, 28, 23, 59, 59), at(2024, 2, 29), at(2024, 2, 28)),
    # 1970-01-01 was a Thursday, so a weekly rate fires on Thursdays
    ("rate(7 days)", at(2024, 1, 1), at(2024, 1, 4), at(2023, 12, 28)),
]


@pytest.mark.parametrize(("expression", "moment", "after", "latest"), HAND_CHECKED)
def test_fire_times_match_the_hand_checked_calendar(
    expression: str, moment: datetime, after: datetime | None, latest: datetime | None
) -> None:
    timing = parse_expression(expression)
    assert timing.next_after(moment) == after
    assert timing.latest_at_or_before(moment) == latest


def test_fire_times_in_an_interval() -> None:
    # Every 15 minutes: five fire times in [00:00, 01:00], both ends included
    quarter = parse_expression("cron(0/15 * * * ? *)")
    assert quarter.between(at(2024, 1, 1), at(2024, 1, 1, 1)) == [at(2024, 1, 1, 0, m) for m in (0, 15, 30, 45)] + [
        at(2024, 1, 1, 1)
    ]
    # Every 10 minutes Monday to Friday: 5 days x 144 in the week of 8 January 2024
    ten = parse_expression("cron(0/10 * ? * MON-FRI *)")
    assert len(ten.between(at(2024, 1, 8), at(2024, 1, 14, 23, 59))) == 5 * 144
    # Every 5 minutes 08:00-17:55 on weekdays: 120 a day, from 08:00 to 17:55
    five = parse_expression("cron(0/5 8-17 ? * MON-FRI *)").between(at(2024, 1, 8), at(2024, 1, 8, 23, 59))
    assert (len(five), five[0], five[-1]) == (120, at(2024, 1, 8, 8), at(2024, 1, 8, 17, 55))
    # The first Monday of each month of 2024
    mondays = parse_expression("cron(0 9 ? * 2#1 *)").between(at(2024, 1, 1), at(2024, 12, 31))
    assert [t.date() for t in mondays] == [
        date(2024, m, d) for m, d in zip(range(1, 13), (1, 5, 4, 1, 6, 3, 1, 5, 2, 7, 4, 2), strict=True)
    ]
    # An interval too wide for its expression is refused, not computed for minutes
    with pytest.raises(ConfigurationError, match="more than 10 times"):
        quarter.between(at(2024, 1, 1), at(2024, 1, 2), limit=10)


@pytest.mark.parametrize(
    ("number", "weekday"), [(1, "Sunday"), (2, "Monday"), (3, "Tuesday"), (4, "Wednesday"), (7, "Saturday")]
)
def test_numeric_days_of_the_week_count_from_sunday(number: int, weekday: str) -> None:
    fires = parse_expression(f"cron(0 0 ? * {number} *)").between(at(2024, 1, 1), at(2024, 2, 29))
    assert {f"{t:%A}" for t in fires} == {weekday} and len(fires) in (8, 9)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        parse_expression("rate(1 day)").next_after(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 0 15W * ? *)", r"day-of-month field '15W': '15W': W \(the nearest weekday\)"),
        ("cron(0 0 LW * ? *)", "day-of-month field 'LW'"),
        ("cron(0 0 L-2 * ? *)", "day-of-month field 'L-2'"),
        ("cron(0 0 ? * L *)", "day-of-week field 'L'"),
        ("cron(0 0 ? * MON,2#1 *)", "day-of-week field 'MON,2#1'.*mixes"),
        ("cron(0 0 ? * 2#6 *)", "must be 1 to 5"),
        ("cron(0 0 ? * 8 *)", "day-of-week field '8'.*outside 1..7"),
        ("cron(0 0 ? * 0 *)", "outside 1..7"),
        ("cron(0 0 ? * FRI-MON *)", "low to high"),
        ("cron(0 0 ? * FUN *)", "not a number or a name"),
        ("cron(60 0 * * ? *)", "minutes field '60'.*outside 0..59"),
        ("cron(0 24 * * ? *)", "hours field '24'"),
        ("cron(0 0 32 * ? *)", "day-of-month field '32'"),
        ("cron(0 0 1 13 ? *)", "month field '13'"),
        ("cron(0 0 1 1 ? 1969)", "year field '1969'"),
        ("cron(0/0 * * * ? *)", "at least 1"),
        ("cron(? 0 * * ? *)", "minutes field '\\?'"),
        ("cron(0 0 1 * ? ?)", "year field '\\?'"),
        ("cron(0 0 * * * *)", "exactly one of day-of-month"),
        ("cron(0 0 ? * ? *)", "exactly one of day-of-month"),
        ("cron(0 0 * * ?)", "has 5 fields; EventBridge cron has 6"),
        ("cron(0 0 30 2 ? *)", "never fires"),
        ("rate(0 minutes)", "not a valid rate"),
        ("rate(1 minutes)", "not a valid rate"),
        ("rate(5 hour)", "not a valid rate"),
        ("rate(2 weeks)", "is not an EventBridge schedule expression"),
        ("at(2024-01-01T00:00:00)", "is not an EventBridge schedule expression"),
        ("0 10 * * *", "is not an EventBridge schedule expression"),
    ],
)
def test_what_does_not_map_exactly_is_refused_naming_schedule_and_field(expression: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_expression(expression, schedule="nightly")
    assert caught.value.message.startswith("Schedule 'nightly': ")
    assert caught.value.hint


# --- fire times, property-based against an independent reading ---------------------------------------------------


@dataclass(frozen=True)
class Cron:
    """A generated AWS cron expression and what it means, as sets (the test's own reading of AWS semantics)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int] | None  # None: every year
    days: frozenset[int] = frozenset()  # day-of-month values (day-of-week is '?')
    last_day: bool = False  # L in day-of-month
    weekdays: frozenset[int] | None = None  # AWS numbers 1 = SUN ... 7 = SAT (day-of-month is '?')
    positions: tuple[tuple[int, int], ...] = field(default=())  # (AWS day, n) for D#n; n = 0 for DL

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months or (self.years is not None and day.year not in self.years):
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        if self.weekdays is None and not self.positions:
            return day.day in self.days or (self.last_day and day.day == last)
        aws_day = day.isoweekday() % 7 + 1
        if self.positions:
            return any(
                aws_day == d and (day.day + 7 > last if n == 0 else (day.day - 1) // 7 + 1 == n)
                for d, n in self.positions
            )
        return aws_day in self.weekdays  # type: ignore[operator]

    def fire_times(self, start: datetime, end: datetime) -> list[datetime]:
        times = []
        day = start.date()
        while day <= end.date():
            if self.fires_on(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if start <= moment <= end:
                            times.append(moment)
            day += timedelta(days=1)
        return times


MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@st.composite
def terms(draw: Callable[..., Any], low: int, high: int, names: list[str] | None = None) -> tuple[str, set[int]]:
    """One field as text and the values it names: *, n, a-b, */c, a/c, a-b/c, or a list of those."""

    def show(value: int) -> str:
        return names[value - low] if names and draw(st.booleans()) else str(value)

    def term() -> tuple[str, set[int]]:
        kind = draw(st.sampled_from(["one", "range", "step_all", "step_from", "step_range"]))
        first = draw(st.integers(low, high))
        last = draw(st.integers(first, high))
        step = draw(st.integers(1, high - low + 3))
        if kind == "one":
            return show(first), {first}
        if kind == "range":
            return f"{show(first)}-{show(last)}", set(range(first, last + 1))
        if kind == "step_all":
            return f"*/{step}", set(range(low, high + 1, step))
        if kind == "step_from":
            return f"{show(first)}/{step}", set(range(first, high + 1, step))
        return f"{show(first)}-{show(last)}/{step}", set(range(first, last + 1, step))

    if draw(st.integers(0, 4)) == 0:
        return "*", set(range(low, high + 1))
    parts = [term() for _ in range(draw(st.integers(1, 3)))]
    return ",".join(text for text, _ in parts), set().union(*(values for _, values in parts))


@st.composite
def crons(draw: Callable[..., Any]) -> Cron:
    minute_text, minutes = draw(terms(0, 59))
    hour_text, hours = draw(terms(0, 23))
    month_text, months = draw(terms(1, 12, MONTH_NAMES))
    year_text, years = draw(st.sampled_from([("*", None), ("2024-2026", {2024, 2025, 2026}), ("2025", {2025})]))
    base = {"minutes": frozenset(minutes), "hours": frozenset(hours), "months": frozenset(months), "years": years}
    if years is not None:
        base["years"] = frozenset(years)
    if draw(st.booleans()):  # day-of-month, day-of-week '?'
        day_text, days = draw(terms(1, 31))
        last = day_text != "*" and draw(st.booleans())
        day_text = f"{day_text},L" if last else day_text
        cron = f"cron({minute_text} {hour_text} {day_text} {month_text} ? {year_text})"
        return Cron(text=cron, days=frozenset(days), last_day=last, **base)
    if draw(st.booleans()):  # plain days of the week, AWS numbers or names
        weekday_text, weekdays = draw(terms(1, 7, DAY_NAMES))
        cron = f"cron({minute_text} {hour_text} ? {month_text} {weekday_text} {year_text})"
        return Cron(text=cron, weekdays=frozenset(weekdays), **base)
    positions = draw(st.lists(st.tuples(st.integers(1, 7), st.integers(0, 5)), min_size=1, max_size=2))
    texts = [(DAY_NAMES[d - 1] if draw(st.booleans()) else str(d)) + ("L" if n == 0 else f"#{n}") for d, n in positions]
    cron = f"cron({minute_text} {hour_text} ? {month_text} {','.join(texts)} {year_text})"
    return Cron(text=cron, positions=tuple(positions), **base)


def _never_fires(cron: Cron) -> bool:
    try:
        parse_expression(cron.text)
    except ConfigurationError as exc:
        assert "never fires" in exc.message, exc.message
        return True
    return False


@settings(max_examples=80, deadline=None)
@given(cron=crons(), offset=st.integers(0, 3 * 365 * 24 * 60))
def test_every_fire_time_matches_the_fields_and_none_is_missed(cron: Cron, offset: int) -> None:
    # Given a generated cron expression and a window in 2024-2026 (long enough to see its day rules)
    if _never_fires(cron):  # e.g. day 31 in February only: refused, as nothing could ever match
        assert not cron.fire_times(at(2024, 1, 1), at(2030, 12, 31, 23, 59))
        return
    start = at(2024, 1, 1) + timedelta(minutes=offset)
    per_day = len(cron.minutes) * len(cron.hours)
    end = start + (timedelta(days=62) if per_day <= 24 else timedelta(days=2))

    # When its fire times in the window are listed
    fires = parse_expression(cron.text).between(start, end)

    # Then they are exactly those the fields name
    assert fires == cron.fire_times(start, end), cron.text


@settings(max_examples=80, deadline=None)
@given(cron=crons(), offset=st.integers(0, 3 * 365 * 24 * 60 * 60))
def test_latest_and_next_fire_times_bracket_every_moment(cron: Cron, offset: int) -> None:
    if _never_fires(cron):
        return
    timing = parse_expression(cron.text)
    moment = at(2024, 1, 1) + timedelta(seconds=offset, microseconds=offset % 7 * 1000)
    latest, after = timing.latest_at_or_before(moment), timing.next_after(moment)
    # latest <= t < next, each is a fire time, and nothing fires strictly between them
    if latest is not None:
        assert latest <= moment and timing.latest_at_or_before(latest) == latest
        assert timing.next_after(latest) == after
    if after is not None:
        assert after > moment and timing.latest_at_or_before(after) == after
        assert timing.latest_at_or_before(after - timedelta(seconds=1)) == latest
    if latest is not None and after is not None:
        assert timing.between(latest, after) == [latest, after]


@settings(max_examples=40, deadline=None)
@given(
    value=st.integers(1, 90),
    unit=st.sampled_from(["minute", "hour", "day"]),
    offset=st.integers(0, 10**9),
)
def test_a_rate_fires_every_n_units_from_the_epoch(value: int, unit: str, offset: int) -> None:
    length = timedelta(**{f"{unit}s": value})
    timing = parse_expression(f"rate({value} {unit}{'s' if value > 1 else ''})")
    moment = at(1970, 1, 1) + timedelta(seconds=offset)
    latest, after = timing.latest_at_or_before(moment), timing.next_after(moment)
    assert latest is not None and after is not None
    assert (latest - at(1970, 1, 1)) % length == timedelta(0)
    assert latest <= moment < after == latest + length


# --- run ids and payloads -------------------------------------------------------------------------------------------


def test_a_run_id_is_the_schedule_and_the_fire_time_and_valid_everywhere() -> None:
    run_id = run_id_for("rebalance-after-close", at(2024, 1, 8, 22))
    assert run_id == "rebalance-after-close-20240108T2200Z"
    # The engine's RunId and a Step Functions execution name (1-80 of letters, digits, - and _)
    longest = run_id_for("a" * 48, at(2199, 12, 31, 23, 59))
    for name in (run_id, longest):
        assert _RUN_ID.match(name) and re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)
    # The same fire time, from any time zone, gives the same id
    from zoneinfo import ZoneInfo

    assert run_id_for("x", datetime(2024, 1, 8, 17, tzinfo=ZoneInfo("America/New_York"))) == "x-20240108T2200Z"


def test_the_payloads_of_the_repos_schedules_are_what_their_targets_accept() -> None:
    # Given the schedules CDK deploys, each at its latest fire time before 10 January 2024 12:00
    schedules = {s.name: s for s in load_schedules(CDK_JSON)}
    runs = {
        name: s.run_at(s.timing.latest_at_or_before(at(2024, 1, 10, 12)))  # type: ignore[arg-type]
        for name, s in schedules.items()
    }

    # Then the ingest event's run id is the event id ($.id), the run's deterministic id
    ingest = runs["ingest-after-close"]
    assert ingest.run_id == "ingest-after-close-20240109T2130Z"
    assert ingest.payload() == {"run_id": "ingest-after-close-20240109T2130Z", "request": {}}
    assert IngestInput.model_validate(ingest.payload()).run_id == ingest.run_id
    # And each machine's input is its schedule's input plus the trigger and the fire time, which its request takes
    requests = {
        "rebalance": RunRequest,
        "rebalance-all": RebalanceAllRequest,
        "retrain-regime": RetrainRegimeRequest,
        "backtest": BacktestRequest,
    }
    for name in ("rebalance-after-close", "retrain-regime-weekly"):
        run = runs[name]
        request = requests[str(run.schedule.state_machine)].model_validate(run.payload())
        assert request.trigger == "schedule" and request.scheduled_for == run.fire_time
    # The weekday rebalance is the batch of every stored portfolio (each child named <portfolio>-<fire time>)
    assert runs["rebalance-after-close"].schedule.state_machine == "rebalance-all"
    assert runs["rebalance-after-close"].payload() == {"trigger": "schedule", "scheduled_for": "2024-01-09T22:00:00Z"}
    assert runs["retrain-regime-weekly"].run_id == "retrain-regime-weekly-20240106T0600Z"


def test_event_paths_resolve_against_the_scheduled_event() -> None:
    schedule = Schedule(
        name="nightly",
        expression="cron(0 1 * * ? *)",
        state_machine="backtest",
        input={"idempotency_key": "$.id", "spec": {"name": "core", "at": "$.time"}, "rule": ["$.resources[0]"]},
    )
    run = schedule.run_at(at(2024, 1, 2, 1))
    assert run.payload() == {
        "idempotency_key": "nightly-20240102T0100Z",
        "spec": {"name": "core", "at": "2024-01-02T01:00:00Z"},
        "rule": ["arn:aws:events:us-east-1:123456789012:rule/nightly"],
        "trigger": "schedule",
        "scheduled_for": "2024-01-02T01:00:00Z",
    }
    # A path no scheduled event has is refused when the schedule is read, not at its first fire time
    with pytest.raises(ConfigurationError, match=r"Schedule 'nightly': input path '\$\.detail\.nope'"):
        Schedule(name="nightly", expression="rate(1 day)", function="ingest_prices", input={"x": "$.detail.nope"})


# --- the configuration CDK deploys ----------------------------------------------------------------------------------


@pytest.fixture
def engine_config() -> Any:
    """``spe_infra.config.EngineConfig`` (plain Python: no aws_cdk import), as tests/infra/conftest.py reaches it."""
    cdk_dir = str(REPO_ROOT / "infra" / "cdk")
    if cdk_dir not in sys.path:
        sys.path.insert(0, cdk_dir)
    from spe_infra.config import ConfigError, EngineConfig

    return EngineConfig, ConfigError


def _as_tuple(schedule: Any) -> tuple[Any, ...]:
    return (
        schedule.name,
        schedule.expression,
        schedule.function,
        schedule.state_machine,
        dict(schedule.input),
        schedule.enabled,
    )


def test_the_schedules_read_here_are_those_cdk_deploys(engine_config: Any) -> None:
    engine, _ = engine_config
    context = json.loads(CDK_JSON.read_text())["context"]
    deployed = engine.from_context(context["spe"], stage=context.get("stage"))
    local = load_schedules(CDK_JSON)
    assert [_as_tuple(s) for s in local] == [_as_tuple(s) for s in deployed.schedules]
    assert len(local) == 3
    # And each state machine target's definition is the file CDK deploys
    for s in local:
        if s.state_machine:
            assert s.definition == deployed.state_machines[s.state_machine]
            assert (REPO_ROOT / "state_machines" / str(s.definition)).exists()


def _write(tmp_path: Path, spe: dict[str, Any], stage: str = "dev") -> Path:
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps({"context": {"stage": stage, "spe": spe}}))
    return path


BASE: dict[str, Any] = {
    "functions": {"ingest_prices": {}},
    "stateMachines": {"rebalance": "rebalance.asl.json"},
    "schedules": {"nightly": {"expression": "cron(0 1 * * ? *)", "stateMachine": "rebalance", "input": {}}},
}


def test_a_stages_overrides_apply_as_cdk_merges_them(tmp_path: Path, engine_config: Any) -> None:
    engine, _ = engine_config
    spe = {
        **BASE,
        "stages": {
            "prod": {
                "schedules": {
                    "nightly": {"expression": "cron(0 2 * * ? *)", "stateMachine": "rebalance", "enabled": False},
                    "ingest": {"expression": "rate(1 hour)", "function": "ingest_prices", "input": {"run_id": "$.id"}},
                }
            }
        },
    }
    path = _write(tmp_path, spe, stage="prod")
    local = load_schedules(path)
    deployed = engine.from_context(spe, stage="prod")
    assert [_as_tuple(s) for s in local] == [_as_tuple(s) for s in deployed.schedules]
    assert [(s.name, s.expression, s.enabled) for s in local] == [
        ("nightly", "cron(0 2 * * ? *)", False),
        ("ingest", "rate(1 hour)", True),
    ]
    # An explicit stage wins over the file's
    assert [s.expression for s in load_schedules(path, stage="dev")] == ["cron(0 1 * * ? *)"]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"expression": "cron(0 1 * * ? *)", "stateMachine": "rebalance", "cron": "x"}, "unknown keys"),
        ({"expression": "cron(0 1 * * ? *)"}, "exactly one target"),
        ({"expression": "cron(0 1 * * ? *)", "stateMachine": "rebalance", "function": "ingest_prices"}, "exactly one"),
        ({"expression": "cron(0 1 * * ? *)", "function": "nope"}, "unknown function 'nope'"),
        ({"expression": "cron(0 1 * * ? *)", "stateMachine": "nope"}, "unknown state machine 'nope'"),
        ({"expression": "cron(0 1 * *)", "function": "ingest_prices"}, "has 4 fields"),
    ],
)
def test_a_schedule_cdk_refuses_is_refused_here(
    tmp_path: Path, engine_config: Any, schedule: dict[str, Any], message: str
) -> None:
    engine, config_error = engine_config
    spe = {**BASE, "schedules": {"nightly": schedule}}
    with pytest.raises(config_error):
        engine.from_context(spe, stage="dev")
    with pytest.raises(ConfigurationError, match=message):
        load_schedules(_write(tmp_path, spe))


def test_a_missing_or_broken_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="No CDK configuration at"):
        load_schedules(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigurationError, match="not readable JSON"):
        load_schedules(broken)
    broken.write_text('{"context": {}}')
    with pytest.raises(ConfigurationError, match=r"context\.spe"):
        load_schedules(broken)


# --- the scheduler, with a fake clock --------------------------------------------------------------------------------


class Clock:
    """A clock that only moves when slept on."""

    def __init__(self, start: datetime) -> None:
        self.time = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += timedelta(seconds=seconds)


def _schedules() -> list[Schedule]:
    return [
        Schedule(
            name="ingest", expression="cron(30 21 ? * MON-FRI *)", function="ingest_prices", input={"run_id": "$.id"}
        ),
        Schedule(name="rebalance", expression="cron(0 22 ? * MON-FRI *)", state_machine="rebalance"),
        Schedule(name="retrain", expression="cron(0 6 ? * SAT *)", state_machine="retrain-regime", enabled=False),
    ]


def test_run_due_runs_each_latest_fire_time_once_and_skips_what_already_ran() -> None:
    # Given Tuesday 9 January 2024 at 23:00, and a store that remembers the runs it saw
    clock = Clock(at(2024, 1, 9, 23))
    launched: list[tuple[str, dict[str, Any]]] = []
    recorded: set[str] = set()

    def launch(run: ScheduledRun) -> Outcome:
        launched.append((run.run_id, run.payload()))
        if run.schedule.state_machine:
            recorded.add(run.run_id)
        return Outcome("SUCCEEDED")

    reports: list[RunReport] = []
    scheduler = Scheduler(
        _schedules(),
        launch=launch,
        already_ran=lambda run: run.run_id in recorded,
        now=clock.now,
        sleep=clock.sleep,
        report=reports.append,
    )

    # When what is due runs twice
    first = scheduler.run_due()
    second = scheduler.run_due()

    # Then the first call ran Tuesday's ingest and rebalance (the disabled retrain never), the second skipped
    # the rebalance the store holds, and ran the ingest again (functions record no run: they are idempotent)
    assert [(r.run_id, r.action, r.status) for r in first] == [
        ("ingest-20240109T2130Z", "ran", "SUCCEEDED"),
        ("rebalance-20240109T2200Z", "ran", "SUCCEEDED"),
    ]
    assert [(r.run_id, r.action, r.status) for r in second] == [
        ("ingest-20240109T2130Z", "ran", "SUCCEEDED"),
        ("rebalance-20240109T2200Z", "skipped", "SKIPPED"),
    ]
    assert launched[0] == ("ingest-20240109T2130Z", {"run_id": "ingest-20240109T2130Z"})
    assert launched[1] == (
        "rebalance-20240109T2200Z",
        {"trigger": "schedule", "scheduled_for": "2024-01-09T22:00:00Z"},
    )
    assert reports == first + second and clock.slept == []


def test_a_failing_run_is_reported_and_the_others_still_run() -> None:
    clock = Clock(at(2024, 1, 9, 23))
    schedules = [
        *_schedules()[:2],
        Schedule(name="backtest", expression="cron(0 23 ? * TUE *)", state_machine="backtest"),
    ]

    def launch(run: ScheduledRun) -> Outcome:
        if run.schedule.name == "ingest":
            raise ConnectionError("store unreachable\n  at line 2")
        if run.schedule.name == "rebalance":
            cause = json.dumps({"errorType": "DataValidationError", "errorMessage": "3 symbols failed\nsee report"})
            return Outcome("FAILED", error="DataValidationError", cause=cause)
        return Outcome("SUCCEEDED")

    reports = Scheduler(schedules, launch=launch, now=clock.now, sleep=clock.sleep).run_due()
    assert [(r.schedule, r.status, r.error, r.cause) for r in reports] == [
        ("ingest", "FAILED", "ConnectionError", "store unreachable at line 2"),
        ("rebalance", "FAILED", "DataValidationError", "3 symbols failed see report"),
        ("backtest", "SUCCEEDED", None, None),
    ]
    assert [r.failed for r in reports] == [True, True, False]
    assert reports[1].to_dict()["scheduled_for"] == "2024-01-09T22:00:00Z"


def test_run_forever_sleeps_until_each_fire_time_and_runs_it() -> None:
    # Given Friday 5 January 2024 at 21:00 and a loop interrupted after three runs
    clock = Clock(at(2024, 1, 5, 21))
    runs: list[tuple[str, datetime]] = []

    def launch(run: ScheduledRun) -> Outcome:
        runs.append((run.run_id, clock.now()))
        clock.time += timedelta(seconds=40)  # a run takes time
        if len(runs) == 3:
            raise KeyboardInterrupt
        return Outcome("SUCCEEDED")

    scheduler = Scheduler(_schedules(), launch=launch, now=clock.now, sleep=clock.sleep, max_sleep_seconds=3600)

    # When it runs until interrupted
    with pytest.raises(KeyboardInterrupt):
        scheduler.run_forever()

    # Then it ran Friday's ingest and rebalance at their times, then Monday's ingest, sleeping in between
    assert runs == [
        ("ingest-20240105T2130Z", at(2024, 1, 5, 21, 30)),
        ("rebalance-20240105T2200Z", at(2024, 1, 5, 22)),
        ("ingest-20240108T2130Z", at(2024, 1, 8, 21, 30)),
    ]
    assert max(clock.slept) == 3600 and sum(clock.slept) == pytest.approx(
        (at(2024, 1, 8, 21, 30) - at(2024, 1, 5, 21)).total_seconds() - 2 * 40
    )


def test_run_forever_coalesces_fire_times_missed_while_asleep_and_goes_on_after_a_failure() -> None:
    # Given a 5-minute schedule whose first run fails and takes 17 minutes (three fire times pass meanwhile)
    clock = Clock(at(2024, 1, 1, 0, 1))
    runs: list[str] = []

    def launch(run: ScheduledRun) -> Outcome:
        runs.append(run.run_id)
        if len(runs) == 1:
            clock.time += timedelta(minutes=17)
            raise RuntimeError("boom")
        if len(runs) == 3:
            raise KeyboardInterrupt
        return Outcome("SUCCEEDED")

    every5 = Schedule(name="poll", expression="rate(5 minutes)", state_machine="rebalance")
    reports: list[RunReport] = []
    with pytest.raises(KeyboardInterrupt):
        Scheduler([every5], launch=launch, now=clock.now, sleep=clock.sleep, report=reports.append).run_forever()

    # Then 00:05 ran (and failed), 00:10-00:20 were coalesced into 00:20, then 00:25 ran on time
    assert runs == ["poll-20240101T0005Z", "poll-20240101T0020Z", "poll-20240101T0025Z"]
    assert [r.status for r in reports] == ["FAILED", "SUCCEEDED"]


def test_run_forever_returns_when_nothing_fires_again() -> None:
    clock = Clock(at(2025, 12, 31, 23))
    once = Schedule(name="last", expression="cron(0 0 1 1 ? 2026)", state_machine="rebalance")
    ran: list[str] = []
    Scheduler(
        [once], launch=lambda run: ran.append(run.run_id) or Outcome("SUCCEEDED"), now=clock.now, sleep=clock.sleep
    ).run_forever()
    assert ran == ["last-20260101T0000Z"] and clock.now() == at(2026, 1, 1)
