"""The engine: the components of one host and the state they share."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import Enum
from typing import Any, ParamSpec, Protocol

from .clock import Clock
from .events import EventBus
from .observe import TaskObserver
from .options import EverTaskOptions
from .queues import QueueManager, WorkerQueue
from .registry import HandlerRegistry
from .run import TaskRun
from .scheduler import ShardedTimerScheduler, TimerScheduler
from .storage.protocol import PipelinedStorage, TaskStorage

__all__ = ["Engine", "HostState", "LogCapture"]

log = logging.getLogger("evertask.engine")

P = ParamSpec("P")

_CANCELLED_TTL = 3600.0
_RETRY_DELAY = timedelta(seconds=2)
CLAIM_LEAD = timedelta(milliseconds=20)
"""How long before its time a persisted delayed run is claimed (marked Queued) on storages
whose commits take a round trip; it still starts at its time."""


class HostState(str, Enum):
    """Lifecycle of a host."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class CaptureSession(Protocol):
    """The log records of one execution (see evertask.logcapture)."""

    def finish(self) -> list[Any] | None:
        """Stop capturing; return the records to persist."""
        ...


class LogCapture(Protocol):
    """Per-execution log capture plug-in."""

    def begin(self, run: TaskRun, handler: Any) -> CaptureSession:
        """Start capturing for one execution."""
        ...


class CancelRegistry:
    """How many times each task id was cancelled in this process (entries expire after an hour).

    A run remembers the count of its id when it is created; a run created before the latest
    cancel of its id is stale and is dropped wherever it is met (queue, timer, completion,
    next recurring occurrence). A revived or re-registered series simply gets fresh runs.
    """

    def __init__(self) -> None:
        self.counts: dict[uuid.UUID, int] = {}  # read-only outside; empty: nothing cancelled
        self._last: dict[uuid.UUID, float] = {}
        self._order: collections.deque[tuple[float, uuid.UUID]] = collections.deque()

    def cancel(self, task_id: uuid.UUID) -> None:
        """Count a cancel of ``task_id``: every existing run of it becomes stale."""
        now = time.monotonic()
        order, last = self._order, self._last
        while order and now - order[0][0] > _CANCELLED_TTL:
            stamp, old = order.popleft()
            if last.get(old) == stamp:
                del last[old], self.counts[old]
        self.counts[task_id] = self.counts.get(task_id, 0) + 1
        last[task_id] = now
        order.append((now, task_id))

    def generation(self, task_id: uuid.UUID) -> int:
        """The cancel count a new run of ``task_id`` starts from."""
        return self.counts.get(task_id, 0) if self.counts else 0

    def is_stale(self, run: TaskRun) -> bool:
        """Whether ``run`` was created before the latest cancel of its id."""
        return bool(self.counts) and self.counts.get(run.id, 0) != run.generation


class Engine:
    """Everything one host runs: registry, storage, queues, scheduler, executor, events."""

    def __init__(
        self,
        options: EverTaskOptions,
        registry: HandlerRegistry,
        queues: QueueManager,
        storage: TaskStorage | None,
    ) -> None:
        from .executor import WorkerExecutor
        from .recurring import RecurringCoordinator

        self.options = options
        self.registry = registry
        self.queues = queues
        self.storage = storage
        self.clock: Clock = options.clock
        self.events = EventBus(options.event_buffer_size)
        self.in_flight: set[int] = set()  # ids (as ints) queued or running here
        self.cancels = CancelRegistry()
        self.follow_ups: dict[uuid.UUID, Callable[[], None]] = {}
        self.state = HostState.CREATED
        self.log_capture: LogCapture | None = None
        self.observers: list[TaskObserver] = []
        # also publish a "dispatched" event per dispatch (live dashboards turn this on)
        self.dispatch_events = False
        # use_sharded_scheduler() is an alias of the default: on one event loop several heaps
        # measured no faster (docs/scheduler.md); ShardedTimerScheduler stays for measuring
        # a storage whose commits take a round trip: the executor overlaps InProgress with
        # the handler, and a persisted delayed run's WaitingQueue -> Queued compare-and-set
        # is done ahead of its time (CLAIM_LEAD)
        self.pipelined = storage if isinstance(storage, PipelinedStorage) else None
        self.claim_lead = CLAIM_LEAD if self.pipelined is not None else timedelta(0)
        self.scheduler: TimerScheduler | ShardedTimerScheduler = TimerScheduler(
            self.clock, self._on_due, self.claim_lead
        )
        self.executor = WorkerExecutor(self)
        self.recurring = RecurringCoordinator(self)
        self._background: set[asyncio.Task[Any]] = set()

    # -- storage writes --------------------------------------------------------------------
    async def write(
        self, fn: Callable[P, Awaitable[Any]], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """A status write: retried with backoff and logged on failure, never raised.

        A row whose write keeps failing stays recoverable and runs again after a restart
        (at-least-once); it is never marked Failed because the database was away.
        """
        try:
            await fn(*args, **kwargs)
            return
        except Exception as exc:
            error: Exception = exc
        delay = 0.05
        for attempt in range(1, 8):
            log.warning(
                "Storage write %s failed (attempt %d): %r; retrying in %.2f s.",
                getattr(fn, "__name__", fn),
                attempt,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                await fn(*args, **kwargs)
                return
            except Exception as exc:
                error = exc
        log.error(
            "Storage write %s failed permanently: %r. The task row keeps its previous "
            "status and is recovered at the next start.",
            getattr(fn, "__name__", fn),
            error,
        )

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run a background coroutine owned by the engine (kept referenced until done)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Background work failed: %r", task.exception(), exc_info=task.exception())

    async def drain_background(self) -> None:
        """Wait for (then cancel) background work at shutdown."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=1.0)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- enqueueing ------------------------------------------------------------------------
    def queue_for(self, run: TaskRun) -> WorkerQueue:
        """The queue a run executes on."""
        return self.queues.queues.get(run.queue_name) or self.queues.default

    def _on_due(self, runs: list[TaskRun]) -> None:
        self.spawn(self.enqueue_due(runs))

    async def enqueue_due(self, runs: list[TaskRun]) -> None:
        """Move timer-fired (or recovered) runs into their queues, each through the
        compare-and-set that never revives a finished or cancelled row."""
        if self.state is not HostState.RUNNING:
            return  # rows stay WaitingQueue and resume at the next start
        storage = self.storage
        if storage is None or len(runs) == 1:
            for run in runs:
                await self._enqueue_one(run)
            return
        sem = asyncio.Semaphore(256)

        async def one(run: TaskRun) -> None:
            async with sem:
                await self._enqueue_one(run)

        await asyncio.gather(*(one(r) for r in runs))

    async def _enqueue_one(self, run: TaskRun) -> None:
        tid = run.id
        if self.cancels.is_stale(run):
            return
        if tid.int in self.in_flight:
            # the previous delivery of this id is still running: follow it
            self.follow_ups[tid] = lambda: self.spawn(self._enqueue_one(run))
            return
        if run.persisted and self.storage is not None:
            try:
                ok = await self.storage.try_set_queued_if_recoverable(tid, run.audit_level)
            except Exception as exc:
                log.warning("Could not mark task %s Queued (%r); retrying in 2 s.", tid, exc)
                self.scheduler.schedule(run, self.clock.now() + _RETRY_DELAY)
                return
            if not ok:
                return
            if (
                tid.int in self.in_flight
                or self.cancels.is_stale(run)
                or self.state is not HostState.RUNNING
            ):
                return
        self.in_flight.add(tid.int)
        due = run.due_at
        if due is not None and self.claim_lead and due > self.clock.now():
            # handed over ahead of time (claimed): it starts at its time, not before
            self.clock.call_at(due, lambda: self._release_claimed(run))
            return
        self._put(run)

    def _release_claimed(self, run: TaskRun) -> None:
        if self.state is not HostState.RUNNING or self.cancels.is_stale(run):
            # its row is Queued: it resumes at the next start, or a cancel wrote its status
            self.in_flight.discard(run.id.int)
            return
        self._put(run)

    def _put(self, run: TaskRun) -> None:
        self.queue_for(run).put_overflow(run)
