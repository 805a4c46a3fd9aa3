"""The dispatcher: validates, persists, then schedules or enqueues."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from evertask_abstractions import (
    AuditLevel,
    EverTask,
    EverTaskHandler,
    HostNotRunningError,
    PersistenceError,
    QueuedTaskStatus,
    QueueFullError,
    ScheduleError,
    TaskKeyConflictError,
    When,
)

from .engine import Engine, HostState
from .events import EventKind, TaskEvent
from .executor import CancelReason
from .ids import uuid7
from .observe import DispatchScope
from .queues import WorkerQueue
from .registry import HandlerDescriptor, dump_task
from .run import TaskRun
from .storage.models import QueuedTask

if TYPE_CHECKING:
    from .scheduling import RecurringSchedule

__all__ = ["Dispatcher"]

log = logging.getLogger("evertask.dispatcher")

_MAX_KEY_LENGTH = 200
_RETRIED_FROM: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "evertask_retried_from", default=None
)
_SCOPES: contextvars.ContextVar[list[DispatchScope] | None] = contextvars.ContextVar(
    "evertask_dispatch_scopes", default=None
)


def _row(run: TaskRun, status: QueuedTaskStatus, now: datetime, at: datetime | None) -> QueuedTask:
    """The row of a one-shot dispatch (the hot paths)."""
    d = run.descriptor
    return QueuedTask(
        run.id,
        d.task_type_name,
        dump_task(run.task),
        d.handler_type_name,
        status,
        now,
        run.queue_name,
        run.audit_level,
        at,
        trace_context=run.trace_context,
    )


def _finish_scopes(scopes: list[DispatchScope], error: BaseException | None) -> None:
    for scope in scopes:
        try:
            scope.finish(error)
        except Exception:
            log.exception("A task observer failed in finish().")


_RUNNING = HostState.RUNNING
_QUEUED = QueuedTaskStatus.QUEUED
_WAITING = QueuedTaskStatus.WAITING_QUEUE
_ZERO = timedelta(0)

# an immediate dispatch's way (see Dispatcher.__init__): handler, queue, row kind, factory
Route = tuple[HandlerDescriptor, WorkerQueue, int, Callable[[], EverTaskHandler[Any]]]


_WHEN = {
    "immediate": "queued",
    "delayed": "scheduled",
    "scheduled": "scheduled",
    "recurring": "registered as recurring",
}


class _DispatchedEvent:
    """Publishes the ``dispatched`` event once the dispatch has committed (live dashboards
    see a task that waits, e.g. delayed or on a paused queue, before it runs)."""

    __slots__ = ("engine", "kind", "now", "run")

    def __init__(self, engine: Engine, run: TaskRun, kind: str) -> None:
        self.engine, self.run, self.kind, self.now = engine, run, kind, engine.clock.now()

    def finish(self, error: BaseException | None) -> None:
        events = self.engine.events
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

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._default_level = engine.options.default_audit_level
        self._lazy = engine.options.use_lazy_handler_resolution
        # a synchronous in-process storage takes an immediate dispatch's row as fields, its
        # type, handler, queue and audit level as one "kind" number
        inline = getattr(engine.storage, "inline_persist", None)
        pair = inline() if inline else None
        self._kind_of: Callable[[str, str, str, AuditLevel], int] | None = None
        self._persist_queued: Callable[..., None] | None = None
        if pair is not None:
            self._kind_of, self._persist_queued = pair
        # per task class: its handler, the queue of its immediate dispatches, their kind at
        # the default audit level (-1 without an inline storage) and the handler's factory
        self._routes: dict[type[EverTask], Route] = {}

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
    ) -> uuid.UUID:
        """Run ``task`` now, after a delay, at an aware instant or on a recurring schedule.

        Returns the task id once its row is committed (see ``TaskDispatcher.dispatch``).
        """
        engine = self._engine
        if (engine.observers or engine.dispatch_events) and _SCOPES.get() is None:
            return await self._dispatch_observed(task, when, task_key, audit_level)
        if task_key is not None or engine.state is not _RUNNING:
            return await self._dispatch(task, when, task_key, audit_level)
        if when is not None:
            if when.__class__ is timedelta and when > _ZERO:  # the delayed hot path
                return await self._dispatch_later(task, when, audit_level)
            return await self._dispatch(task, when, task_key, audit_level)
        # the immediate hot path, written in place (one coroutine per dispatch)
        descriptor, queue, kind, make = self._routes.get(type(task)) or self._route(task)
        level = self._default_level if audit_level is None else AuditLevel(audit_level)
        tid = uuid7()
        storage = engine.storage
        run = TaskRun(tid, task, descriptor, queue.name, level, storage is not None)
        if engine.observers or engine.dispatch_events:
            self._observe(run, "immediate")
        if not self._lazy:
            run.handler = make()
        reserved = queue if queue.try_reserve() else await self._reserve_slow(queue, tid)
        try:
            if storage is not None:
                inline = self._persist_queued
                if inline is not None:  # a synchronous storage: no row object to build
                    try:  # dump_task's call, in place; it raises the explaining error
                        request = task.__pydantic_serializer__.to_json(task).decode()
                    except Exception:
                        request = dump_task(task)
                    try:
                        if level is not self._default_level:
                            kind = self._kind_at(descriptor, queue, level)
                        # the storage stamps created_at itself
                        inline(tid, kind, request, level, run.trace_context)
                    except Exception as exc:
                        row = _row(run, _QUEUED, engine.clock.now(), None)
                        self._persist_failed(exc, row, run)
                else:
                    row = _row(run, _QUEUED, engine.clock.now(), None)
                    try:
                        await storage.persist(row)
                    except Exception as exc:
                        self._persist_failed(exc, row, run)
        except BaseException:
            reserved.release()
            raise
        engine.in_flight.add(tid.int)
        reserved.put_reserved(run)
        return tid

    async def _dispatch_observed(
        self, task: EverTask, when: When, task_key: str | None, audit_level: AuditLevel | None
    ) -> uuid.UUID:
        """:meth:`dispatch` with observer scopes collected, finished once it returns."""
        scopes: list[DispatchScope] = []
        reset = _SCOPES.set(scopes)
        try:
            tid = await self.dispatch(task, when, task_key=task_key, audit_level=audit_level)
        except BaseException as exc:
            _finish_scopes(scopes, exc)
            raise
        finally:
            _SCOPES.reset(reset)
        _finish_scopes(scopes, None)
        return tid

    def _observe(self, run: TaskRun, kind: str) -> None:
        engine = self._engine
        scopes = _SCOPES.get()
        if engine.dispatch_events and scopes is not None and engine.events.has_subscribers:
            scopes.append(_DispatchedEvent(engine, run, kind))
        for observer in engine.observers:
            try:
                scope = observer.dispatching(run, kind)
            except Exception:
                log.exception("A task observer failed in dispatching().")
                continue
            if scope is not None and scopes is not None:
                scopes.append(scope)

    async def _dispatch(
        self, task: EverTask, when: When, task_key: str | None, audit_level: AuditLevel | None
    ) -> uuid.UUID:
        engine = self._engine
        if engine.state not in (HostState.RUNNING, HostState.STOPPING):
            raise HostNotRunningError(
                "The EverTask host is not running; start it first (`async with host:` or "
                "`await host.start()`) before dispatching."
            )
        descriptor = engine.registry.for_task(task)
        level = (
            engine.options.default_audit_level if audit_level is None else AuditLevel(audit_level)
        )
        now = engine.clock.now()
        execution_time: datetime | None = None
        schedule: RecurringSchedule | None = None
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
            schedule = engine.recurring.build(when, now)
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
        if key is not None and engine.storage is not None:
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
        return await self._dispatch_new(task, descriptor, level, execution_time, schedule, key, now)

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
        """Cancel a queued, scheduled, recurring or running task; unknown ids are ignored."""
        engine = self._engine
        engine.cancels.cancel(task_id)
        execution = engine.executor.running.get(task_id.int)
        if execution is not None:
            execution.cancel(CancelReason.USER)
        engine.scheduler.unschedule(task_id)
        engine.follow_ups.pop(task_id, None)
        storage = engine.storage
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

    async def retry(self, task_id: uuid.UUID) -> uuid.UUID:
        """Run a Failed or Cancelled task again: a new dispatch of the same payload, on the
        same queue and audit level, whose row records ``retried_from=task_id``."""
        engine = self._engine
        storage = engine.storage
        if storage is None:
            raise HostNotRunningError("Retrying a stored task needs a storage.")
        row = await storage.get(task_id)
        if row is None:
            raise KeyError(f"No task with id {task_id}.")
        if row.status not in (QueuedTaskStatus.FAILED, QueuedTaskStatus.CANCELLED):
            raise ValueError(
                f"Task {task_id} is {row.status.value}; only Failed or Cancelled tasks can be "
                "retried."
            )
        descriptor, task = engine.registry.load_task(row.type, row.request)
        if engine.state not in (HostState.RUNNING, HostState.STOPPING):
            raise HostNotRunningError("The EverTask host is not running; start it first.")
        token = _RETRIED_FROM.set(task_id)
        try:
            return await self._dispatch_new(
                task, descriptor, row.audit_level, None, None, None, engine.clock.now()
            )
        finally:
            _RETRIED_FROM.reset(token)

    # -- internals -------------------------------------------------------------------------
    async def _dispatch_later(
        self, task: EverTask, delay: timedelta, audit_level: AuditLevel | None
    ) -> uuid.UUID:
        """The hot path of delayed dispatches: no task key, a positive delay."""
        engine = self._engine
        descriptor = engine.registry.for_task(task)
        level = self._default_level if audit_level is None else AuditLevel(audit_level)
        tid = uuid7()
        queue_name = self._queue_name(descriptor, False)
        now = engine.clock.now()
        at = now + delay
        storage = engine.storage
        run = TaskRun(
            tid,
            task,
            descriptor,
            queue_name,
            level,
            execution_time=at,
            persisted=storage is not None,
        )
        if engine.observers or engine.dispatch_events:
            self._observe(run, "delayed")
        if storage is not None:
            row = _row(run, _WAITING, now, at)
            try:
                await storage.persist(row)
            except Exception as exc:
                self._persist_failed(exc, row, run)
        engine.scheduler.schedule(run, at)
        return tid

    def _route(self, task: EverTask) -> Route:
        """How immediate dispatches of ``task``'s class go (see ``__init__``); computed once
        per class. Raises the registry's error for a task without a handler."""
        descriptor = self._engine.registry.for_task(task)
        queue = self._engine.queues.queues[self._queue_name(descriptor, False)]
        kind = self._kind_at(descriptor, queue, self._default_level)
        make = descriptor.factory or descriptor.handler_class
        self._routes[type(task)] = route = (descriptor, queue, kind, make)
        return route

    def _kind_at(self, descriptor: HandlerDescriptor, queue: WorkerQueue, level: AuditLevel) -> int:
        """The inline storage's kind number of a handler's rows on ``queue`` at ``level``
        (-1 without an inline storage)."""
        if self._kind_of is None:
            return -1
        return self._kind_of(
            descriptor.task_type_name, descriptor.handler_type_name, queue.name, level
        )

    def _queue_name(self, descriptor: HandlerDescriptor, recurring: bool) -> str:
        """The queue a handler's tasks run on (resolved once per handler and kind)."""
        name = descriptor.resolved_queues.get(recurring)
        if name is None:
            name = self._engine.queues.resolve(descriptor.queue_name, recurring).name
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
    ) -> TaskRun:
        engine = self._engine
        recurring = schedule is not None and schedule.is_recurring
        queue_name = self._queue_name(descriptor, recurring)
        run = TaskRun(
            task_id,
            task,
            descriptor,
            queue_name,
            level,
            execution_time=execution_time,
            schedule=schedule,
            current_run=current_run,
            task_key=key,
            persisted=engine.storage is not None,
        )
        run.generation = engine.cancels.generation(task_id)
        if engine.observers or engine.dispatch_events:
            kind = "recurring" if recurring else ("scheduled" if execution_time else "immediate")
            self._observe(run, kind)
        if not engine.options.use_lazy_handler_resolution and execution_time is None:
            factory = descriptor.factory or descriptor.handler_class
            run.handler = factory()
        return run

    def _make_row(self, run: TaskRun, status: QueuedTaskStatus, now: datetime) -> QueuedTask:
        schedule = run.schedule
        recurring = schedule is not None and schedule.is_recurring
        return QueuedTask(
            id=run.id,
            type=run.descriptor.task_type_name,
            request=dump_task(run.task),
            handler=run.descriptor.handler_type_name,
            status=status,
            created_at_utc=now,
            queue_name=run.queue_name,
            audit_level=run.audit_level,
            scheduled_execution_utc=run.execution_time,
            is_recurring=recurring,
            recurring_task=None if schedule is None else schedule.to_json(),
            recurring_info=None if schedule is None else str(schedule),
            current_run_count=run.current_run if recurring else None,
            max_runs=None if schedule is None else schedule.max_runs,
            run_until=None if schedule is None else schedule.run_until,
            next_run_utc=run.execution_time if recurring else None,
            task_key=run.task_key,
            trace_context=run.trace_context,
            retried_from=_RETRIED_FROM.get(),
        )

    async def _persist(self, row: QueuedTask, run: TaskRun) -> None:
        storage = self._engine.storage
        assert storage is not None
        try:
            await storage.persist(row)
        except Exception as exc:
            self._persist_failed(exc, row, run)

    async def _reserve_slow(self, queue: WorkerQueue, task_id: uuid.UUID) -> WorkerQueue:
        reserved = await self._engine.queues.reserve_for_dispatch(queue)
        if reserved is None:
            raise QueueFullError(queue.name, task_id)
        return reserved

    def _persist_failed(self, exc: Exception, row: QueuedTask, run: TaskRun) -> None:
        """A task-key conflict propagates; other errors raise or degrade to in-memory."""
        if isinstance(exc, TaskKeyConflictError):
            raise exc
        if self._engine.options.throw_if_unable_to_persist:
            raise PersistenceError(
                f"Task {row.id} ({row.type}) could not be persisted, so it was not run: "
                f"{exc!r}. Check the storage; set_throw_if_unable_to_persist(False) runs "
                "such tasks in memory instead."
            ) from exc
        log.error("Task %s could not be persisted (%r); it runs in memory only.", row.id, exc)
        run.persisted = False

    async def _dispatch_new(
        self,
        task: EverTask,
        descriptor: HandlerDescriptor,
        level: AuditLevel,
        execution_time: datetime | None,
        schedule: RecurringSchedule | None,
        key: str | None,
        now: datetime,
        task_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        engine = self._engine
        tid = task_id or uuid7()
        run = self._make_run(tid, task, descriptor, level, execution_time, schedule, key)
        storage = engine.storage
        if (
            execution_time is not None and execution_time > now
        ) or engine.state is HostState.STOPPING:
            if storage is not None:
                await self._persist(self._make_row(run, QueuedTaskStatus.WAITING_QUEUE, now), run)
            elif engine.state is HostState.STOPPING:
                raise HostNotRunningError(
                    "The EverTask host is stopping; the task was not accepted."
                )
            if engine.state is HostState.RUNNING:
                engine.scheduler.schedule(run, execution_time or now)
            return tid
        if schedule is not None:
            run.execution_time = now
        queue = engine.queue_for(run)
        reserved = queue if queue.try_reserve() else await self._reserve_slow(queue, tid)
        try:
            if storage is not None:
                await self._persist(self._make_row(run, QueuedTaskStatus.QUEUED, now), run)
        except BaseException:
            reserved.release()
            raise
        engine.in_flight.add(tid.int)
        reserved.put_reserved(run)
        return tid

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
        engine = self._engine
        storage = engine.storage
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
            if status is QueuedTaskStatus.IN_PROGRESS or existing.id.int in engine.in_flight:
                return await self._update_recurring(
                    existing, task, descriptor, level, schedule, key, now, running=True
                )
            return await self._update_recurring(
                existing, task, descriptor, level, schedule, key, now
            )
        # existing one-shot
        if status is QueuedTaskStatus.IN_PROGRESS or existing.id.int in engine.in_flight:
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
            engine.scheduler.unschedule(existing.id)
            return await self._dispatch_new(
                task, descriptor, level, execution_time, schedule, key, now
            )
        # WaitingQueue / Queued / Pending and not in flight: update in place (same id)
        run = self._make_run(existing.id, task, descriptor, level, execution_time, schedule, key)
        row = self._make_row(run, existing.status, existing.created_at_utc)
        await storage.update_task(row)
        if execution_time is not None and execution_time > now:
            engine.scheduler.schedule(run, execution_time)
        else:
            engine.scheduler.unschedule(existing.id)
            if await storage.try_set_queued_if_recoverable(existing.id, level):
                reserved = await self._reserve_slow(engine.queue_for(run), existing.id)
                engine.in_flight.add(existing.id.int)
                reserved.put_reserved(run)
        return existing.id

    async def _update_recurring(
        self,
        existing: QueuedTask,
        task: EverTask,
        descriptor: HandlerDescriptor,
        level: AuditLevel,
        schedule: RecurringSchedule | None,
        key: str,
        now: datetime,
        running: bool = False,
    ) -> uuid.UUID:
        return await self._engine.recurring.update_by_key(
            existing,
            task,
            descriptor,
            level,
            schedule,
            key,
            now,
            running=running,
            make_run=self._make_run,
            make_row=self._make_row,
        )


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
