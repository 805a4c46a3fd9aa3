"""Occurrence math of fluent ``every(n)`` recurrences.

Two families:

* **Elapsed cadences** (``every(n).seconds()`` / ``.minutes()``): instants ``base + k * step``,
  where ``base`` is the grid anchor (snapped to ``at_second``). Time zones and DST do not
  matter: the spacing is always exactly ``step``.
* **Wall-clock calendars** (hours, days, weeks, months): a stream of naive local times in
  ascending order, each mapped to instants with the DST rules of :func:`to_instant`. Near a
  UTC-offset change the mapped instants can come out of order, so the answer is recomputed
  exactly over a window around the transition.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, tzinfo

from .calendar_math import (
    TRANSITION_RADIUS,
    ceil_div,
    ceil_div_delta,
    days_in_month,
    first_weekday_of_month,
    instants_of,
    is_fixed_zone,
    month_index,
    month_of_index,
    near_transition,
    to_instant,
    wall,
    week_start,
)
from .model import EveryRecurrence, Unit

__all__ = ["FluentEvaluator"]

_STEP_LIMIT = 100_000
_UNIT_STEP = {
    Unit.SECOND: timedelta(seconds=1),
    Unit.MINUTE: timedelta(minutes=1),
    Unit.HOUR: timedelta(hours=1),
    Unit.DAY: timedelta(days=1),
    Unit.WEEK: timedelta(weeks=1),
}


class FluentEvaluator:
    """Next occurrence of one :class:`EveryRecurrence` in one zone, around one anchor."""

    __slots__ = (
        "_anchor_date",
        "_anchor_month",
        "_anchor_week",
        "_base",
        "_both_passes",
        "_default_day",
        "_fixed",
        "_hour_base",
        "_spec",
        "_step",
        "_times",
        "_weekdays",
        "_zone",
    )

    def __init__(self, spec: EveryRecurrence, zone: tzinfo, anchor: datetime) -> None:
        self._spec = spec
        self._zone = zone
        self._fixed = is_fixed_zone(zone)
        # Hourly cadences keep firing through a repeated (fall-back) hour, like cron's `m * * * *`.
        self._both_passes = spec.unit is Unit.HOUR and spec.interval == 1
        self._step = _UNIT_STEP.get(spec.unit, timedelta(0)) * spec.interval
        self._base = anchor
        if spec.unit is Unit.MINUTE and spec.second is not None:
            self._base = anchor.replace(second=spec.second, microsecond=0)
        local = wall(anchor, zone)
        self._anchor_date = local.date()
        self._anchor_week = week_start(local.date())
        self._anchor_month = month_index(local.year, local.month)
        self._default_day = local.day
        self._times: tuple[time, ...] = spec.times or (local.time(),)
        self._weekdays: tuple[int, ...] = spec.weekdays
        if spec.unit is Unit.WEEK and not spec.weekdays:
            self._weekdays = (local.weekday(),)
        if spec.minute is not None or spec.second is not None:
            minute = spec.minute if spec.minute is not None else local.minute
            offset = timedelta(minutes=minute, seconds=spec.second or 0)
        else:
            offset = timedelta(
                minutes=local.minute, seconds=local.second, microseconds=local.microsecond
            )
        self._hour_base = local.replace(minute=0, second=0, microsecond=0) + offset

    # -- public ------------------------------------------------------------------------------

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after the aware UTC instant ``after``."""
        if self._spec.is_elapsed:
            k = (after - self._base) // self._step + 1
            return self._base + k * self._step
        start = wall(after, self._zone)
        best = self._first_after(start, after)
        if not self._fixed and (
            near_transition(after, self._zone) or near_transition(best, self._zone)
        ):
            best = self._exact_after(start, after, best)
        return best

    def grid(self) -> tuple[datetime, timedelta] | None:
        """``(base, step)`` when the occurrences are exactly ``base + k * step``, else None."""
        spec = self._spec
        if spec.is_elapsed:
            return self._base, self._step
        if not self._fixed:
            return None
        uniform = (
            spec.unit is Unit.HOUR
            or (spec.unit is Unit.DAY and not spec.weekdays and len(self._times) == 1)
            or (spec.unit is Unit.WEEK and len(self._weekdays) == 1 and len(self._times) == 1)
        )
        if not uniform:
            return None
        first = next(self._candidates(datetime(2001, 1, 1)))
        return to_instant(first, self._zone), self._step

    def period_hint(self) -> timedelta:
        """A span that always contains at least one occurrence (plus DST slack)."""
        spec = self._spec
        if spec.unit is Unit.MONTH:
            span = timedelta(days=366) if spec.months else timedelta(days=31 * spec.interval)
        elif spec.unit is Unit.DAY and spec.weekdays:
            span = timedelta(weeks=1)
        else:
            span = self._step
        return span if spec.is_elapsed else span + TRANSITION_RADIUS

    # -- wall-clock search --------------------------------------------------------------------

    def _first_after(self, start: datetime, after: datetime) -> datetime:
        for steps, local in enumerate(self._candidates(start)):
            for instant in instants_of(local, self._zone, self._both_passes):
                if instant > after:
                    return instant
            if steps > _STEP_LIMIT:
                break
        raise RuntimeError("fluent schedule search did not converge")  # pragma: no cover

    def _exact_after(self, start: datetime, after: datetime, best: datetime) -> datetime:
        """Minimum over every candidate near a DST change (instants may be out of order)."""
        horizon = wall(best, self._zone) + TRANSITION_RADIUS
        for steps, local in enumerate(self._candidates(start - TRANSITION_RADIUS)):
            if local > horizon or steps > _STEP_LIMIT:
                break
            for instant in instants_of(local, self._zone, self._both_passes):
                if after < instant < best:
                    best = instant
                    horizon = wall(best, self._zone) + TRANSITION_RADIUS
        return best

    def _candidates(self, start: datetime) -> Iterator[datetime]:
        """Matching naive wall-clock times ``>= start``, ascending, without duplicates."""
        if self._spec.unit is Unit.HOUR:
            k = ceil_div_delta(start - self._hour_base, self._step)
            current = self._hour_base + k * self._step
            while True:
                yield current
                current += self._step
        day0 = start.date()
        for day in self._dates(day0):
            for at in self._times:
                local = datetime.combine(day, at)
                if local >= start:
                    yield local

    def _dates(self, day0: date) -> Iterator[date]:
        unit = self._spec.unit
        if unit is Unit.DAY:
            return self._day_dates(day0)
        if unit is Unit.WEEK:
            return self._week_dates(day0)
        return self._month_dates(day0)

    def _day_dates(self, day0: date) -> Iterator[date]:
        n = self._spec.interval
        one = timedelta(days=1)
        day = self._anchor_date + timedelta(days=n * ceil_div((day0 - self._anchor_date).days, n))
        while True:
            if not self._weekdays or day.weekday() in self._weekdays:
                yield day
                day += n * one
            else:
                day += one

    def _week_dates(self, day0: date) -> Iterator[date]:
        n = self._spec.interval
        weeks = ceil_div((week_start(day0) - self._anchor_week).days // 7, n) * n
        monday = self._anchor_week + timedelta(weeks=weeks)
        while True:
            for weekday in self._weekdays:
                day = monday + timedelta(days=weekday)
                if day >= day0:
                    yield day
            monday += timedelta(weeks=n)

    def _month_dates(self, day0: date) -> Iterator[date]:
        spec = self._spec
        index = month_index(day0.year, day0.month)
        if spec.months:
            step = 1
        else:
            step = spec.interval
            index = self._anchor_month + ceil_div(index - self._anchor_month, step) * step
        while True:
            year, month = month_of_index(index)
            if not spec.months or month in spec.months:
                for day in self._month_days(year, month):
                    if day >= day0:
                        yield day
            index += step

    def _month_days(self, year: int, month: int) -> list[date]:
        spec = self._spec
        if spec.first_weekday is not None:
            return [first_weekday_of_month(year, month, spec.first_weekday)]
        last = days_in_month(year, month)
        wanted = spec.days or (self._default_day,)
        return [date(year, month, d) for d in sorted({min(d, last) for d in wanted})]
