"""Bounded searches over a recurrence: latest occurrence at or before an instant, and counting.

Uniform grids (``base + k * step``) are answered in O(1); every other recurrence is searched
with a window that doubles until it holds an occurrence, then walked forward a bounded
number of steps. Nothing here can loop forever.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

__all__ = ["COUNT_LIMIT", "Evaluator", "count_between", "latest_at_or_before", "safe_next"]

COUNT_LIMIT = 1_000
"""Occurrences walked one by one when counting; beyond that the count is extrapolated."""

_WALK_LIMIT = 100_000
_MAX_SPAN = timedelta(days=366 * 400)


class Evaluator(Protocol):
    """The occurrence math of one recurrence in one zone."""

    def next_after(self, after: datetime) -> datetime | None:
        """First occurrence strictly after ``after`` (aware UTC)."""
        ...

    def grid(self) -> tuple[datetime, timedelta] | None:
        """``(base, step)`` if occurrences are exactly ``base + k * step``."""
        ...

    def period_hint(self) -> timedelta:
        """A span likely to contain an occurrence (a starting window size)."""
        ...


def safe_next(evaluator: Evaluator, after: datetime) -> datetime | None:
    """:meth:`Evaluator.next_after`, with None at the end of the representable range."""
    try:
        return evaluator.next_after(after)
    except (OverflowError, ValueError):
        return None


def latest_at_or_before(evaluator: Evaluator, moment: datetime) -> datetime | None:
    """The latest occurrence ``<= moment``, or None if none is found within 400 years."""
    grid = evaluator.grid()
    if grid is not None:
        base, step = grid
        try:
            return base + ((moment - base) // step) * step
        except OverflowError:
            return None
    span = evaluator.period_hint()
    while span <= _MAX_SPAN:
        try:
            found = safe_next(evaluator, moment - span)
        except OverflowError:
            return None
        if found is not None and found <= moment:
            for _ in range(_WALK_LIMIT):
                following = safe_next(evaluator, found)
                if following is None or following > moment:
                    return found
                found = following
            return found
        span *= 2
    return None


def count_between(evaluator: Evaluator, first: datetime, end: datetime) -> int:
    """How many occurrences lie in ``[first, end)``, where ``first`` is an occurrence.

    Exact for uniform grids and up to :data:`COUNT_LIMIT`; extrapolated from the average
    spacing beyond that (the figure is only reported, e.g. as "skipped occurrences").
    """
    if end <= first:
        return 0
    grid = evaluator.grid()
    if grid is not None:
        step = grid[1]
        return -((first - end) // step)
    count = 0
    current: datetime | None = first
    while current is not None and current < end:
        count += 1
        if count >= COUNT_LIMIT:
            average = (current - first) / (count - 1)
            return count + int((end - current) / average) if average else count
        current = safe_next(evaluator, current)
    return count
