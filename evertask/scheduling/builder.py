"""The fluent recurring-schedule builder (implements ``evertask_abstractions.recurring``).

Every stage is a small class over one shared draft, so only the methods valid at that point
of the chain exist; arguments are checked as they arrive, and :meth:`RecurringTaskBuilder.build`
turns the draft into an immutable :class:`RecurringSchedule`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from .calendar_math import load_zone
from .model import CronRecurrence, EveryRecurrence, FirstRun, FirstRunKind, Recurrence, Unit
from .schedule import RecurringSchedule
from .validation import (
    fail,
    flatten,
    require_aware,
    require_day_of_month,
    require_delay,
    require_interval,
    require_max_runs,
    require_minute,
    require_month,
    require_second,
    require_time,
    require_weekday,
)

__all__ = ["RecurringTaskBuilder", "build_schedule"]

_RECURRENCE_HINT = (
    "use_cron('*/5 * * * *'), every(5).minutes(), every_day().at_time(time(3, 0)), "
    "on_days(calendar.MONDAY) or on_months(1, 7)"
)


@dataclass
class _Draft:
    """Mutable state shared by every stage of one chain."""

    entry: str | None = None
    start: FirstRun | None = None
    awaiting_recurrence: bool = False
    recurrence_call: str | None = None
    unit: Unit | None = None
    interval: int = 1
    cron: str | None = None
    second: int | None = None
    minute: int | None = None
    times: tuple[time, ...] = ()
    weekdays: tuple[int, ...] = ()
    days: tuple[int, ...] = ()
    first_weekday: int | None = None
    months: tuple[int, ...] = ()
    day_rule: str | None = None
    timezone: str | None = None
    run_until: datetime | None = None
    max_runs: int | None = None

    def enter(self, call: str) -> None:
        if self.entry is not None:
            fail(
                f"{call}: this builder already started with {self.entry}. A schedule starts "
                "with exactly one of run_now(), run_delayed(), run_at() or schedule(); "
                "use run_now().then()... to combine a first run with a recurrence."
            )
        self.entry = call

    def recur(self, call: str, unit: Unit, interval: int = 1) -> None:
        self._claim_recurrence(call)
        self.unit = unit
        self.interval = interval

    def recur_cron(self, call: str, expression: str) -> None:
        self._claim_recurrence(call)
        self.cron = CronRecurrence(expression).expression

    def _claim_recurrence(self, call: str) -> None:
        if self.recurrence_call is not None:
            fail(
                f"{call}: the schedule already recurs with {self.recurrence_call}; "
                "a schedule has exactly one recurrence."
            )
        self.recurrence_call = call
        self.awaiting_recurrence = False

    def once(self, call: str, current: object, what: str) -> None:
        if current not in (None, ()):
            fail(f"{call}: {what} is already set; set it once per schedule.")

    def recurrence(self) -> Recurrence | None:
        if self.cron is not None:
            return CronRecurrence(self.cron)
        if self.unit is None:
            return None
        return EveryRecurrence(
            unit=self.unit,
            interval=self.interval,
            second=self.second,
            minute=self.minute,
            times=self.times,
            weekdays=self.weekdays,
            days=self.days,
            first_weekday=self.first_weekday,
            months=self.months,
        )


class _Stage:
    __slots__ = ("_draft",)

    def __init__(self, draft: _Draft) -> None:
        self._draft = draft


class _BuildableBuilder(_Stage):
    """A complete schedule that can still be bounded or given a time zone."""

    __slots__ = ()

    def in_timezone(self, name: str) -> _BuildableBuilder:
        """Evaluate wall-clock times in this IANA zone (default UTC)."""
        draft = self._draft
        draft.once(f"in_timezone({name!r})", draft.timezone, "the time zone")
        load_zone(name)
        draft.timezone = name
        return _BuildableBuilder(draft)

    def run_until(self, until: datetime) -> _BuildableBuilder:
        """Stop the series before this aware instant (exclusive)."""
        draft = self._draft
        draft.once("run_until", draft.run_until, "run_until")
        draft.run_until = require_aware(until, "run_until")
        return _BuildableBuilder(draft)

    def max_runs(self, count: int) -> _BuildableBuilder:
        """Stop after ``count`` real executions (failed runs count; skipped ones do not)."""
        draft = self._draft
        draft.once(f"max_runs({count!r})", draft.max_runs, "max_runs")
        draft.max_runs = require_max_runs(count, f"max_runs({count!r})")
        return _BuildableBuilder(draft)


class _MinuteBuilder(_BuildableBuilder):
    """Every N minutes (or hours, after ``at_minute``)."""

    __slots__ = ()

    def at_second(self, second: int) -> _BuildableBuilder:
        """Fire at this second (0-59) of the minute."""
        draft = self._draft
        call = f"at_second({second!r})"
        draft.once(call, draft.second, "the second")
        draft.second = require_second(second, call)
        return _BuildableBuilder(draft)


class _HourBuilder(_BuildableBuilder):
    """Every N hours."""

    __slots__ = ()

    def at_minute(self, minute: int) -> _MinuteBuilder:
        """Fire at this minute (0-59) of the hour."""
        draft = self._draft
        call = f"at_minute({minute!r})"
        draft.once(call, draft.minute, "the minute")
        draft.minute = require_minute(minute, call)
        return _MinuteBuilder(draft)


class _DailyTimeBuilder(_BuildableBuilder):
    """A day-based schedule whose time(s) of day can be set."""

    __slots__ = ()

    def at_time(self, at: time) -> _BuildableBuilder:
        """Fire at this wall-clock time."""
        return self._set_times((at,), f"at_time({at!r})")

    def at_times(self, *times: time | Iterable[time]) -> _BuildableBuilder:
        """Fire at every one of these wall-clock times (varargs or one iterable)."""
        items = flatten(times, "at_times()", "at_times(time(9, 0), time(14, 0))")
        return self._set_times(tuple(items), "at_times(...)")

    def _set_times(self, items: tuple[object, ...], call: str) -> _BuildableBuilder:
        draft = self._draft
        draft.once(call, draft.times, "the time of day")
        draft.times = tuple(sorted({require_time(t, call) for t in items}))
        return _BuildableBuilder(draft)


class _WeeklyBuilder(_DailyTimeBuilder):
    """Every N weeks."""

    __slots__ = ()

    def on_day(self, weekday: int) -> _DailyTimeBuilder:
        """On this weekday (``calendar.MONDAY`` == 0)."""
        return self._set_weekdays((weekday,), f"on_day({weekday!r})")

    def on_days(self, *weekdays: int | Iterable[int]) -> _DailyTimeBuilder:
        """On each of these weekdays."""
        items = flatten(weekdays, "on_days()", "on_days(calendar.MONDAY, calendar.THURSDAY)")
        return self._set_weekdays(tuple(items), "on_days(...)")

    def _set_weekdays(self, items: tuple[object, ...], call: str) -> _DailyTimeBuilder:
        draft = self._draft
        draft.once(call, draft.weekdays, "the weekdays")
        draft.weekdays = tuple(sorted({require_weekday(d, call) for d in items}))
        return _DailyTimeBuilder(draft)


class _MonthlyBuilder(_DailyTimeBuilder):
    """Every N months, or in the listed months."""

    __slots__ = ()

    def on_day(self, day: int) -> _DailyTimeBuilder:
        """On this day of the month (1-31; clamped to the last day of shorter months)."""
        return self._set_days((day,), f"on_day({day!r})")

    def on_days(self, *days: int | Iterable[int]) -> _DailyTimeBuilder:
        """On each of these days of the month (each clamped like :meth:`on_day`)."""
        return self._set_days(tuple(flatten(days, "on_days()", "on_days(1, 15)")), "on_days(...)")

    def on_first(self, weekday: int) -> _DailyTimeBuilder:
        """On the first given weekday of the month (``calendar.MONDAY`` == 0)."""
        draft = self._draft
        call = f"on_first({weekday!r})"
        self._claim_day_rule(call)
        draft.first_weekday = require_weekday(weekday, call)
        return _DailyTimeBuilder(draft)

    def _set_days(self, items: tuple[object, ...], call: str) -> _DailyTimeBuilder:
        self._claim_day_rule(call)
        self._draft.days = tuple(sorted({require_day_of_month(d, call) for d in items}))
        return _DailyTimeBuilder(self._draft)

    def _claim_day_rule(self, call: str) -> None:
        draft = self._draft
        if draft.day_rule is not None:
            fail(f"{call}: the day of the month is already set by {draft.day_rule}.")
        draft.day_rule = call


class _EveryBuilder(_Stage):
    """``every(n)``: choose the unit."""

    __slots__ = ("_interval",)

    def __init__(self, draft: _Draft, interval: int) -> None:
        super().__init__(draft)
        self._interval = interval

    def _recur(self, unit: Unit) -> None:
        self._draft.recur(f"every({self._interval}).{unit.value}s()", unit, self._interval)

    def seconds(self) -> _BuildableBuilder:
        """Every n seconds (an elapsed-time cadence)."""
        self._recur(Unit.SECOND)
        return _BuildableBuilder(self._draft)

    def minutes(self) -> _MinuteBuilder:
        """Every n minutes (an elapsed-time cadence)."""
        self._recur(Unit.MINUTE)
        return _MinuteBuilder(self._draft)

    def hours(self) -> _HourBuilder:
        """Every n hours (wall-clock hours in the schedule's zone)."""
        self._recur(Unit.HOUR)
        return _HourBuilder(self._draft)

    def days(self) -> _DailyTimeBuilder:
        """Every n days."""
        self._recur(Unit.DAY)
        return _DailyTimeBuilder(self._draft)

    def weeks(self) -> _WeeklyBuilder:
        """Every n weeks (ISO weeks, Monday first)."""
        self._recur(Unit.WEEK)
        return _WeeklyBuilder(self._draft)

    def months(self) -> _MonthlyBuilder:
        """Every n months."""
        self._recur(Unit.MONTH)
        return _MonthlyBuilder(self._draft)


class _IntervalBuilder(_Stage):
    """Choose the recurrence."""

    __slots__ = ()

    def use_cron(self, expression: str) -> _BuildableBuilder:
        """A 5-field, 6-field (seconds first) or ``@daily``-style cron expression."""
        self._draft.recur_cron(f"use_cron({expression!r})", expression)
        return _BuildableBuilder(self._draft)

    def every(self, interval: int) -> _EveryBuilder:
        """Every ``interval`` units (interval >= 1)."""
        return _EveryBuilder(self._draft, require_interval(interval, f"every({interval!r})"))

    def every_second(self) -> _BuildableBuilder:
        """Every second."""
        return self.every(1).seconds()

    def every_minute(self) -> _MinuteBuilder:
        """Every minute."""
        return self.every(1).minutes()

    def every_hour(self) -> _HourBuilder:
        """Every hour."""
        return self.every(1).hours()

    def every_day(self) -> _DailyTimeBuilder:
        """Every day."""
        return self.every(1).days()

    def every_week(self) -> _WeeklyBuilder:
        """Every week."""
        return self.every(1).weeks()

    def every_month(self) -> _MonthlyBuilder:
        """Every month."""
        return self.every(1).months()

    def on_days(self, *weekdays: int | Iterable[int]) -> _DailyTimeBuilder:
        """On each of these weekdays, every week."""
        items = flatten(weekdays, "on_days()", "on_days(calendar.MONDAY, calendar.FRIDAY)")
        parsed = tuple(sorted({require_weekday(d, "on_days(...)") for d in items}))
        self._draft.recur("on_days(...)", Unit.DAY)
        self._draft.weekdays = parsed
        return _DailyTimeBuilder(self._draft)

    def on_months(self, *months: int | Iterable[int]) -> _MonthlyBuilder:
        """In each of these months (1-12), every year."""
        items = flatten(months, "on_months()", "on_months(1, 7)")
        parsed = tuple(sorted({require_month(m, "on_months(...)") for m in items}))
        self._draft.recur("on_months(...)", Unit.MONTH)
        self._draft.months = parsed
        return _MonthlyBuilder(self._draft)


class _ThenableBuilder(_Stage):
    """A first run; ``then()`` continues with a recurrence, otherwise it is a single run."""

    __slots__ = ()

    def then(self) -> _IntervalBuilder:
        """Continue with a recurrence after the first run."""
        draft = self._draft
        if draft.awaiting_recurrence or draft.recurrence_call is not None:
            fail("then(): already called; chain one recurrence after it.")
        draft.awaiting_recurrence = True
        return _IntervalBuilder(draft)


class RecurringTaskBuilder:
    """Entry point of the fluent grammar (what ``dispatch(task, lambda b: ...)`` receives).

    >>> from datetime import time
    >>> b = RecurringTaskBuilder()
    >>> _ = b.schedule().every_day().at_time(time(3, 0)).in_timezone("Europe/Rome")
    >>> str(b.build())
    'every day at 03:00 (Europe/Rome)'
    """

    __slots__ = ("_draft",)

    def __init__(self) -> None:
        self._draft = _Draft()

    def run_now(self) -> _ThenableBuilder:
        """First run immediately (alone: a single run now)."""
        self._draft.enter("run_now()")
        self._draft.start = FirstRun(FirstRunKind.NOW)
        return _ThenableBuilder(self._draft)

    def run_delayed(self, delay: timedelta) -> _ThenableBuilder:
        """First run after ``delay`` (alone: a single delayed run)."""
        call = f"run_delayed({delay!r})"
        checked = require_delay(delay, call)
        self._draft.enter(call)
        self._draft.start = FirstRun(FirstRunKind.DELAY, delay=checked)
        return _ThenableBuilder(self._draft)

    def run_at(self, at: datetime) -> _ThenableBuilder:
        """First run at this aware instant (alone: a single run); it also anchors the grid."""
        checked = require_aware(at, "run_at")
        self._draft.enter(f"run_at({checked.isoformat()})")
        self._draft.start = FirstRun(FirstRunKind.AT, at=checked)
        return _ThenableBuilder(self._draft)

    def schedule(self) -> _IntervalBuilder:
        """Start a recurrence; the first run is its first occurrence at or after dispatch."""
        self._draft.enter("schedule()")
        self._draft.awaiting_recurrence = True
        return _IntervalBuilder(self._draft)

    def build(self) -> RecurringSchedule:
        """The immutable schedule described by the chain so far."""
        draft = self._draft
        if draft.entry is None:
            fail(
                "The builder was not used: start with run_now(), run_delayed(delay), "
                "run_at(when) or schedule(), e.g. lambda b: b.schedule().every_day()."
            )
        if draft.awaiting_recurrence:
            fail(
                f"{draft.entry}{'.then()' if draft.start else ''} must be followed by a "
                f"recurrence, e.g. {_RECURRENCE_HINT}."
            )
        return RecurringSchedule(
            recurrence=draft.recurrence(),
            start=draft.start,
            timezone=draft.timezone or "UTC",
            run_until=draft.run_until,
            max_runs=draft.max_runs,
        )


def build_schedule(
    configure: Callable[[RecurringTaskBuilder], object], *, now: datetime | None = None
) -> RecurringSchedule:
    """Run ``configure`` on a fresh builder and return the schedule it describes.

    The same object the dispatcher persists, so ``build_schedule(...).occurrences(now, 5)``
    previews exactly what will run. With ``now``, :meth:`RecurringSchedule.validate` is
    applied too (run_until in the past, no occurrence before run_until).
    """
    builder = RecurringTaskBuilder()
    configure(builder)
    schedule = builder.build()
    if now is not None:
        schedule.validate(now)
    return schedule


if TYPE_CHECKING:  # static proof that the stages satisfy the published protocols
    from evertask_abstractions import recurring as _protocols

    def _conforms(
        entry: RecurringTaskBuilder,
        thenable: _ThenableBuilder,
        interval: _IntervalBuilder,
        every: _EveryBuilder,
        buildable: _BuildableBuilder,
        minute: _MinuteBuilder,
        hour: _HourBuilder,
        daily: _DailyTimeBuilder,
        weekly: _WeeklyBuilder,
        monthly: _MonthlyBuilder,
    ) -> None:
        _a: _protocols.RecurringTaskBuilder = entry
        _b: _protocols.ThenableSchedulerBuilder = thenable
        _c: _protocols.IntervalSchedulerBuilder = interval
        _d: _protocols.EverySchedulerBuilder = every
        _e: _protocols.BuildableSchedulerBuilder = buildable
        _f: _protocols.MinuteSchedulerBuilder = minute
        _g: _protocols.HourSchedulerBuilder = hour
        _h: _protocols.DailyTimeSchedulerBuilder = daily
        _i: _protocols.WeeklySchedulerBuilder = weekly
        _j: _protocols.MonthlySchedulerBuilder = monthly
