"""Time sources: the system clock and a manual clock for tests (no sleeping for schedules)."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "TimerHandle", "utc_now"]


utc_now: Callable[[], datetime] = functools.partial(datetime.now, UTC)
"""The current aware UTC time (``datetime.now(UTC)``, bound in C: no Python frame)."""


class TimerHandle(Protocol):
    """A pending timer that can be cancelled."""

    def cancel(self) -> None:
        """Do not fire."""
        ...


class Clock(Protocol):
    """Wall-clock time plus one-shot timers, used by the scheduler and the schedule math."""

    def now(self) -> datetime:
        """The current aware UTC time."""
        ...

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` on the event loop at (or right after) ``when``."""
        ...


class SystemClock:
    """The real clock; timers are ``loop.call_later`` on the running loop (monotonic)."""

    now = staticmethod(utc_now)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        """Schedule ``callback`` with one loop timer."""
        loop = asyncio.get_running_loop()
        delay = (when - datetime.now(UTC)).total_seconds()
        return loop.call_later(delay if delay > 0 else 0, callback)


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: datetime, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when told to: ``advance()`` fires the timers that fall due."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError(
                "ManualClock needs an aware start time, e.g. datetime(..., tzinfo=UTC)."
            )
        self._now = start.astimezone(UTC)
        self._timers: list[tuple[datetime, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        """The clock's current time."""
        return self._now

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        """Register a timer that fires when the clock is advanced past ``when``."""
        timer = _ManualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    @property
    def pending_timers(self) -> int:
        """Timers not yet fired or cancelled."""
        return sum(1 for _, _, t in self._timers if not t.cancelled)

    def next_timer(self) -> datetime | None:
        """When the earliest pending timer is due (``None``: no timer is pending).

        A timer due at or before :meth:`now` fires at the next :meth:`advance` or
        :meth:`set` (``set(clock.now())`` fires it without moving time).
        """
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def advance(self, delta: timedelta | float) -> None:
        """Move time forward, firing due timers in time order."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        self.set(self._now + step)

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards), firing due timers in time order."""
        if when < self._now:
            raise ValueError("ManualClock cannot go backwards.")
        while self._timers and self._timers[0][0] <= when:
            due, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
        self._now = when
