"""Bounded worker queues with slot reservations, overflow for timers, and pausing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from evertask_abstractions import QueueFullBehavior

from .options import DEFAULT_QUEUE, RECURRING_QUEUE, QueueConfiguration
from .run import TaskRun

__all__ = ["QueueClosedError", "QueueManager", "Starter", "WorkerQueue"]

log = logging.getLogger("evertask.queues")


class QueueClosedError(Exception):
    """The queue was closed (the host is stopping)."""


Starter = Callable[["WorkerQueue", TaskRun], None]


class WorkerQueue:
    """A bounded FIFO of task runs executed at most ``max_degree_of_parallelism`` at a time.

    Dispatchers reserve a slot before they persist (so a persisted immediate task is never
    refused afterwards), then put into the reserved slot. Timer-fired and recovered runs
    may use :meth:`put_overflow`, which never blocks the scheduler.

    There are no consumer tasks: a put starts the run at once while fewer than the
    queue's parallelism run (``active``), and a finishing run takes the next one
    (:meth:`next_run`), so a run costs one asyncio task and no consumer wake-up.
    """

    def __init__(self, config: QueueConfiguration) -> None:
        self.config = config
        self.name = config.name
        self.capacity = config.channel_capacity
        self.parallelism = config.max_degree_of_parallelism
        self.active = 0  # runs started here and not yet finished
        self._items: deque[TaskRun] = deque()
        self._reserved = 0
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._paused = False  # starts nothing: paused by an operator, or held
        self._operator_paused = False
        self._held = False
        self._throttled = False  # adaptive throttling: the process is overloaded
        self._start: Starter | None = None  # the executor's, between start and close

    # -- state -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    @property
    def reserved(self) -> int:
        """Slots reserved by dispatches that are still persisting."""
        return self._reserved

    @property
    def is_full(self) -> bool:
        """No free slot for a new dispatch."""
        return len(self._items) + self._reserved >= self.capacity

    @property
    def starting(self) -> bool:
        """Whether runs start here now (attached, not closed, not paused nor held)."""
        return self._start is not None and not self._paused

    @property
    def paused(self) -> bool:
        """Paused by an operator: the queue accepts tasks but starts none."""
        return self._operator_paused

    def pause(self) -> None:
        """Stop starting runs (runs in progress finish)."""
        self._operator_paused = True
        self._update_paused()

    def resume(self) -> None:
        """Start runs again (unless held)."""
        self._operator_paused = False
        self._update_paused()

    def hold(self) -> None:
        """Start nothing for now, whatever the operator's pause (the host's lease is in
        doubt: see :class:`~evertask.cluster.Membership`)."""
        self._held = True
        self._update_paused()

    def release_hold(self) -> None:
        """Undo :meth:`hold`."""
        self._held = False
        self._update_paused()

    def throttle(self, on: bool) -> None:
        """Start nothing while ``on`` (adaptive throttling: see :mod:`evertask.adaptive`)."""
        self._throttled = on
        self._update_paused()

    def _update_paused(self) -> None:
        """The one place ``_paused`` (what the lanes check) is derived; runs start if free."""
        self._paused = self._operator_paused or self._held or self._throttled
        self._fill()

    def take_waiting(self) -> list[TaskRun]:
        """Remove and return the runs waiting to start (the queue stays open)."""
        left = list(self._items)
        self._items.clear()
        while self._putters and not self.is_full:
            self._wake(self._putters)
        return left

    def attach(self, start: Starter) -> None:
        """Start runs through ``start(queue, run)`` (the executor), beginning with those
        already waiting."""
        self._start = start
        self._fill()

    # -- producers -------------------------------------------------------------------------
    def try_reserve(self) -> bool:
        """Reserve a slot without waiting."""
        # `is_full` written in place: every immediate dispatch calls this
        if self._closed or len(self._items) + self._reserved >= self.capacity or self._putters:
            return False
        self._reserved += 1
        return True

    async def reserve(self) -> None:
        """Wait for a free slot and reserve it (FIFO among waiting dispatchers)."""
        while not self.try_reserve_waiting():
            if self._closed:
                raise QueueClosedError(self.name)
            fut = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            try:
                await fut
            except BaseException:
                fut.cancel()
                if fut in self._putters:
                    self._putters.remove(fut)
                elif not self.is_full:
                    self._wake(self._putters)
                raise

    def try_reserve_waiting(self) -> bool:
        """Reserve a slot for a waiter that is (or will be) first in line."""
        if self._closed or self.is_full:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a reserved slot that will not be used."""
        self._reserved -= 1
        self._wake(self._putters)

    def put_reserved(self, run: TaskRun) -> None:
        """Place a run into a previously reserved slot; it starts now if a lane is free.
        Stamps ``run.enqueued_at``."""
        self._reserved -= 1
        run.enqueued_at = time.perf_counter()
        start = self._start
        if start is not None and self.active < self.parallelism and not self._paused:
            self.active += 1  # nothing waits when a lane is free: no FIFO to respect
            start(self, run)
        else:
            self._items.append(run)

    def put_overflow(self, run: TaskRun) -> None:
        """Append a run regardless of capacity (timer-fired runs never block the scheduler);
        it starts now if a lane is free. Stamps ``run.enqueued_at``."""
        self._reserved += 1  # a slot beyond capacity, filled at once
        self.put_reserved(run)

    # -- execution lanes -------------------------------------------------------------------
    def next_run(self) -> TaskRun | None:
        """For a lane whose run finished: the next run to start, or ``None`` (the lane ends:
        nothing waits, the queue is paused, or it is closed)."""
        if self._items and not self._paused and self._start is not None:
            return self._take()
        self.active -= 1
        return None

    def _fill(self) -> None:
        """Start waiting runs while a lane is free (after attach and resume)."""
        start = self._start
        while (
            start is not None
            and self._items
            and not self._paused
            and self.active < self.parallelism
        ):
            self.active += 1
            start(self, self._take())

    def _take(self) -> TaskRun:
        """The first waiting run; its slot goes to the first waiting dispatcher."""
        run = self._items.popleft()
        if self._putters:
            self._wake(self._putters)
        return run

    def close(self) -> list[TaskRun]:
        """Start no more runs; wake every waiting dispatcher; return the runs left waiting."""
        self._closed = True
        self._start = None
        left = list(self._items)
        self._items.clear()
        while self._putters:
            self._wake(self._putters)
        return left

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return


class QueueManager:
    """All queues of a host and the routing rules between them."""

    def __init__(self, configs: dict[str, QueueConfiguration]) -> None:
        self.queues: dict[str, WorkerQueue] = {name: WorkerQueue(c) for name, c in configs.items()}
        self.default = self.queues[DEFAULT_QUEUE]
        self._warned: set[str] = set()

    def resolve(self, name: str | None, recurring: bool) -> WorkerQueue:
        """The queue for a declared name; unknown names fall back to "default" with a warning."""
        if name is None:
            name = RECURRING_QUEUE if recurring else DEFAULT_QUEUE
        queue = self.queues.get(name)
        if queue is not None:
            return queue
        if name not in self._warned:
            self._warned.add(name)
            log.warning(
                "Queue %r is not configured; its tasks run on the 'default' queue. "
                "Add it with .add_queue(%r, ...) to isolate them.",
                name,
                name,
            )
        return self.default

    def for_run(self, run: TaskRun) -> WorkerQueue:
        """The queue a run executes on (its queue name was resolved when it was made)."""
        queue = self.queues.get(run.queue_name)
        return self.default if queue is None else queue

    async def reserve_for_dispatch(self, queue: WorkerQueue) -> WorkerQueue | None:
        """Reserve a slot following the queue's full behaviour.

        Returns the queue holding the reservation, or ``None`` for THROW_EXCEPTION when full.
        WAIT (and FALLBACK when "default" is full too) waits for space.
        """
        if queue.try_reserve():
            return queue
        behavior = queue.config.queue_full_behavior
        if behavior is QueueFullBehavior.THROW_EXCEPTION:
            return None
        if behavior is QueueFullBehavior.FALLBACK_TO_DEFAULT and queue is not self.default:
            log.warning("Queue %r is full; the task falls back to the 'default' queue.", queue.name)
            queue = self.default
            if queue.try_reserve():
                return queue
        await queue.reserve()
        return queue

    def close(self) -> list[TaskRun]:
        """Close every queue; return the runs that were still waiting."""
        left: list[TaskRun] = []
        for queue in self.queues.values():
            left.extend(queue.close())
        return left
