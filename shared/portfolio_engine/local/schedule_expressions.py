"""EventBridge schedule expressions as fire times, through APScheduler's triggers (no AWS).

* ``cron(minutes hours day-of-month month day-of-week year)``, in UTC, as EventBridge reads it: ``?``, ``*``,
  lists, ranges, steps (``0/15``), month and day names (``JAN``, ``MON-FRI``), numeric days of the week with
  ``1 = SUN ... 7 = SAT`` (translated to APScheduler's names: its numbers start at Monday), ``L`` in
  day-of-month (the month's last day), ``<day>L`` (the month's last such weekday) and ``<day>#<n>`` (its n-th)
  in day-of-week. What APScheduler cannot express exactly (``W``, ``L-<n>``, a bare ``L`` as day of week)
  is refused with a :class:`~portfolio_engine.exceptions.ConfigurationError` naming the schedule and the field.
* ``rate(N minute|minutes|hour|hours|day|days)``: every N units. EventBridge counts from the rule's
  creation; locally there is no creation time, so a rate counts from the Unix epoch (``rate(1 day)`` fires at
  00:00 UTC, ``rate(15 minutes)`` at :00, :15, ...): the same fire times on every run, hence the same run ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from portfolio_engine.exceptions import ConfigurationError

__all__ = ["RATE_ORIGIN", "ScheduleExpression", "parse_expression", "utc"]

#: The origin rate expressions count from locally (EventBridge counts from the rule's creation).
RATE_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)
_CRON = re.compile(r"^cron\((?P<body>[^()]*)\)$")
_RATE = re.compile(r"^rate\((?P<value>\d+) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_RATE_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
#: AWS numbers days of the week 1 = SUN ... 7 = SAT; APScheduler 3 numbers them 0 = mon ... 6 = sun, so
#: days are always passed to it by name.
_AWS_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_NTH = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th"}
_BOUNDS = {"minutes": (0, 59), "hours": (0, 23), "day-of-month": (1, 31), "month": (1, 12), "year": (1970, 2199)}


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; schedules fire in UTC: pass an aware datetime")
    return moment.astimezone(UTC)


def _floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class _FieldError(ValueError):
    """A cron field that does not parse, or has no exact APScheduler equivalent (caught and re-raised typed)."""


def _number(token: str, bounds: tuple[int, int], names: Sequence[str] | None = None) -> int:
    upper = token.upper()
    if names is not None and upper in names:
        return names.index(upper) + 1  # JAN = 1, SUN = 1
    if not token.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise _FieldError(f"{token!r} is not a number{known}")
    value = int(token)
    if not bounds[0] <= value <= bounds[1]:
        raise _FieldError(f"{value} is outside {bounds[0]}..{bounds[1]}")
    return value


def _values(term: str, bounds: tuple[int, int], names: Sequence[str] | None = None) -> list[int]:
    """The values of one list term: ``n``, ``a-b``, ``*/c``, ``a/c``, ``a-b/c`` (names allowed where ``names``)."""
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise _FieldError(f"{term!r}: the step after '/' must be a whole number of at least 1")
        step = int(step_text)
    if base == "*":
        first, last = bounds
    elif "-" in base:
        low, _, high = base.partition("-")
        first, last = _number(low, bounds, names), _number(high, bounds, names)
        if first > last:
            raise _FieldError(f"{term!r}: a range must go from low to high")
    else:
        first = _number(base, bounds, names)
        last = bounds[1] if slash else first  # "a/c": from a to the field's end, every c
    return list(range(first, last + 1, step))


def _plain_field(text: str, name: str) -> str:
    """An APScheduler expression for minutes, hours, month or year.

    ``*``, single values and ranges are kept; stepped terms and names are expanded to their values
    (APScheduler refuses a step longer than its range, which cron allows).
    """
    names = _MONTHS if name == "month" else None
    if text == "*":
        return "*"
    parts: list[str] = []
    for term in text.split(","):
        if "/" in term or (names is not None and any(c.isalpha() for c in term)):
            parts += [str(v) for v in _values(term, _BOUNDS[name], names)]
        elif re.fullmatch(r"\d+(-\d+)?", term):
            values = _values(term, _BOUNDS[name])
            parts.append(str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}")
        else:
            raise _FieldError(f"{term!r} is not a value, range or step of this field")
    return ",".join(parts)


def _day_of_month(text: str) -> str:
    if text == "*":
        return "*"
    parts: list[str] = []
    for term in text.split(","):
        if term.upper() == "L":
            parts.append("last")
        elif "W" in term.upper():
            raise _FieldError(
                f"{term!r}: W (the nearest weekday) has no exact equivalent in the local scheduler; "
                "list the days, or use L for the last day of the month"
            )
        elif term.upper().startswith("L"):
            raise _FieldError(f"{term!r}: an offset from the last day (L-n) has no exact equivalent locally")
        else:
            parts.append(_plain_field(term, "day-of-month"))
    return ",".join(parts)


def _aws_day(token: str) -> int:
    """An AWS day of the week, 1 = SUN ... 7 = SAT, from its number or name."""
    return _number(token, (1, 7), _AWS_DAYS)


def _aps_day(aws_day: int) -> str:
    return _AWS_DAYS[aws_day - 1].lower()


def _day_of_week(text: str) -> tuple[str, str]:
    """``(day, day_of_week)`` APScheduler expressions for an AWS day-of-week field.

    ``<day>#<n>`` and ``<day>L`` name days of the month, so they go to APScheduler's ``day`` field (as
    ``"1st mon"``, ``"last fri"``); plain days go to ``day_of_week`` by name. Fields are ANDed, so a list may
    not mix the two kinds.
    """
    if text == "*":
        return "*", "*"
    positional: list[str] = []
    days: set[int] = set()
    for term in text.split(","):
        upper = term.upper()
        if "#" in upper:
            day, _, nth = upper.partition("#")
            if not nth.isdigit() or int(nth) not in _NTH:
                raise _FieldError(f"{term!r}: the n in <day>#<n> must be 1 to 5")
            positional.append(f"{_NTH[int(nth)]} {_aps_day(_aws_day(day))}")
        elif upper == "L":
            raise _FieldError("'L' alone (the last day of the week) is ambiguous; write SAT, or 6L for the last Friday")
        elif upper.endswith("L"):
            positional.append(f"last {_aps_day(_aws_day(upper[:-1]))}")
        else:
            days.update(_values(term, (1, 7), _AWS_DAYS))
    if positional and days:
        raise _FieldError(f"{text!r} mixes <day>#<n> or <day>L with plain days, which the local scheduler cannot AND")
    if positional:
        return ",".join(positional), "*"
    # In APScheduler's week order (mon first), by name: AWS numbers never reach it.
    ordered = sorted(days, key=lambda d: (d + 5) % 7)
    return "*", ",".join(_aps_day(d) for d in ordered)


@dataclass(frozen=True, eq=False)
class ScheduleExpression:
    """An EventBridge schedule expression and the APScheduler trigger that gives its fire times (UTC).

    Attributes
    ----------
    expression : str
        ``cron(...)`` or ``rate(...)`` as written in ``cdk.json``.
    trigger : CronTrigger or IntervalTrigger
        APScheduler 3's trigger with the same fire times.
    """

    expression: str
    trigger: CronTrigger | IntervalTrigger

    def _first_at_or_after(self, moment: datetime) -> datetime | None:
        fire = self.trigger.get_next_fire_time(None, moment)
        return None if fire is None else fire.astimezone(UTC)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (None if the expression never fires again)."""
        # Fire times are whole seconds (whole minutes, in fact): the first at or after the next whole second.
        return self._first_at_or_after(_floor_second(utc(moment)) + timedelta(seconds=1))

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The most recent fire time at or before ``moment`` (None if it never fired since 1970).

        APScheduler only searches forward: look back over a window that doubles until it holds a fire time,
        then bisect it to the second (fire times are whole seconds): about 70 forward searches at most.
        """
        moment = _floor_second(utc(moment))
        window = timedelta(minutes=2)
        while True:
            start = max(moment - window, RATE_ORIGIN)
            first = self._first_at_or_after(start)
            if first is not None and first <= moment:
                break
            if start == RATE_ORIGIN:
                return None
            window *= 2
        low, high = start, moment + timedelta(seconds=1)  # invariant: a fire time in [low, high), none after it
        while high - low > timedelta(seconds=1):
            middle = _floor_second(low + (high - low) / 2)
            if middle == low:
                break
            fire = self._first_at_or_after(middle)
            if fire is not None and fire <= moment:
                low = middle
            else:
                high = middle
        latest = self._first_at_or_after(low)
        assert latest is not None and latest <= moment
        return latest

    def between(self, start: datetime, end: datetime, *, limit: int = 100_000) -> list[datetime]:
        """Every fire time in ``[start, end]``, oldest first.

        Parameters
        ----------
        start, end : datetime
            Aware datetimes (any time zone).
        limit : int
            The most fire times returned.

        Raises
        ------
        ConfigurationError
            If there are more than ``limit`` of them (a wide interval of a frequent expression).
        """
        start, end = utc(start), utc(end)
        times: list[datetime] = []
        fire = self._first_at_or_after(start)
        while fire is not None and fire <= end:
            if len(times) == limit:
                raise ConfigurationError(
                    f"{self.expression} fires more than {limit:,} times between {start} and {end}.",
                    hint="Ask for a shorter interval, or raise `limit`.",
                )
            times.append(fire)
            fire = self.next_after(fire)
        return times


def parse_expression(expression: str, *, schedule: str = "") -> ScheduleExpression:
    """Parse an EventBridge ``cron(...)`` or ``rate(...)`` expression into its fire times (UTC).

    Parameters
    ----------
    expression : str
        As EventBridge takes it, e.g. ``cron(0 18 ? * MON-FRI *)`` or ``rate(15 minutes)``.
    schedule : str
        The schedule's name, for error messages.

    Returns
    -------
    ScheduleExpression

    Raises
    ------
    ConfigurationError
        If the expression is malformed, uses what the local scheduler cannot reproduce exactly (``W``), or
        never fires (``cron(0 0 30 2 ? *)``); the message names the schedule and the field.
    """
    where = f"Schedule {schedule!r}: " if schedule else ""
    expression = expression.strip()
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate["value"]), rate["unit"]
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise ConfigurationError(
                f"{where}{expression} is not a valid rate.",
                hint="The value must be at least 1, with a singular unit for 1 and a plural one otherwise: "
                "rate(1 hour), rate(5 minutes).",
            )
        interval = _RATE_UNITS[unit.removesuffix("s")] * value
        return ScheduleExpression(
            expression, IntervalTrigger(seconds=int(interval.total_seconds()), start_date=RATE_ORIGIN, timezone=UTC)
        )
    cron = _CRON.match(expression)
    if not cron:
        raise ConfigurationError(
            f"{where}{expression!r} is not an EventBridge schedule expression.",
            hint="Use cron(minutes hours day-of-month month day-of-week year) or rate(N minutes|hours|days), in UTC.",
        )
    fields = cron["body"].split()
    if len(fields) != 6:
        raise ConfigurationError(
            f"{where}{expression} has {len(fields)} fields; EventBridge cron has 6.",
            hint="cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 18 ? * MON-FRI *).",
        )
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ConfigurationError(
            f"{where}{expression}: exactly one of day-of-month ({day_of_month!r}) and day-of-week "
            f"({day_of_week!r}) must be '?'.",
            hint="EventBridge refuses both or neither: cron(0 10 * * ? *) (every day), cron(0 18 ? * MON-FRI *).",
        )

    def translate(name: str, text: str, how: Callable[[str], Any]) -> Any:
        try:
            return how(text)
        except _FieldError as exc:
            raise ConfigurationError(
                f"{where}{expression}: {name} field {text!r}: {exc}.",
                hint="EventBridge cron fields take ? * , - / (L and # in the day fields), names JAN-DEC and "
                "SUN-SAT, and number the days of the week 1 = SUN ... 7 = SAT.",
            ) from None

    if day_of_week == "?":
        day, weekday = translate("day-of-month", day_of_month, _day_of_month), "*"
    else:
        day, weekday = translate("day-of-week", day_of_week, _day_of_week)
    try:
        trigger = CronTrigger(
            year=translate("year", year, lambda text: _plain_field(text, "year")),
            month=translate("month", month, lambda text: _plain_field(text, "month")),
            day=day,
            day_of_week=weekday,
            hour=translate("hours", hours, lambda text: _plain_field(text, "hours")),
            minute=translate("minutes", minutes, lambda text: _plain_field(text, "minutes")),
            second="0",
            timezone=UTC,
        )
    except ValueError as exc:  # every field was checked above: APScheduler disagreeing is a bug to report
        raise ConfigurationError(f"{where}{expression}: APScheduler refused it: {exc}.") from exc
    if trigger.get_next_fire_time(None, RATE_ORIGIN) is None:
        raise ConfigurationError(
            f"{where}{expression} never fires (no date matches all its fields, e.g. 30 February).",
            hint="Check the day-of-month, month and year fields.",
        )
    return ScheduleExpression(expression, trigger)
