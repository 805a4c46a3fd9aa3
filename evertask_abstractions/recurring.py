"""Typed protocols of the fluent recurring-schedule builder (implemented by ``evertask``).

Grammar (snake_case twins of EverTask's, plus ``in_timezone``)::

    b.run_now() / b.run_delayed(td) / b.run_at(dt)     -> ThenableSchedulerBuilder
        .then()                                        -> IntervalSchedulerBuilder
    b.schedule()                                       -> IntervalSchedulerBuilder
        .use_cron("*/5 * * * *")                       -> BuildableSchedulerBuilder
        .every(n).seconds() / .every_second()          -> BuildableSchedulerBuilder
        .every(n).minutes() / .every_minute()          -> MinuteSchedulerBuilder (.at_second)
        .every(n).hours() / .every_hour()              -> HourSchedulerBuilder (.at_minute)
            .at_minute(m)                              -> MinuteSchedulerBuilder (.at_second)
        .every(n).days() / .every_day() / .on_days(*wd)
                                                       -> DailyTimeSchedulerBuilder (.at_time(s))
        .every(n).weeks() / .every_week()              -> WeeklySchedulerBuilder (.on_day(s))
        .every(n).months() / .every_month() / .on_months(*m)
                                                       -> MonthlySchedulerBuilder
                                                          (.on_day(s), .on_first)
    any buildable: .in_timezone("Europe/Rome"), .run_until(dt), .max_runs(n)

A bare ``run_now()`` / ``run_delayed(td)`` / ``run_at(dt)`` without ``then()`` is a single
run. Weekdays are Python's (``calendar.MONDAY == 0``); times are naive ``datetime.time``
values read in the schedule's zone (UTC unless ``in_timezone``); datetimes must be aware.
Semantics (next matching wall-clock time, grids, DST, missed runs): ``docs/recurring.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Protocol

__all__ = [
    "BuildableSchedulerBuilder",
    "DailyTimeSchedulerBuilder",
    "EverySchedulerBuilder",
    "HourSchedulerBuilder",
    "IntervalSchedulerBuilder",
    "MinuteSchedulerBuilder",
    "MonthlySchedulerBuilder",
    "RecurringTaskBuilder",
    "ThenableSchedulerBuilder",
    "WeeklySchedulerBuilder",
]


class BuildableSchedulerBuilder(Protocol):
    """A complete schedule that can still be bounded or given a time zone."""

    def in_timezone(self, name: str) -> BuildableSchedulerBuilder:
        """Evaluate wall-clock times in this IANA zone (default UTC)."""
        ...

    def run_until(self, until: datetime) -> BuildableSchedulerBuilder:
        """Stop the series before this aware instant (exclusive)."""
        ...

    def max_runs(self, count: int) -> BuildableSchedulerBuilder:
        """Stop after ``count`` real executions."""
        ...


class MinuteSchedulerBuilder(BuildableSchedulerBuilder, Protocol):
    """Every N minutes (or hours, reached from :class:`HourSchedulerBuilder`)."""

    def at_second(self, second: int) -> BuildableSchedulerBuilder:
        """Fire at this second (0-59) of the minute."""
        ...


class HourSchedulerBuilder(BuildableSchedulerBuilder, Protocol):
    """Every N hours."""

    def at_minute(self, minute: int) -> MinuteSchedulerBuilder:
        """Fire at this minute (0-59) of the hour."""
        ...


class DailyTimeSchedulerBuilder(BuildableSchedulerBuilder, Protocol):
    """A day-based schedule whose time(s) of day can be set."""

    def at_time(self, at: time) -> BuildableSchedulerBuilder:
        """Fire at this wall-clock time."""
        ...

    def at_times(self, *times: time | Iterable[time]) -> BuildableSchedulerBuilder:
        """Fire at every one of these wall-clock times."""
        ...


class WeeklySchedulerBuilder(DailyTimeSchedulerBuilder, Protocol):
    """Every N weeks."""

    def on_day(self, weekday: int) -> DailyTimeSchedulerBuilder:
        """On this weekday (``calendar.MONDAY`` == 0)."""
        ...

    def on_days(self, *weekdays: int | Iterable[int]) -> DailyTimeSchedulerBuilder:
        """On each of these weekdays."""
        ...


class MonthlySchedulerBuilder(DailyTimeSchedulerBuilder, Protocol):
    """Every N months (or in the listed months)."""

    def on_day(self, day: int) -> DailyTimeSchedulerBuilder:
        """On this day of the month (1-31, clamped to the month's last day)."""
        ...

    def on_days(self, *days: int | Iterable[int]) -> DailyTimeSchedulerBuilder:
        """On each of these days of the month."""
        ...

    def on_first(self, weekday: int) -> DailyTimeSchedulerBuilder:
        """On the first given weekday of the month."""
        ...


class EverySchedulerBuilder(Protocol):
    """``every(n)``: choose the unit."""

    def seconds(self) -> BuildableSchedulerBuilder:
        """Every n seconds."""
        ...

    def minutes(self) -> MinuteSchedulerBuilder:
        """Every n minutes."""
        ...

    def hours(self) -> HourSchedulerBuilder:
        """Every n hours."""
        ...

    def days(self) -> DailyTimeSchedulerBuilder:
        """Every n days."""
        ...

    def weeks(self) -> WeeklySchedulerBuilder:
        """Every n weeks."""
        ...

    def months(self) -> MonthlySchedulerBuilder:
        """Every n months."""
        ...


class IntervalSchedulerBuilder(Protocol):
    """Choose the recurrence."""

    def use_cron(self, expression: str) -> BuildableSchedulerBuilder:
        """A 5-field or 6-field (with seconds) cron expression."""
        ...

    def every(self, interval: int) -> EverySchedulerBuilder:
        """Every ``interval`` units (interval >= 1)."""
        ...

    def every_second(self) -> BuildableSchedulerBuilder:
        """Every second."""
        ...

    def every_minute(self) -> MinuteSchedulerBuilder:
        """Every minute."""
        ...

    def every_hour(self) -> HourSchedulerBuilder:
        """Every hour."""
        ...

    def every_day(self) -> DailyTimeSchedulerBuilder:
        """Every day."""
        ...

    def every_week(self) -> WeeklySchedulerBuilder:
        """Every week."""
        ...

    def every_month(self) -> MonthlySchedulerBuilder:
        """Every month."""
        ...

    def on_days(self, *weekdays: int | Iterable[int]) -> DailyTimeSchedulerBuilder:
        """On each of these weekdays, every week."""
        ...

    def on_months(self, *months: int | Iterable[int]) -> MonthlySchedulerBuilder:
        """In each of these months (1-12), every year."""
        ...


class ThenableSchedulerBuilder(Protocol):
    """A first run; ``then()`` continues with a recurrence, otherwise it is a single run."""

    def then(self) -> IntervalSchedulerBuilder:
        """Continue with a recurrence after the first run."""
        ...


class RecurringTaskBuilder(Protocol):
    """Entry point passed to ``dispatch(task, lambda b: ...)``."""

    def run_now(self) -> ThenableSchedulerBuilder:
        """First run immediately."""
        ...

    def run_delayed(self, delay: timedelta) -> ThenableSchedulerBuilder:
        """First run after ``delay``."""
        ...

    def run_at(self, at: datetime) -> ThenableSchedulerBuilder:
        """First run at this aware instant."""
        ...

    def schedule(self) -> IntervalSchedulerBuilder:
        """Start the recurrence (first run at its first occurrence)."""
        ...
