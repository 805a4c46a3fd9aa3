"""Human-readable descriptions of schedules (EverTask's ``RecurringInfo``).

Times are rendered in the schedule's own zone, never in the server's local time, e.g.
``every day at 03:00 (Europe/Rome)`` or
``every 5 minutes at second 30, until 2027-01-01 00:00 UTC, at most 10 runs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

from .calendar_math import wall
from .model import CronRecurrence, EveryRecurrence, FirstRunKind, Unit
from .protocols import DescribableSchedule
from .validation import WEEKDAY_NAMES

__all__ = ["describe", "format_delay", "format_instant", "format_time"]

_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def format_time(at: time) -> str:
    """``09:00``, ``09:00:30``, ``09:00:30.250000``."""
    text = f"{at.hour:02d}:{at.minute:02d}"
    if at.second or at.microsecond:
        text += f":{at.second:02d}"
    if at.microsecond:
        text += f".{at.microsecond:06d}"
    return text


def format_instant(moment: datetime, schedule: DescribableSchedule) -> str:
    """``2027-01-01 00:00 UTC`` in the schedule's zone."""
    local = moment.astimezone(schedule.zone)
    return f"{local.date().isoformat()} {format_time(local.time())} {schedule.timezone}"


def format_delay(delay: timedelta) -> str:
    """``1d 2h 30m 5s`` (``0s`` for zero)."""
    seconds_total = delay.total_seconds()
    days, rest = divmod(int(seconds_total), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    fraction = seconds_total - int(seconds_total)
    parts = [
        f"{value}{unit}" for value, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if value
    ]
    if seconds or fraction or not parts:
        parts.append(f"{seconds + fraction:g}s")
    return " ".join(parts)


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _every(n: int, unit: str) -> str:
    return f"every {unit}" if n == 1 else f"every {n} {unit}s"


def _fluent(spec: EveryRecurrence, schedule: DescribableSchedule) -> str:
    anchor = wall(schedule.anchor, schedule.zone)
    times = spec.times or (anchor.time(),)
    at_times = " at " + _join([format_time(t) for t in times])
    unit = spec.unit
    if unit is Unit.SECOND:
        return _every(spec.interval, "second")
    if unit is Unit.MINUTE:
        second = spec.second
        suffix = f" at second {second}" if second is not None else ""
        return _every(spec.interval, "minute") + suffix
    if unit is Unit.HOUR:
        minute = spec.minute if spec.minute is not None else anchor.minute
        explicit = spec.minute is not None or spec.second is not None
        second = spec.second if spec.second is not None else (0 if explicit else anchor.second)
        text = _every(spec.interval, "hour")
        if minute or explicit:
            text += f" at minute {minute}"
            if second:
                text += f", second {second}"
        elif second:
            text += f" at second {second}"
        return text
    if unit is Unit.DAY:
        if spec.weekdays:
            return "every " + _join([WEEKDAY_NAMES[d] for d in spec.weekdays]) + at_times
        return _every(spec.interval, "day") + at_times
    if unit is Unit.WEEK:
        weekdays = spec.weekdays or (anchor.weekday(),)
        names = _join([WEEKDAY_NAMES[d] for d in weekdays])
        return f"{_every(spec.interval, 'week')} on {names}{at_times}"
    if spec.months:
        head = "every " + _join([_MONTH_NAMES[m - 1] for m in spec.months])
    else:
        head = _every(spec.interval, "month")
    if spec.first_weekday is not None:
        day_rule = f"on the first {WEEKDAY_NAMES[spec.first_weekday]}"
    else:
        days = spec.days or (anchor.day,)
        label = "day" if len(days) == 1 else "days"
        day_rule = f"on {label} {_join([str(d) for d in days])}"
        if max(days) > 28:
            day_rule += " (or the month's last day, if shorter)"
    return f"{head} {day_rule}{at_times}"


def _recurrence(schedule: DescribableSchedule) -> str:
    recurrence = schedule.recurrence
    if isinstance(recurrence, CronRecurrence):
        return f"cron '{recurrence.expression}' ({schedule.timezone})"
    assert isinstance(recurrence, EveryRecurrence)
    text = _fluent(recurrence, schedule)
    return text if recurrence.is_elapsed else f"{text} ({schedule.timezone})"


def _first_run(schedule: DescribableSchedule) -> str | None:
    start = schedule.start
    if start is None:
        return None
    if start.kind is FirstRunKind.NOW:
        return "now"
    if start.kind is FirstRunKind.DELAY:
        assert start.delay is not None
        return f"after {format_delay(start.delay)}"
    assert start.at is not None
    return f"at {format_instant(start.at, schedule)}"


def describe(schedule: DescribableSchedule) -> str:
    """The one-line description stored as ``recurring_info`` and shown by the dashboard."""
    first = _first_run(schedule)
    if schedule.recurrence is None:
        text = f"run once {first}"
    elif first is not None:
        text = f"run {first}, then {_recurrence(schedule)}"
    else:
        text = _recurrence(schedule)
    if schedule.run_until is not None:
        text += f", until {format_instant(schedule.run_until, schedule)}"
    if schedule.max_runs is not None:
        text += (
            ", at most 1 run" if schedule.max_runs == 1 else f", at most {schedule.max_runs} runs"
        )
    return text
