"""The immutable parts of a schedule definition: first run, fluent recurrence, cron recurrence.

These are plain data (validated on construction, so corrupt JSON cannot produce a broken
object); the time math lives in :mod:`.fluent` and :mod:`.cron`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from .cron import normalize_cron
from .validation import (
    fail,
    require_aware,
    require_day_of_month,
    require_delay,
    require_interval,
    require_minute,
    require_month,
    require_second,
    require_time,
    require_weekday,
)

__all__ = ["CronRecurrence", "EveryRecurrence", "FirstRun", "FirstRunKind", "Recurrence", "Unit"]


class Unit(StrEnum):
    """The unit of a fluent ``every(n)`` recurrence."""

    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class FirstRunKind(StrEnum):
    """How the first run is placed: now, after a delay, or at an instant."""

    NOW = "now"
    DELAY = "delay"
    AT = "at"


@dataclass(frozen=True, slots=True)
class FirstRun:
    """``run_now()``, ``run_delayed(delay)`` or ``run_at(at)`` (``at`` stored in UTC)."""

    kind: FirstRunKind
    delay: timedelta | None = None
    at: datetime | None = None

    def __post_init__(self) -> None:
        kind = FirstRunKind(self.kind)
        object.__setattr__(self, "kind", kind)
        if kind is FirstRunKind.DELAY:
            if self.at is not None:
                fail("run_delayed: a delayed first run has no 'at' instant.")
            require_delay(self.delay, "run_delayed")
        elif kind is FirstRunKind.AT:
            if self.delay is not None:
                fail("run_at: a first run at an instant has no delay.")
            object.__setattr__(self, "at", require_aware(self.at, "run_at"))
        elif self.delay is not None or self.at is not None:
            fail("run_now: an immediate first run has neither delay nor instant.")


def _sorted_unique(values: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(set(values)))


@dataclass(frozen=True, slots=True)
class EveryRecurrence:
    """A fluent recurrence: ``every(interval)`` ``unit`` plus its calendar refinements.

    ``second``/``minute`` refine seconds, minutes and hours; ``times`` refine days, weeks and
    months; ``weekdays`` pick days of the week (``on_days``), ``days``/``first_weekday`` days of
    the month, ``months`` the months of the year (``on_months``). Empty/None means "derived from
    the grid anchor" (see ``docs/recurring.md``).
    """

    unit: Unit
    interval: int = 1
    second: int | None = None
    minute: int | None = None
    times: tuple[time, ...] = ()
    weekdays: tuple[int, ...] = ()
    days: tuple[int, ...] = ()
    first_weekday: int | None = None
    months: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unit = Unit(self.unit)
        object.__setattr__(self, "unit", unit)
        require_interval(self.interval, f"every({self.interval!r})")
        if self.second is not None:
            require_second(self.second, f"at_second({self.second!r})")
        if self.minute is not None:
            require_minute(self.minute, f"at_minute({self.minute!r})")
        times = tuple(sorted({require_time(t, "at_times") for t in self.times}))
        object.__setattr__(self, "times", times)
        weekdays = _sorted_unique(tuple(require_weekday(d, "on_days") for d in self.weekdays))
        object.__setattr__(self, "weekdays", weekdays)
        days = _sorted_unique(tuple(require_day_of_month(d, "on_days") for d in self.days))
        object.__setattr__(self, "days", days)
        months = _sorted_unique(tuple(require_month(m, "on_months") for m in self.months))
        object.__setattr__(self, "months", months)
        if self.first_weekday is not None:
            require_weekday(self.first_weekday, f"on_first({self.first_weekday!r})")
        self._check_shape()

    def _check_shape(self) -> None:
        unit = self.unit
        sub_daily = unit in (Unit.SECOND, Unit.MINUTE, Unit.HOUR)
        if self.second is not None and unit not in (Unit.MINUTE, Unit.HOUR):
            fail(f"at_second applies to minute and hour recurrences, not to every {unit.value}.")
        if self.minute is not None and unit is not Unit.HOUR:
            fail(f"at_minute applies to hour recurrences, not to every {unit.value}.")
        if sub_daily and self.times:
            fail(
                f"at_time/at_times apply to day, week and month recurrences, not to {unit.value}s."
            )
        if self.weekdays and unit not in (Unit.DAY, Unit.WEEK):
            fail(f"weekdays (on_days) apply to day and week recurrences, not to {unit.value}s.")
        if self.weekdays and unit is Unit.DAY and self.interval != 1:
            fail("on_days(weekdays) runs every week; it cannot be combined with every(n).days().")
        if (self.days or self.first_weekday is not None or self.months) and unit is not Unit.MONTH:
            fail(f"on_day/on_first/on_months apply to month recurrences, not to {unit.value}s.")
        if self.days and self.first_weekday is not None:
            fail("on_day(s) and on_first cannot be combined; pick one day rule per schedule.")
        if self.months and self.interval != 1:
            fail("on_months(...) runs every year; it cannot be combined with every(n).months().")

    @property
    def is_elapsed(self) -> bool:
        """Seconds and minutes are elapsed-time cadences; hours and coarser are wall-clock."""
        return self.unit in (Unit.SECOND, Unit.MINUTE)


@dataclass(frozen=True, slots=True)
class CronRecurrence:
    """A cron expression: 5 fields, 6 fields with seconds first, or an ``@daily``-style macro."""

    expression: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "expression", normalize_cron(self.expression))


Recurrence = EveryRecurrence | CronRecurrence
"""Either kind of recurrence."""
