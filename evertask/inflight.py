"""What this process is delivering now: ids queued or running, their executions, the
deliveries waiting for them, and the cancels that make older deliveries stale."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Protocol

from .run import TaskRun

__all__ = ["CancelReason", "CancelRegistry", "InFlight", "RunningExecution"]

_CANCELLED_TTL = 3600.0


class CancelReason(str, Enum):
    """Why a running execution was cancelled."""

    USER = "user"
    SHUTDOWN = "shutdown"


class RunningExecution(Protocol):
    """A delivery being executed (the executor's ``Execution``)."""

    @property
    def run(self) -> TaskRun:
        """The run being executed."""
        ...

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The asyncio task executing it."""
        ...

    def cancel(self, reason: CancelReason) -> None:
        """Cancel the handler."""
        ...


class InFlight:
    """One delivery of an id at a time per process.

    An id enters when a run of it is handed to a queue and leaves when that run ends.
    A delivery of an id that is still in flight waits as a follow-up, started when the
    running one ends. The executor registers the executions it runs here, so a cancel,
    or a re-registered recurring series, can reach them.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._claimed: set[int] = set()  # the ids among them a cluster claim took
        self._follow_ups: dict[uuid.UUID, Callable[[], None]] = {}
        self.running: dict[int, RunningExecution] = {}  # by task id int; the executor writes it
        self.listener: Callable[[], None] | None = None
        """Called when an id leaves (the host's activity: see evertask.activity)."""

    def __contains__(self, task_id: uuid.UUID) -> bool:
        return task_id.int in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def claimed(self) -> int:
        """How many of the ids in flight here a cluster claim took (see
        :meth:`mark_claimed`)."""
        return len(self._claimed)

    def mark_claimed(self, task_ids: Iterable[uuid.UUID]) -> None:
        """Count these ids, those in flight here, as claimed until their runs end."""
        self._claimed |= {t.int for t in task_ids} & self._ids

    def id_chunks(self, size: int) -> Iterator[list[uuid.UUID]]:
        """The ids queued or running here now (a snapshot), ``size`` at a time: each chunk
        is built as it is taken, so a caller awaiting between chunks never holds the loop
        for all of them."""
        snapshot = list(self._ids)
        for start in range(0, len(snapshot), size):
            yield [uuid.UUID(int=i) for i in snapshot[start : start + size]]

    def add(self, task_id: uuid.UUID) -> None:
        """A run of ``task_id`` was handed to a queue."""
        self._ids.add(task_id.int)

    def discard(self, task_id: uuid.UUID) -> None:
        """The run of ``task_id`` ended (or will not run here)."""
        self._ids.discard(task_id.int)
        self._claimed.discard(task_id.int)
        if self.listener is not None:
            self.listener()

    def follow(self, task_id: uuid.UUID, start: Callable[[], None]) -> None:
        """Call ``start`` once the delivery of ``task_id`` in flight ends (latest wins)."""
        self._follow_ups[task_id] = start

    def drop_follow_up(self, task_id: uuid.UUID) -> None:
        """Forget the delivery waiting for ``task_id`` (it was cancelled)."""
        self._follow_ups.pop(task_id, None)

    def finished(self, task_id: uuid.UUID) -> None:
        """The run of ``task_id`` ended (its follow-up is started by :meth:`start_follow_up`)."""
        self._ids.discard(task_id.int)
        self._claimed.discard(task_id.int)
        self.running.pop(task_id.int, None)
        if self.listener is not None:
            self.listener()

    def start_follow_up(self, task_id: uuid.UUID) -> None:
        """Start the delivery that waited for ``task_id``, if any."""
        if self._follow_ups:
            start = self._follow_ups.pop(task_id, None)
            if start is not None:
                start()

    def execution(self, task_id: uuid.UUID) -> RunningExecution | None:
        """The running execution of ``task_id`` in this process, if any."""
        return self.running.get(task_id.int)

    def clear(self) -> None:
        """Forget everything (the host stopped)."""
        self._ids.clear()
        self._claimed.clear()
        self._follow_ups.clear()
        self.running.clear()
        if self.listener is not None:
            self.listener()


class CancelRegistry:
    """How many times each task id was cancelled in this process (entries expire after an hour).

    A run remembers the count of its id when it is created; a run created before the latest
    cancel of its id is stale and is dropped wherever it is met (queue, timer, completion,
    next recurring occurrence). A revived or re-registered series simply gets fresh runs.
    """

    def __init__(self) -> None:
        self._counts: dict[uuid.UUID, int] = {}
        self._last: dict[uuid.UUID, float] = {}
        self._order: collections.deque[tuple[float, uuid.UUID]] = collections.deque()

    def cancel(self, task_id: uuid.UUID) -> None:
        """Count a cancel of ``task_id``: every existing run of it becomes stale."""
        now = time.monotonic()
        order, last = self._order, self._last
        while order and now - order[0][0] > _CANCELLED_TTL:
            stamp, old = order.popleft()
            if last.get(old) == stamp:
                del last[old], self._counts[old]
        self._counts[task_id] = self._counts.get(task_id, 0) + 1
        last[task_id] = now
        order.append((now, task_id))

    def generation(self, task_id: uuid.UUID) -> int:
        """The cancel count a new run of ``task_id`` starts from."""
        return self._counts.get(task_id, 0)

    def is_stale(self, run: TaskRun) -> bool:
        """Whether ``run`` was created before the latest cancel of its id."""
        return bool(self._counts) and self._counts.get(run.id, 0) != run.generation
