"""The timer scheduler: one heap, one timer for the earliest entry, latest-wins per task id.

It sleeps until exactly the earliest due time (less an optional lead) and never wakes
otherwise (zero CPU while idle). Replacing an id's entry leaves a stale heap entry that is
skipped when popped; the heap is compacted when stale entries outnumber live ones.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from .clock import Clock, TimerHandle
from .run import TaskRun

__all__ = ["TimerScheduler"]

_TOLERANCE = timedelta(milliseconds=1)

Entry = tuple[datetime, int, TaskRun]


class TimerScheduler:
    """Holds future runs and hands due ones to ``on_due`` (called on the event loop).

    With a ``lead``, runs are handed over that much before their time (each with its time
    in ``run.due_at``), so a caller that must commit something first can be done by then.
    """

    def __init__(
        self,
        clock: Clock,
        on_due: Callable[[list[TaskRun]], None],
        lead: timedelta = timedelta(0),
    ) -> None:
        if lead < timedelta(0):
            raise ValueError("lead must not be negative.")
        self._clock = clock
        self._on_due = on_due
        self._lead = lead
        self._heap: list[Entry] = []
        self._current: dict[uuid.UUID, Entry] = {}
        self._seq = itertools.count()
        self._timer: TimerHandle | None = None
        self._timer_when: datetime | None = None
        self._running = False

    def __len__(self) -> int:
        return len(self._current)

    def start(self) -> None:
        """Start firing (entries added before start fire once started)."""
        self._running = True
        self._arm()

    def stop(self) -> list[TaskRun]:
        """Stop firing; return the runs that were still scheduled."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_when = None
        left = [entry[2] for entry in self._current.values()]
        self._current.clear()
        self._heap.clear()
        return left

    def schedule(self, run: TaskRun, when: datetime) -> None:
        """Fire ``run`` at ``when``; replaces any earlier entry of the same id (latest wins)."""
        entry = (when, next(self._seq), run)
        if (
            self._current.get(run.id) is not None
            and len(self._heap) > 2 * len(self._current) + 1024
        ):
            self._compact()
        self._current[run.id] = entry
        heapq.heappush(self._heap, entry)
        if self._running and (self._timer_when is None or when < self._timer_when):
            self._arm()

    def unschedule(self, task_id: uuid.UUID) -> bool:
        """Forget an id's entry; returns whether one was pending."""
        return self._current.pop(task_id, None) is not None

    def is_scheduled(self, task_id: uuid.UUID) -> bool:
        """Whether an entry for ``task_id`` is pending."""
        return task_id in self._current

    def next_due(self) -> datetime | None:
        """When the earliest live entry is due."""
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def _compact(self) -> None:
        self._heap = list(self._current.values())
        heapq.heapify(self._heap)

    def _drop_stale_head(self) -> None:
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][2].id) is not heap[0]:
            heapq.heappop(heap)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = None
        if not self._running:
            return
        self._drop_stale_head()
        if self._heap:
            when = self._heap[0][0]
            self._timer_when = when
            self._timer = self._clock.call_at(when - self._lead, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_when = None
        limit = self._clock.now() + self._lead + _TOLERANCE
        heap, current = self._heap, self._current
        due: list[TaskRun] = []
        while heap and heap[0][0] <= limit:
            entry = heapq.heappop(heap)
            run = entry[2]
            if current.get(run.id) is entry:
                del current[run.id]
                run.due_at = entry[0]
                due.append(run)
        self._arm()
        if due:
            self._on_due(due)
