"""The dispatcher: validates, persists, then schedules or enqueues."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from evertask_abstractions import (
    AuditLevel,
    BatchInfo,
    ConfigurationError,
    ContinueWhen,
    EverTask,
    HostNotRunningError,
    PersistenceError,
    QueuedTaskStatus,
    QueueFullError,
    ScheduleError,
    TaskKeyConflictError,
    TaskNotFoundError,
    When,
    Workflow,
)

from .clock import Clock
from .cluster import NOTICE_CANCEL, NOTICE_WORK, Node
from .events import EventBus, EventKind, TaskEvent
from .ids import uuid7
from .inflight import CancelReason, CancelRegistry, InFlight
from .intake import Intake
from .lifecycle import HostState, Lifecycle
from .observe import DispatchScope, TaskObserver
from .options import EverTaskOptions
from .queues import QueueManager, WorkerQueue
from .recurring import RecurringCoordinator
from .registry import HandlerDescriptor, HandlerRegistry, dump_task
from .run import TaskRun
from .scheduler import TimerScheduler
from .storage.models import QueuedTask
from .storage.protocol import BatchStore, TaskStorage
from .throttling import RateLimitGate
from .workflows import UnitBuilder

if TYPE_CHECKING:
    from .scheduling import RecurringSchedule

__all__ = ["Dispatcher"]

log = logging.getLogger("evertask.dispatcher")

_T = TypeVar("_T")

_MAX_KEY_LENGTH = 200
_RETRIED_FROM: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "evertask_retried_from", default=None
)
_SCOPES: contextvars.ContextVar[list[DispatchScope] | None] = contextvars.ContextVar(
    "evertask_dispatch_scopes", default=None
)


def _finish_scopes(scopes: list[DispatchScope], error: BaseException | None) -> None:
    for scope in scopes:
        try:
            scope.finish(error)
        except Exception:
            log.exception("A task observer failed in finish().")


_WHEN = {
    "immediate": "queued",
    "delayed": "scheduled",
    "scheduled": "scheduled",
    "recurring": "registered as recurring",
}


class _DispatchedEvent:
    """Publishes the ``dispatched`` event once the dispatch has committed (live dashboards
    see a task that waits, e.g. delayed or on a paused queue, before it runs)."""

    __slots__ = ("events", "kind", "now", "run")

    def __init__(self, events: EventBus, run: TaskRun, kind: str, now: datetime) -> None:
        self.events, self.run, self.kind, self.now = events, run, kind, now

    def finish(self, error: BaseException | None) -> None:
        events = self.events
        if error is not None or not events.has_subscribers:
            return
        run = self.run
        desc = run.descriptor
        when = f" for {run.execution_time.isoformat()}" if run.execution_time else ""
        events.publish(
            TaskEvent(
                task_id=run.id,
                timestamp=self.now,
                severity="Information",
                kind=EventKind.DISPATCHED,
                task_type=desc.task_type_name,
                handler_type=desc.handler_type_name,
                parameters=run.task.model_dump_json(),
                message=f"Task with id {run.id} was {_WHEN.get(self.kind, self.kind)}{when}.",
                queue_name=run.queue_name,
            )
        )


class Dispatcher:
    """Implements :class:`~evertask_abstractions.TaskDispatcher` for one host."""

    def __init__(
        self,
        *,
        options: EverTaskOptions,
        registry: HandlerRegistry,
        queues: QueueManager,
        storage: TaskStorage | None,
        clock: Clock,
        lifecycle: Lifecycle,
        inflight: InFlight,
        cancels: CancelRegistry,
        scheduler: TimerScheduler,
        intake: Intake,
        recurring: RecurringCoordinator,
        events: EventBus,
        observers: list[TaskObserver],
        node: Node,
        throttle: RateLimitGate | None = None,
        announce: Callable[[str], None] = lambda notice: None,
    ) -> None:
        self._throttle = throttle
        self._options = options
        self._node = node
        self._announce = announce  # tells the other nodes at once, where the storage can
        self._registry = registry
        self._queues = queues
        self._storage = storage
        self._clock = clock
        self._lifecycle = lifecycle
        self._inflight = inflight
        self._cancels = cancels
        self._scheduler = scheduler
        self._intake = intake
        self._recurring = recurring
        self._events = events
        self._observers = observers
        self.publish_dispatched = False
        self.on_released: Callable[[uuid.UUID], None] | None = None
        """Adopts a parent's released continuations (set by the engine)."""
        """Also publish a "dispatched" event per dispatch (live dashboards turn it on)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._unkeyed_sites: set[tuple[str, int]] = set()

    def _bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    # -- public API ------------------------------------------------------------------------
    async def dispatch(
        self,
        task: EverTask,
        when: When = None,
        *,
        task_key: str | None = None,
        audit_level: AuditLevel | None = None,
        after: uuid.UUID | None = None,
        continue_when: ContinueWhen = ContinueWhen.SUCCEEDED,
    ) -> uuid.UUID:
        """Run ``task`` now, after a delay, at an aware instant or on a recurring schedule.

        With ``after=parent_id`` it is a continuation: it runs once the parent has finished
        as ``continue_when`` asks (succeeded, failed or either; docs/workflows.md), and its
        handler reads the parent through ``parent_task_id`` / ``parent_result()``.

        Returns the task id once its row is committed (see ``TaskDispatcher.dispatch``).
        """
        if (self._observers or self.publish_dispatched) and _SCOPES.get() is None:
            # a partial, not a lambda: a closure would make a cell of every argument at
            # each call of this method, observed or not
            return await self._observed(
                functools.partial(
                    self.dispatch,
                    task,
                    when,
                    task_key=task_key,
                    audit_level=audit_level,
                    after=after,
                    continue_when=continue_when,
                )
            )
        if after is not None:
            return await self._dispatch_continuation(
                task, when, task_key, audit_level, after, ContinueWhen(continue_when)
            )
        if not self._lifecycle.accepting:
            raise HostNotRunningError(
                "The EverTask host is not running; start it first (`async with host:` or "
                "`await host.start()`) before dispatching."
            )
        descriptor = self._registry.for_task(task)
        level = (
            self._options.default_audit_level if audit_level is None else AuditLevel(audit_level)
        )
        now = self._clock.now()
        execution_time: datetime | None = None
        schedule: RecurringSchedule | None = None
        kind: str | None = None  # how observers see it; derived from the rest when None
        if when is None:
            pass
        elif isinstance(when, timedelta):
            if when < timedelta(0):
                raise ScheduleError(
                    f"A dispatch delay must not be negative, got {when}. Pass timedelta(0) or "
                    "None to run now."
                )
            if when > timedelta(0):
                execution_time = now + when
                kind = "delayed"
        elif isinstance(when, datetime):
            if when.tzinfo is None or when.utcoffset() is None:
                raise ScheduleError(
                    f"Naive datetime {when.isoformat()} is ambiguous; pass an aware datetime, "
                    "e.g. datetime(2027, 1, 1, 9, 0, tzinfo=UTC) or with ZoneInfo('Europe/Rome')."
                )
            at = when.astimezone(UTC)
            if at > now:
                execution_time = at
        elif callable(when):
            schedule = self._recurring.build(when, now)
            first = schedule.first_run(now)
            if first is None:
                raise ScheduleError(f"The schedule {schedule} has no future occurrence.")
            execution_time = max(first, now)
        else:
            raise TypeError(
                "dispatch(task, when): when must be None, a timedelta, an aware datetime or "
                f"a callable receiving a RecurringTaskBuilder; got {type(when).__name__}."
            )
        key = _normalize_key(task_key)
        if key is None and schedule is not None and schedule.is_recurring:
            self._warn_unkeyed(descriptor)
        if key is not None and self._storage is not None:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = asyncio.Lock()
            try:
                async with lock:
                    return await self._dispatch_keyed(
                        task, descriptor, level, execution_time, schedule, key, now
                    )
            finally:
                if not lock.locked() and not lock._waiters:
                    self._key_locks.pop(key, None)
        return await self._dispatch_new(
            task, descriptor, level, execution_time, schedule, key, now, kind
        )

    def _warn_unkeyed(self, descriptor: HandlerDescriptor) -> None:
        """Warn once per call site about a recurring dispatch without a task key."""
        if self._storage is None:
            return
        site = _call_site()
        if site in self._unkeyed_sites:
            return
        self._unkeyed_sites.add(site)
        log.warning(
            "A recurring %s was dispatched without task_key at %s:%d: every start of the "
            "application adds one more identical series to the storage. Pass "
            "task_key='...' to make the registration idempotent (docs/recurring.md).",
            descriptor.task_type_name,
            site[0],
            site[1],
        )

    async def _observed(self, dispatch: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``dispatch`` with the observers' scopes collected, each finished once it
        returned (or failed)."""
        scopes: list[DispatchScope] = []
        reset = _SCOPES.set(scopes)
        try:
            result = await dispatch()
        except BaseException as exc:
            _finish_scopes(scopes, exc)
            raise
        finally:
            _SCOPES.reset(reset)
        _finish_scopes(scopes, None)
        return result

    def _observe(self, run: TaskRun, kind: str) -> None:
        scopes = _SCOPES.get()
        if self.publish_dispatched and scopes is not None and self._events.has_subscribers:
            scopes.append(_DispatchedEvent(self._events, run, kind, self._clock.now()))
        for observer in self._observers:
            try:
                scope = observer.dispatching(run, kind)
            except Exception:
                log.exception("A task observer failed in dispatching().")
                continue
            if scope is not None and scopes is not None:
                scopes.append(scope)

    def dispatch_sync(
        self,
        task: EverTask,
        when: When = None,
        *,
        task_key: str | None = None,
        audit_level: AuditLevel | None = None,
        timeout: float | None = None,
    ) -> uuid.UUID:
        """:meth:`dispatch` from another thread (Django, Flask, scripts); thread-safe."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise HostNotRunningError("The EverTask host is not running; start it first.")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "dispatch_sync() was called on the host's event loop thread, where it would "
                "deadlock; use `await dispatcher.dispatch(...)` there."
            )
        # run in the caller's context, so its trace (e.g. a web request's span) continues
        context = contextvars.copy_context()

        async def in_caller_context() -> uuid.UUID:
            coro = self.dispatch(task, when, task_key=task_key, audit_level=audit_level)
            return await asyncio.get_running_loop().create_task(coro, context=context)

        future = asyncio.run_coroutine_threadsafe(in_caller_context(), loop)
        return future.result(timeout)

    async def cancel(self, task_id: uuid.UUID) -> None:
        """Cancel a queued, scheduled, recurring or running task; unknown ids are ignored.

        On any node of a cluster: the node running the task learns of it at its next poll.
        """
        self.cancel_here(task_id)
        storage = self._storage
        if storage is None:
            return
        row = await storage.get(task_id)
        if row is None:
            return
        if row.status is QueuedTaskStatus.CANCELLED:
            return
        finished = row.status in (QueuedTaskStatus.COMPLETED, QueuedTaskStatus.FAILED)
        if finished and not (row.is_recurring and row.next_run_utc is not None):
            return  # a finished one-shot stays as it ended
        await storage.set_cancelled_by_user(task_id, row.audit_level)
        self._announce(NOTICE_CANCEL + str(task_id))

    def cancel_here(self, task_id: uuid.UUID) -> None:
        """Stop what this process holds of a task (its timer, its queued or running
        delivery) without writing its status (done by :meth:`cancel`, or by another node)."""
        self._cancels.cancel(task_id)
        execution = self._inflight.execution(task_id)
        if execution is not None:
            execution.cancel(CancelReason.USER)
        self._scheduler.unschedule(task_id)
        self._inflight.drop_follow_up(task_id)
        if self._throttle is not None:  # a run parked for its rate-limit slot
            self._throttle.forget(task_id)

    async def retry(self, task_id: uuid.UUID) -> uuid.UUID:
        """Run a Failed or Cancelled task again: a new dispatch of the same payload, on the
        same queue and audit level, whose row records ``retried_from=task_id``.

        A member of a batch or a workflow runs again in place instead (the same id): its
        batch counts it anew and the steps its failure skipped wait for it again, so the
        workflow goes on (docs/workflows.md); ``ValueError`` when its batch was cancelled
        or its saga failed."""
        storage = self._storage
        if storage is None:
            raise HostNotRunningError("Retrying a stored task needs a storage.")
        row = await storage.get(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        if row.status not in (QueuedTaskStatus.FAILED, QueuedTaskStatus.CANCELLED):
            raise ValueError(
                f"Task {task_id} is {row.status.value}; only Failed or Cancelled tasks can be "
                "retried."
            )
        batches = self._batches()
        if batches is not None and await batches.retry_member(task_id):
            self._wake_claim(task_id)
            return task_id
        descriptor, task = self._registry.load_task(row.type, row.request)
        if not self._lifecycle.accepting:
            raise HostNotRunningError("The EverTask host is not running; start it first.")
        token = _RETRIED_FROM.set(task_id)
        try:
            return await self._dispatch_new(
                task, descriptor, row.audit_level, None, None, None, self._clock.now()
            )
        finally:
            _RETRIED_FROM.reset(token)

    # -- internals -------------------------------------------------------------------------
    def _queue_name(self, descriptor: HandlerDescriptor, recurring: bool) -> str:
        """The queue a handler's tasks run on (resolved once per handler and kind)."""
        name = descriptor.resolved_queues.get(recurring)
        if name is None:
            name = self._queues.resolve(descriptor.queue_name, recurring).name
            descriptor.resolved_queues[recurring] = name
        return name

    def _make_run(
        self,
        task_id: uuid.UUID,
        task: EverTask,
        descriptor: HandlerDescriptor,
        level: AuditLevel,
        execution_time: datetime | None,
        schedule: RecurringSchedule | None,
        key: str | None,
        current_run: int = 0,
        kind: str | None = None,
    ) -> TaskRun:
        recurring = schedule is not None and schedule.is_recurring
        run = TaskRun(
            id=task_id,
            task=task,
            descriptor=descriptor,
            queue_name=self._queue_name(descriptor, recurring),
            audit_level=level,
            persisted=self._storage is not None,
            execution_time=execution_time,
            schedule=schedule,
            current_run=current_run,
            task_key=key,
            generation=self._cancels.generation(task_id),
        )
        if self._observers or self.publish_dispatched:
            if kind is None:
                kind = "recurring" if recurring else "scheduled" if execution_time else "immediate"
            self._observe(run, kind)
        if not self._options.use_lazy_handler_resolution and execution_time is None:
            run.handler = (descriptor.factory or descriptor.handler_class)()
        return run

    def _make_row(self, run: TaskRun, status: QueuedTaskStatus, now: datetime) -> QueuedTask:
        row = QueuedTask(
            id=run.id,
            type=run.descriptor.task_type_name,
            request=dump_task(run.task),
            handler=run.descriptor.handler_type_name,
            status=status,
            created_at_utc=now,
            queue_name=run.queue_name,
            audit_level=run.audit_level,
            scheduled_execution_utc=run.execution_time,
            task_key=run.task_key,
            trace_context=run.trace_context,
            retried_from=_RETRIED_FROM.get(),
            owner_node=self._node.owner,
        )
        schedule = run.schedule
        if schedule is not None:
            row.recurring_task = schedule.to_json()
            row.recurring_info = str(schedule)
            row.max_runs = schedule.max_runs
            row.run_until = schedule.run_until
            if schedule.is_recurring:
                row.is_recurring = True
                row.current_run_count = run.current_run
                row.next_run_utc = run.execution_time
        return row

    def _persist_failed(self, exc: Exception, row: QueuedTask, run: TaskRun) -> None:
        """``storage.persist(row)`` raised ``exc``: a task-key conflict propagates, other
        errors raise or (``set_throw_if_unable_to_persist(False)``) leave the run in memory."""
        if isinstance(exc, TaskKeyConflictError):
            raise exc
        if not self._node.runs_workers:  # nothing here could run it in memory
            raise PersistenceError(
                f"Task {row.id} ({row.type}) could not be persisted, so it was not accepted: "
                f"{exc!r}. A dispatch-only host runs nothing itself; check the storage."
            ) from exc
        if self._options.throw_if_unable_to_persist:
            raise PersistenceError(
                f"Task {row.id} ({row.type}) could not be persisted, so it was not run: "
                f"{exc!r}. Check the storage; set_throw_if_unable_to_persist(False) runs "
                "such tasks in memory instead."
            ) from exc
        log.error(
            "Task %s could not be persisted (%r); it runs in memory only.",
            row.id,
            exc,
            exc_info=exc,
        )
        run.persisted = False

    async def _reserve(self, queue: WorkerQueue, task_id: uuid.UUID) -> WorkerQueue:
        """A slot for an immediate dispatch, per the queue's full behaviour."""
        reserved = await self._queues.reserve_for_dispatch(queue)
        if reserved is None:
            raise QueueFullError(queue.name, task_id)
        return reserved

    async def _dispatch_new(
        self,
        task: EverTask,
        descriptor: HandlerDescriptor,
        level: AuditLevel,
        execution_time: datetime | None,
        schedule: RecurringSchedule | None,
        key: str | None,
        now: datetime,
        kind: str | None = None,
    ) -> uuid.UUID:
        """Every new task goes this way: a future one is persisted WaitingQueue and put on
        a timer; an immediate one reserves a queue slot, is persisted Queued, then queued.
        On a dispatch-only node the row (Queued if due) is only persisted: a worker node
        claims it."""
        tid = uuid7()
        run = self._make_run(tid, task, descriptor, level, execution_time, schedule, key, 0, kind)
        storage = self._storage
        stopping = self._lifecycle.state is HostState.STOPPING
        workers = self._node.runs_workers
        reserved: WorkerQueue | None = None  # the queue slot of an immediate task
        due = execution_time is None or execution_time <= now
        if due and schedule is not None:
            run.execution_time = now
        if due and workers and not stopping:
            queue = self._queues.for_run(run)
            reserved = await self._reserve(queue, tid)
        try:
            if storage is not None:
                queued = reserved is not None or (due and not workers)
                status = QueuedTaskStatus.QUEUED if queued else QueuedTaskStatus.WAITING_QUEUE
                row = self._make_row(run, status, now)
                try:
                    await storage.persist(row)
                except Exception as exc:
                    self._persist_failed(exc, row, run)
            elif stopping:
                raise HostNotRunningError(
                    "The EverTask host is stopping; the task was not accepted."
                )
        except BaseException:
            if reserved is not None:
                reserved.release()
            raise
        if not workers:
            if due:
                self._announce(NOTICE_WORK)
            return tid
        if reserved is None:  # due later (or the host is stopping: at the next start)
            if self._lifecycle.running:
                self._scheduler.schedule(run, execution_time or now)
            return tid
        self._inflight.add(tid)
        reserved.put_reserved(run)
        return tid

    async def _dispatch_continuation(
        self,
        task: EverTask,
        when: When,
        task_key: str | None,
        audit_level: AuditLevel | None,
        parent_id: uuid.UUID,
        condition: ContinueWhen,
    ) -> uuid.UUID:
        """Persist a continuation (WaitingParent, or released at once when its parent has
        finished); the parent's terminal write releases it (see the storage protocol)."""
        if not self._lifecycle.accepting:
            raise HostNotRunningError(
                "The EverTask host is not running; start it first before dispatching."
            )
        storage = self._storage
        if storage is None:
            raise ConfigurationError("Continuations need a storage (add_memory_storage() or SQL).")
        if when is not None or task_key is not None:
            raise ConfigurationError(
                "A continuation (after=...) runs when its parent finishes: it takes no `when` "
                "and no task_key."
            )
        descriptor = self._registry.for_task(task)
        level = (
            self._options.default_audit_level if audit_level is None else AuditLevel(audit_level)
        )
        now = self._clock.now()
        tid = uuid7()
        run = self._make_run(tid, task, descriptor, level, None, None, None, 0, "continuation")
        run.handler = None  # resolved when it runs
        row = self._make_row(run, QueuedTaskStatus.WAITING_PARENT, now)
        row.parent_task_id = parent_id
        row.continue_when = condition.value
        status = await storage.persist_continuation(row)
        if status is QueuedTaskStatus.QUEUED:  # the parent had finished: run it now
            self._wake_claim(parent_id)
        return tid

    def _wake_claim(self, parent_id: uuid.UUID) -> None:
        """Unowned Queued rows were committed: this node's claim takes them at once (a
        dispatch-only node tells the workers)."""
        if self._node.runs_workers:
            if self.on_released is not None:
                self.on_released(parent_id)
        else:
            self._announce(NOTICE_WORK)

    # -- batches and workflows (docs/workflows.md) ------------------------------------------
    def _batches(self) -> BatchStore | None:
        storage: object = self._storage
        return storage if isinstance(storage, BatchStore) else None

    def _units(self) -> UnitBuilder:
        if not self._lifecycle.accepting:
            raise HostNotRunningError(
                "The EverTask host is not running; start it first before dispatching."
            )
        storage = self._storage
        batches = self._batches()
        if batches is None:
            raise ConfigurationError(
                "Batches and workflows need a storage that keeps them (the memory storage "
                "or a SQL storage); this host has "
                + ("none." if storage is None else f"{type(storage).__qualname__}.")
            )
        now = self._clock.now()

        def make_row(task: EverTask, level: AuditLevel, kind: str) -> QueuedTask:
            descriptor = self._registry.for_task(task)
            run = self._make_run(uuid7(), task, descriptor, level, None, None, None, 0, kind)
            run.handler = None  # resolved when it runs
            return self._make_row(run, QueuedTaskStatus.QUEUED, now)

        def describe(task: EverTask) -> dict[str, str]:  # a compensation, stored for later
            descriptor = self._registry.for_task(task)
            return {
                "type": descriptor.task_type_name,
                "request": dump_task(task),
                "handler": descriptor.handler_type_name,
                "queue": self._queue_name(descriptor, False),
            }

        return UnitBuilder(batches, make_row, describe, now)

    def _level(self, audit_level: AuditLevel | None) -> AuditLevel:
        return self._options.default_audit_level if audit_level is None else AuditLevel(audit_level)

    async def dispatch_batch(
        self,
        tasks: Sequence[EverTask],
        *,
        name: str | None = None,
        audit_level: AuditLevel | None = None,
    ) -> uuid.UUID:
        """Dispatch ``tasks`` as one batch: every row is committed in one transaction, or
        none is. Returns the batch id: read its progress with :meth:`get_batch`, cancel it
        with :meth:`cancel_batch`, and chain after it with ``dispatch(task,
        after=batch_id, continue_when=...)`` (Succeeded: every member completed; Failed:
        one did not; Finished: either). A continuation reads the members' results with
        ``parent_results``."""
        if (self._observers or self.publish_dispatched) and _SCOPES.get() is None:
            return await self._observed(
                functools.partial(self.dispatch_batch, tasks, name=name, audit_level=audit_level)
            )
        units = self._units()
        unit = units.batch(list(tasks), name, self._level(audit_level))
        await units.storage.persist_unit(unit.batches, unit.tasks)
        self._wake_claim(unit.id)
        return unit.id

    async def dispatch_workflow(
        self, workflow: Workflow, *, audit_level: AuditLevel | None = None
    ) -> uuid.UUID:
        """Dispatch every step of ``workflow`` in one transaction; returns the workflow id
        (a batch id: :meth:`get_batch`, :meth:`cancel_batch` and ``after=`` take it)."""
        if (self._observers or self.publish_dispatched) and _SCOPES.get() is None:
            return await self._observed(
                functools.partial(self.dispatch_workflow, workflow, audit_level=audit_level)
            )
        units = self._units()
        unit = units.workflow(workflow, self._level(audit_level))
        await units.storage.persist_unit(unit.batches, unit.tasks)
        self._wake_claim(unit.id)
        return unit.id

    async def get_batch(self, batch_id: uuid.UUID) -> BatchInfo:
        """A batch's or a workflow's progress; ``TaskNotFoundError`` when there is none."""
        storage = self._batches()
        batch = None if storage is None else await storage.get_batch(batch_id)
        if batch is None:
            raise TaskNotFoundError(batch_id, "No batch or workflow has this id.")
        return batch.info()

    async def cancel_batch(self, batch_id: uuid.UUID) -> None:
        """Cancel a batch or a workflow: its members that have not finished (running ones
        are cancelled as :meth:`cancel` does) and the continuations waiting for it. A
        finished batch stays as it ended; ``TaskNotFoundError`` when there is none."""
        storage = self._batches()
        cancelled = None if storage is None else await storage.cancel_batch(batch_id)
        if cancelled is None:
            raise TaskNotFoundError(batch_id, "No batch or workflow has this id.")
        for task_id in cancelled:
            self.cancel_here(task_id)
            self._announce(NOTICE_CANCEL + str(task_id))

    async def compensate_workflow(self, workflow_id: uuid.UUID) -> uuid.UUID | None:
        """Dispatch the compensations of a failed saga's completed steps, in reverse
        order, once (run by the workflow's compensating task); returns their batch id."""
        units = self._units()
        unit = await units.compensations(workflow_id)
        if unit is None:
            return None
        try:
            await units.storage.persist_unit(unit.batches, unit.tasks)
        except Exception:
            if await units.storage.get_batch(unit.id) is not None:
                return unit.id  # an earlier run of this compensating task committed them
            raise
        self._wake_claim(unit.id)
        return unit.id

    async def get_result(self, task_id: uuid.UUID, result_type: Any = Any) -> Any:
        """The result a completed task's handler returned, validated as ``result_type``
        (``Any``: the decoded JSON; ``None`` if it returned nothing).

        Raises :class:`~evertask_abstractions.TaskResultError` when the task does not
        exist, has not completed (still waiting or running, failed, cancelled), or its
        result does not fit ``result_type``.
        """
        from .workflows import read_result

        return await read_result(self._storage, task_id, result_type)

    async def _take(self, task_id: uuid.UUID, now: datetime) -> bool:
        """Make this node the owner of an existing row, unless a live node runs it; a
        dispatch-only node takes nothing (a worker node claims the row)."""
        storage = self._storage
        assert storage is not None
        return self._node.runs_workers and await storage.claim_task(task_id, self._node.id, now)

    async def _dispatch_keyed(
        self,
        task: EverTask,
        descriptor: HandlerDescriptor,
        level: AuditLevel,
        execution_time: datetime | None,
        schedule: RecurringSchedule | None,
        key: str,
        now: datetime,
    ) -> uuid.UUID:
        """EverTask's task-key decision table (docs/task-keys.md)."""
        storage = self._storage
        assert storage is not None
        existing = await storage.get_by_task_key(key)
        if existing is None:
            try:
                return await self._dispatch_new(
                    task, descriptor, level, execution_time, schedule, key, now
                )
            except TaskKeyConflictError:
                winner = await storage.get_by_task_key(key)
                if winner is None:
                    raise
                return winner.id
        new_recurring = schedule is not None and schedule.is_recurring
        status = existing.status
        if existing.is_recurring:
            if not new_recurring:
                log.warning(
                    "Task key %r belongs to a recurring task; a one-shot dispatch with "
                    "that key was ignored.",
                    key,
                )
                return existing.id
            return await self._recurring.update_by_key(
                existing,
                task,
                descriptor,
                level,
                schedule,
                key,
                now,
                running=status is QueuedTaskStatus.IN_PROGRESS or existing.id in self._inflight,
                local=await self._take(existing.id, now),
                make_run=self._make_run,
                make_row=self._make_row,
            )
        # existing one-shot
        if status is QueuedTaskStatus.IN_PROGRESS or existing.id in self._inflight:
            log.warning(
                "Task key %r: task %s is running or queued; the dispatch was ignored.",
                key,
                existing.id,
            )
            return existing.id
        if status in (
            QueuedTaskStatus.COMPLETED,
            QueuedTaskStatus.FAILED,
            QueuedTaskStatus.CANCELLED,
            QueuedTaskStatus.SERVICE_STOPPED,
        ):
            await storage.remove(existing.id)
            self._scheduler.unschedule(existing.id)
            return await self._dispatch_new(
                task, descriptor, level, execution_time, schedule, key, now
            )
        # WaitingQueue / Queued / Pending and not in flight: update in place (same id); it
        # runs here unless a live node owns it (that node runs what it holds)
        local = await self._take(existing.id, now)
        run = self._make_run(existing.id, task, descriptor, level, execution_time, schedule, key)
        row = self._make_row(run, existing.status, existing.created_at_utc)
        await storage.update_task(row)
        if not local:
            return existing.id
        if execution_time is not None and execution_time > now:
            self._scheduler.schedule(run, execution_time)
        else:
            self._scheduler.unschedule(existing.id)
            await self._intake.admit(run, wait_for_slot=True)
        return existing.id


def _normalize_key(task_key: str | None) -> str | None:
    if task_key is None:
        return None
    if not isinstance(task_key, str):
        raise TypeError(f"task_key must be a string, got {type(task_key).__name__}.")
    if not task_key.strip():
        return None
    if len(task_key) > _MAX_KEY_LENGTH:
        raise ValueError(
            f"task_key is {len(task_key)} characters long; the maximum is {_MAX_KEY_LENGTH}."
        )
    return task_key


def _call_site() -> tuple[str, int]:
    """The file and line of the first caller outside this package."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("evertask."):
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno
