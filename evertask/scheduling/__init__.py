"""Recurring schedules: the fluent builder, the immutable schedule and its occurrence math.

>>> from datetime import UTC, datetime, time
>>> s = build_schedule(lambda b: b.schedule().every_day().at_times(time(9), time(14)))
>>> [d.hour for d in s.occurrences(datetime(2026, 1, 1, 10, tzinfo=UTC), 3)]
[14, 9, 14]

See ``docs/recurring.md`` for the grammar and the semantics.
"""

from __future__ import annotations

from .builder import RecurringTaskBuilder, build_schedule
from .model import CronRecurrence, EveryRecurrence, FirstRun, FirstRunKind, Recurrence, Unit
from .schedule import DEFAULT_ANCHOR, NextRun, RecurringSchedule
from .serialization import FORMAT_VERSION

__all__ = [
    "DEFAULT_ANCHOR",
    "FORMAT_VERSION",
    "CronRecurrence",
    "EveryRecurrence",
    "FirstRun",
    "FirstRunKind",
    "NextRun",
    "Recurrence",
    "RecurringSchedule",
    "RecurringTaskBuilder",
    "Unit",
    "build_schedule",
]
