"""What the text and JSON helpers need from a schedule, so they never import ``schedule.py``.

:class:`~evertask.scheduling.RecurringSchedule` satisfies both protocols; ``describe`` and
``serialization`` depend only on these and on :mod:`.model`, which keeps the module graph of
the package acyclic.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Protocol, TypeVar

from .model import FirstRun, Recurrence

__all__ = ["DescribableSchedule", "ScheduleDefinition", "ScheduleFactory"]

_T_co = TypeVar("_T_co", covariant=True)


class ScheduleDefinition(Protocol):
    """The persisted fields of a schedule (what its JSON holds)."""

    @property
    def recurrence(self) -> Recurrence | None: ...

    @property
    def start(self) -> FirstRun | None: ...

    @property
    def timezone(self) -> str: ...

    @property
    def run_until(self) -> datetime | None: ...

    @property
    def max_runs(self) -> int | None: ...


class DescribableSchedule(ScheduleDefinition, Protocol):
    """A definition plus the derived values its description shows (zone and grid anchor)."""

    @property
    def zone(self) -> tzinfo: ...

    @property
    def anchor(self) -> datetime: ...


class ScheduleFactory(Protocol[_T_co]):
    """Builds a schedule from parsed fields (``RecurringSchedule`` itself is one)."""

    def __call__(
        self,
        *,
        recurrence: Recurrence | None,
        start: FirstRun | None,
        timezone: str,
        run_until: datetime | None,
        max_runs: int | None,
    ) -> _T_co: ...
