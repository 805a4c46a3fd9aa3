"""The worker executor: runs one delivery with hooks, retries, per-attempt timeouts,
status writes, events and the next recurring occurrence."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple, Protocol

from evertask_abstractions import (
    CancellationToken,
    CancellationTokenSource,
    EverTaskHandler,
    QueuedTaskStatus,
    RetryPolicy,
    RetryWait,
    TaskCancelledError,
    TaskTimeoutError,
)
from evertask_abstractions.processes import ProcessRunner, set_process_runner
from evertask_abstractions.retry import set_retry_wait

from .clock import Clock
from .errors_format import format_exception
from .events import EventBus, EventKind, TaskEvent
from .inflight import CancelReason, CancelRegistry, InFlight
from .observe import ExecutionScope, LogCapture, Outcome, TaskObserver
from .options import EverTaskOptions
from .queues import QueueManager, WorkerQueue
from .registry import HandlerDescriptor
from .run import TaskRun
from .storage.models import QueuedTask, wants_status_audit
from .storage.protocol import PipelinedStorage, TaskStorage
from .storage.retrying import retry_write, write_retrying
from .throttling import Admission, RateLimitGate
from .workflows import result_json

__all__ = ["Execution", "Plan", "RecurringRuns", "WorkerExecutor"]

log = logging.getLogger("evertask.executor")

_INFO, _WARNING, _ERROR = "Information", "Warning", "Error"
_IN_PROGRESS = QueuedTaskStatus.IN_PROGRESS


class Plan(NamedTuple):
    """How a handler's runs on a queue are retried and timed (handler, queue, then global)."""

    policy: RetryPolicy
    timeout: float | None
    """Per-attempt timeout in seconds (``None``: none)."""


class RecurringRuns(Protocol):
    """What the executor needs of the recurring coordinator."""

    async def after_run(self, run: TaskRun, succeeded: bool, elapsed_ms: float) -> None:
        """Count a finished occurrence and schedule the next one."""
        ...

    async def skip_occurrence(self, run: TaskRun, after: datetime) -> None:
        """Skip an occurrence without counting it; go on after ``after``."""
        ...


class Execution(CancellationToken):
    """A running delivery: its asyncio task, and the token its handler receives.

    It is the token its handler receives; an attempt with a timeout gets a token source of
    its own, linked to it, so the timeout cancels only that attempt.
    """

    __slots__ = (
        "attempt",
        "cancel_reason",
        "deferred",
        "failures",
        "in_handler",
        "in_progress",
        "result",
        "run",
        "task",
    )

    def __init__(self, run: TaskRun) -> None:
        super().__init__()
        self.run = run
        self.task: asyncio.Task[None] | None = None
        self.attempt: CancellationTokenSource | None = None
        self.cancel_reason: CancelReason | None = None
        self.in_handler = False  # only the handler phase is interrupted by task.cancel()
        self.result: Any = None  # what the handler's last attempt returned
        # the failed attempts before the last one, from the first retry on (most runs have
        # none: no list lives through their status writes for the collector to walk)
        self.failures: list[BaseException] | None = None
        # its queued InProgress write (pipelined storages), or while ``deferred`` none yet:
        # queued at the loop's next turn (see WorkerExecutor._defer_in_progress)
        self.deferred = False
        self.in_progress: Awaitable[None] | None = None

    def cancel(self, reason: CancelReason) -> None:
        """Cancel the handler: its token first (sync handlers), then its asyncio task."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        text = "cancelled by user" if reason is CancelReason.USER else "the service is stopping"
        self._cancel(f"Task {self.run.id} was {text}.")
        task = self.task
        if (
            self.in_handler
            and task is not None
            and not task.done()
            and task is not asyncio.current_task()
        ):
            task.cancel()


class _Outcome(Enum):
    COMPLETED = 0
    FAILED = 1
    CANCELLED = 2
    SERVICE_STOPPED = 3


_PUBLIC_OUTCOME = {
    _Outcome.COMPLETED: Outcome.COMPLETED,
    _Outcome.FAILED: Outcome.FAILED,
    _Outcome.CANCELLED: Outcome.CANCELLED,
    _Outcome.SERVICE_STOPPED: Outcome.SERVICE_STOPPED,
}


class WorkerExecutor:
    """Starts each queue's runs (up to its parallelism at a time) and executes them."""

    def __init__(
        self,
        *,
        options: EverTaskOptions,
        queues: QueueManager,
        storage: TaskStorage | None,
        pipelined: PipelinedStorage | None,
        clock: Clock,
        inflight: InFlight,
        cancels: CancelRegistry,
        events: EventBus,
        observers: list[TaskObserver],
        recurring: RecurringRuns,
        gate: RateLimitGate,
        log_capture: LogCapture | None = None,
        retry_wait: RetryWait | None = None,
        process_runner: ProcessRunner | None = None,
    ) -> None:
        self._options = options
        self._process_runner = process_runner
        self._gate = gate
        self._queues = queues
        self._retry_wait = retry_wait
        self._storage = storage
        self._pipelined = pipelined
        self._clock = clock
        self._inflight = inflight
        self._cancels = cancels
        self._events = events
        self._observers = observers
        self._recurring = recurring
        self.log_capture = log_capture
        self.hand_over: Callable[[], tuple[uuid.UUID | None, int]] = lambda: (None, 0)
        """The node a terminal write hands the continuations it releases to, and at most
        how many (set by the engine; ``None``: no owner)."""
        self.on_released: Callable[[list[QueuedTask]], None] | None = None
        """Called with the continuations a terminal write released (those that became
        Queued)."""
        self.parent_results: Callable[[uuid.UUID, Any, bool], Awaitable[Any]] | None = None
        """Reads a parent's typed result (``EverTaskHandler.parent_result``)."""
        self._plans: dict[tuple[HandlerDescriptor, str], Plan] = {}
        self._starting: list[Execution] = []  # their InProgress writes wait for the next turn
        self._base_context = contextvars.copy_context()
        self._loop: asyncio.AbstractEventLoop | None = None
        threads = options.sync_handler_threads or max(
            4, sum(q.config.max_degree_of_parallelism for q in queues.queues.values())
        )
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="evertask-sync")

    @property
    def running(self) -> dict[int, Any]:
        """The executions running now, by task id (as an int)."""
        return self._inflight.running

    # -- lanes -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start running each queue's runs, up to its max degree of parallelism at a time."""
        self._loop = asyncio.get_running_loop()
        self._base_context = contextvars.copy_context()
        if self._retry_wait is not None:  # the policies' waits, in every execution's context
            self._base_context.run(set_retry_wait, self._retry_wait)
        self._gate.on_ready = lambda run: self._queues.for_run(run).put_overflow(run)
        if self._process_runner is not None:  # run_in_process() uses the host's pool
            self._base_context.run(set_process_runner, self._process_runner)
        for queue in self._queues.queues.values():
            queue.attach(self._launch)

    def _launch(self, queue: WorkerQueue, run: TaskRun) -> None:
        """Start ``run`` as its own asyncio task (in a fresh context) on a lane of ``queue``."""
        assert self._loop is not None
        execution = Execution(run)
        coro = self._execute(queue, run, execution)
        execution.task = self._loop.create_task(coro, context=self._base_context.copy())
        self._inflight.running[run.id.int] = execution

    async def _execute(self, queue: WorkerQueue, run: TaskRun, execution: Execution) -> None:
        """One run, its bookkeeping, then the lane's next run.

        A run made stale by a cancel before it began is skipped (no status write). A run
        of a throttled handler passes the gate first (see :mod:`evertask.throttling`).
        """
        waiting = False
        handoff: TaskRun | None = None
        try:
            if self._cancels.is_stale(run):
                self._skip_cancelled(run)  # a delivery from before a cancel
            elif run.descriptor.throttled and not run.admitted:
                waiting = await self._gated(run, execution)
            else:
                await self._run(run, execution)
        except asyncio.CancelledError:
            # cancelled from outside the engine (the loop is closing): the lane ends
            queue.active -= 1
            raise
        except Exception:  # never let one run end a lane
            log.exception("Unexpected error while executing task %s.", run.id)
        finally:
            if waiting:  # still queued (in flight), waiting for a concurrency permit
                self._inflight.running.pop(run.id.int, None)
            else:
                self._inflight.finished(run.id)
            if run.permit:
                handoff = self._gate.release(run)
        if not waiting:
            self._inflight.start_follow_up(run.id)
        if handoff is not None:
            # the permit's next holder starts on this lane (or in its own queue)
            target = self._queues.for_run(handoff)
            if target is queue and queue.starting:
                self._launch(queue, handoff)
                return
            target.put_overflow(handoff)
        follow = queue.next_run()
        if follow is not None:
            self._launch(queue, follow)

    async def _gated(self, run: TaskRun, execution: Execution) -> bool:
        """Pass the throttle gate, then run, park, reject or wait; whether the run waits
        for a concurrency permit."""
        gate = self._gate
        admission, decision = await gate.admit_async(run) if gate.is_async else gate.admit(run)
        if admission is Admission.PROCEED:
            await self._run(run, execution)
        elif admission is Admission.DEFER:
            assert decision is not None
            await gate.park(run, decision)
        elif admission is Admission.REJECT:
            assert decision is not None
            await self._rejected(run, gate.rejection(run, decision))
        else:
            return True
        return False

    async def _rejected(self, run: TaskRun, error: BaseException) -> None:
        """A run its rate limit rejected: a one-shot task fails (``on_error`` gets the
        error); a recurring occurrence is skipped without counting."""
        if run.is_recurring:
            slot = getattr(error, "slot", None)
            log.warning(
                "Recurring task %s: an occurrence was skipped by its rate limit (%s).",
                run.id,
                error,
            )
            self._publish(
                run,
                EventKind.SKIPPED,
                _WARNING,
                f"An occurrence of recurring task {run.id} was skipped by its rate limit.",
                error,
            )
            now = self._clock.now()
            await self._recurring.skip_occurrence(run, max(slot or now, now))
            return
        handler: EverTaskHandler[Any] | None = run.handler
        run.handler = None
        try:
            if handler is None:
                handler = (run.descriptor.factory or run.descriptor.handler_class)()
            handler._evertask_task_id = run.id
        except Exception:
            log.exception("The handler of task %s could not be built for on_error.", run.id)
            handler = None
        await self._finish(run, handler, _Outcome.FAILED, error, None, 0.0, None)

    def _skip_cancelled(self, run: TaskRun) -> None:
        self._publish(
            run,
            EventKind.SKIPPED,
            _INFO,
            f"Task with id {run.id} is signaled to be cancelled and will not be executed.",
        )

    async def wait_idle(self, grace: float, interrupt: asyncio.Event | None = None) -> None:
        """Wait up to ``grace`` seconds for running executions to finish on their own, or
        until ``interrupt`` is set."""
        tasks = [e.task for e in self._inflight.running.values() if e.task is not None]
        if not tasks or grace <= 0:
            return
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(asyncio.wait(tasks))}
        if interrupt is not None:
            waiters.add(asyncio.ensure_future(interrupt.wait()))
        try:
            await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:  # (cancelling asyncio.wait leaves the runs alone)
                waiter.cancel()

    async def stop(self) -> None:
        """Cancel what still runs (it becomes ServiceStopped) and wait for it to end."""
        for execution in list(self._inflight.running.values()):
            execution.cancel(CancelReason.SHUTDOWN)
        pending = [e.task for e in self._inflight.running.values() if e.task is not None]
        if pending:
            _, late = await asyncio.wait(
                pending, timeout=max(5.0, self._options.shutdown_grace_period.total_seconds())
            )
            for task in late:  # still running after its token and task were cancelled
                task.cancel()
            if late:
                await asyncio.wait(late)
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._gate.clear()
        if self._gate.concurrency is not None:  # the cluster-wide slots this node held
            await self._gate.concurrency.release_all()

    # -- one delivery ----------------------------------------------------------------------
    def plan(self, run: TaskRun) -> Plan:
        """The run's retry policy and timeout (handler, then queue, then global); cached per
        handler and queue."""
        key = (run.descriptor, run.queue_name)
        cached = self._plans.get(key)
        if cached is None:
            desc = run.descriptor
            queue = self._queues.queues.get(run.queue_name, self._queues.default)
            policy = (
                desc.retry_policy
                or queue.config.default_retry_policy
                or self._options.default_retry_policy
            )
            timeout: timedelta | None = (
                desc.timeout or queue.config.default_timeout or self._options.default_timeout
            )
            seconds = None if timeout is None else timeout.total_seconds()
            cached = self._plans[key] = Plan(policy, seconds)
        return cached

    @staticmethod
    def _ended(exc: BaseException, execution: Execution) -> tuple[_Outcome, BaseException]:
        """The outcome of a run that raised ``exc``; a cancellation that is not the engine's
        (no cancel reason) propagates."""
        if isinstance(exc, asyncio.CancelledError | TaskCancelledError):
            reason = execution.cancel_reason
            if reason is None:
                if isinstance(exc, asyncio.CancelledError):
                    raise exc
                return _Outcome.FAILED, exc
            current = asyncio.current_task()
            if current is not None and isinstance(exc, asyncio.CancelledError):
                current.uncancel()
            if reason is CancelReason.USER:
                return _Outcome.CANCELLED, exc
            return _Outcome.SERVICE_STOPPED, exc
        if isinstance(exc, Exception):
            return _Outcome.FAILED, exc
        raise exc  # KeyboardInterrupt, SystemExit

    async def _run(self, run: TaskRun, execution: Execution) -> None:
        storage = self._storage if run.persisted else None
        tid = run.id
        level = run.audit_level
        desc = run.descriptor
        hooks = desc.hooks
        handler: EverTaskHandler[Any] | None = run.handler
        run.handler = None
        outcome = _Outcome.FAILED
        error: BaseException | None = None
        result: str | None = None  # the handler's JSON result
        start = time.perf_counter()
        scopes = self._observe(run) if self._observers else None
        capture = None
        pipelined = self._pipelined if storage is not None else None
        try:
            if handler is None:
                handler = (desc.factory or desc.handler_class)()
            handler._evertask_task_id = tid  # the handler builds its logger on first use
            if run.parent_task_id is not None and self.parent_results is not None:
                handler._evertask_parent = (run.parent_task_id, self.parent_results)
            if self.log_capture is not None:
                capture = self.log_capture.begin(run, handler)
            if storage is not None:
                if pipelined is None:
                    # the first attempt awaited here, as the Completed write's (below)
                    try:
                        await storage.set_in_progress(tid, level)
                    except Exception as exc:
                        await retry_write(exc, storage.set_in_progress, tid, level)
                elif not run.is_recurring and not wants_status_audit(level, _IN_PROGRESS, None):
                    # no InProgress audit row to keep: the write waits for the loop's next
                    # turn, and a handler done before then (it never waited) writes none
                    self._defer_in_progress(execution)
                else:
                    # the InProgress commit overlaps the handler; before the outcome is
                    # written it is withdrawn (still queued) or awaited, so statuses stay
                    # in order
                    try:
                        execution.in_progress = pipelined.begin_in_progress(tid, level)
                    except Exception:
                        await write_retrying(storage.set_in_progress, tid, level)
            if self._events.has_subscribers:
                self._publish(run, EventKind.STARTED, _INFO, f"Starting task with id {tid}.")
            if "on_started" in hooks:
                await self._hook(run, "on_started", handler.on_started(tid))
            plan = self.plan(run)
            start = time.perf_counter()
            execution.in_handler = True
            try:
                if execution.cancel_reason is not None:  # cancelled before the handler began
                    raise asyncio.CancelledError
                await plan.policy.execute(
                    self._attempt_fn(run, execution, handler, plan.timeout),
                    self._on_retry_fn(run, handler, execution),
                )
                value = execution.result
                if value is not None or desc.handler_class.result_type is not None:
                    result = result_json(desc, value)  # TaskResultError fails the run
                outcome = _Outcome.COMPLETED
            except BaseException as exc:
                outcome, error = self._ended(exc, execution)
            execution.in_handler = False
        except BaseException as exc:
            # around the handler: it could not be built, storage gave up, or a cancel came
            # while writing InProgress or in on_started
            outcome, error = self._ended(exc, execution)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        execution.deferred = False  # a deferred InProgress write not queued yet never is
        in_progress, execution.in_progress = execution.in_progress, None
        if (
            in_progress is not None
            and pipelined is not None  # (always, with in_progress)
            and (run.is_recurring or not pipelined.withdraw_in_progress(in_progress, level))
        ):
            try:
                await in_progress
            except Exception:
                await write_retrying(pipelined.set_in_progress, tid, level)
        logs = capture.finish() if capture is not None else None
        if scopes:
            self._finish_scopes(scopes, outcome, error, elapsed_ms)
        await self._finish(
            run, handler, outcome, error, execution.failures, elapsed_ms, logs, result
        )

    def _defer_in_progress(self, execution: Execution) -> None:
        """Queue the run's InProgress write at the loop's next turn, if it is still going
        then (a declared fast path of :class:`PipelinedStorage`: see docs/storage.md)."""
        assert self._loop is not None
        execution.deferred = True
        if not self._starting:
            self._loop.call_soon(self._begin_deferred)
        self._starting.append(execution)

    def _begin_deferred(self) -> None:
        """The deferred InProgress writes of the runs still going (one call a turn)."""
        starting, self._starting = self._starting, []
        pipelined = self._pipelined
        assert pipelined is not None and self._loop is not None
        for execution in starting:
            if not execution.deferred:  # its outcome came first
                continue
            run = execution.run
            try:
                execution.in_progress = pipelined.begin_in_progress(run.id, run.audit_level)
            except Exception as exc:  # written when the run ends, before its outcome
                failed = self._loop.create_future()
                failed.set_exception(exc)
                execution.in_progress = failed

    def _observe(self, run: TaskRun) -> list[ExecutionScope]:
        wait = time.perf_counter() - run.enqueued_at if run.enqueued_at else None
        scopes: list[ExecutionScope] = []
        for observer in self._observers:
            try:
                scope = observer.executing(run, wait)
            except Exception:
                log.exception("A task observer failed in executing().")
                continue
            if scope is not None:
                scopes.append(scope)
        run.scopes = scopes
        return scopes

    @staticmethod
    def _finish_scopes(
        scopes: list[ExecutionScope], outcome: _Outcome, error: BaseException | None, ms: float
    ) -> None:
        if outcome is _Outcome.FAILED and isinstance(error, TaskTimeoutError):
            public = Outcome.TIMEOUT
        else:
            public = _PUBLIC_OUTCOME[outcome]
        for scope in reversed(scopes):
            try:
                scope.finish(public, error, ms)
            except Exception:
                log.exception("A task observer failed in finish().")

    def _on_retry_fn(
        self, run: TaskRun, handler: EverTaskHandler[Any], execution: Execution
    ) -> Callable[[int, BaseException, timedelta], Awaitable[None]]:
        """The policy's ``on_retry`` for one run."""
        return functools.partial(self._on_retry, run, handler, execution)

    async def _on_retry(
        self,
        run: TaskRun,
        handler: EverTaskHandler[Any],
        execution: Execution,
        number: int,
        exc: BaseException,
        delay: timedelta,
    ) -> None:
        tid = run.id
        if execution.failures is None:
            execution.failures = []
        execution.failures.append(exc)
        for scope in run.scopes or ():
            try:
                scope.retry(number, exc, delay)
            except Exception:
                log.exception("A task observer failed in retry().")
        if log.isEnabledFor(logging.WARNING):
            log.warning(
                "Task %s retry attempt %d after %.0f ms: %r",
                tid,
                number,
                delay.total_seconds() * 1000,
                exc,
            )
        self._publish(
            run,
            EventKind.RETRY,
            _WARNING,
            f"Task {tid} retry attempt {number} after {delay.total_seconds() * 1000:.0f}ms",
            exc,
            attempt=number,
        )
        if "on_retry" in run.descriptor.hooks:
            await self._hook(run, "on_retry", handler.on_retry(tid, number, exc, delay))

    def _attempt_fn(
        self,
        run: TaskRun,
        execution: Execution,
        handler: EverTaskHandler[Any],
        timeout: float | None,
    ) -> Callable[[], Awaitable[None]]:
        """The policy's ``attempt`` for one run: the handler, with its timeout if any
        (and, for a rate-limited run with ``throttle_retries``, a budget per retry)."""
        attempt: Callable[[], Awaitable[None]]
        if timeout is None:
            attempt = functools.partial(self._invoke, run, execution, handler, None)
        else:
            attempt = functools.partial(self._invoke_with_timeout, run, execution, handler, timeout)
        policy = run.descriptor.rate_limit
        if policy is not None and policy.throttle_retries and run.rate_key:
            return self._gate.throttled_attempts(run, attempt)
        return attempt

    async def _invoke(
        self,
        run: TaskRun,
        execution: Execution,
        handler: EverTaskHandler[Any],
        timeout: float | None,
    ) -> None:
        """One attempt of the handler."""
        token: CancellationToken = execution
        if timeout is not None:  # a token of its own, so the timeout cancels this attempt only
            token = _attempt_token(execution)
        if run.descriptor.is_async:
            execution.result = await handler.handle(run.task, token)
        else:
            ctx = contextvars.copy_context()
            execution.result = await asyncio.get_running_loop().run_in_executor(
                self._threads, ctx.run, handler.handle, run.task, token
            )

    async def _invoke_with_timeout(
        self,
        run: TaskRun,
        execution: Execution,
        handler: EverTaskHandler[Any],
        timeout: float,
    ) -> None:
        """One attempt with its timeout: like ``asyncio.timeout()``, but the handler's token
        is cancelled before its task, so code that catches CancelledError already sees
        ``token.is_cancelled``."""
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def on_timeout() -> None:
            nonlocal expired
            expired = True
            if execution.attempt is not None:
                execution.attempt.cancel(f"Task {run.id} timed out after {timeout:g} s.")
            task.cancel()

        handle = asyncio.get_running_loop().call_later(timeout, on_timeout)
        try:
            await self._invoke(run, execution, handler, timeout)
            if expired and execution.cancel_reason is None:  # the handler swallowed it
                task.uncancel()
                raise _timed_out(run, timeout)
        except asyncio.CancelledError as exc:
            if expired and execution.cancel_reason is None:
                task.uncancel()
                raise _timed_out(run, timeout) from exc
            raise
        finally:
            handle.cancel()

    async def _finish(
        self,
        run: TaskRun,
        handler: EverTaskHandler[Any] | None,
        outcome: _Outcome,
        error: BaseException | None,
        failures: list[BaseException] | None,
        elapsed_ms: float,
        logs: Any,
        result: str | None = None,
    ) -> None:
        storage = self._storage if run.persisted else None
        released: Any = None  # continuations the terminal write released
        tid = run.id
        level = run.audit_level
        hooks = run.descriptor.hooks
        recurring = run.is_recurring
        if outcome is _Outcome.COMPLETED and self._cancels.is_stale(run):
            # a cancel raced the completion: the cancel wins
            outcome = _Outcome.CANCELLED
            log.info(
                "Task with id %s was cancelled during execution; the completion is suppressed.", tid
            )
        try:
            if storage is not None and logs:
                try:  # the first attempt awaited here, as the Completed write's (below)
                    await storage.save_execution_logs(tid, logs)
                except Exception as exc:
                    await retry_write(exc, storage.save_execution_logs, tid, logs)
            if outcome is _Outcome.COMPLETED:
                if storage is not None and not recurring:
                    owner, room = self.hand_over()
                    # the first attempt awaited here, not through write_retrying: every
                    # task makes this write, and that call's objects feed the collector
                    try:
                        released = await storage.set_completed(
                            tid, elapsed_ms, level, result, owner=owner, room=room
                        )
                    except Exception as exc:
                        released = await retry_write(
                            exc,
                            storage.set_completed,
                            tid,
                            elapsed_ms,
                            level,
                            result,
                            owner=owner,
                            room=room,
                        )
                if handler is not None and "on_completed" in hooks:
                    await self._hook(run, "on_completed", handler.on_completed(tid))
                if self._events.has_subscribers:
                    self._publish(
                        run,
                        EventKind.COMPLETED,
                        _INFO,
                        f"Task with id {tid} was completed in {elapsed_ms:.2f} ms.",
                        logs=logs,
                    )
            elif outcome is _Outcome.FAILED:
                assert error is not None
                text = format_exception(error, failures)
                if storage is not None:
                    owner, room = self.hand_over()
                    released = await write_retrying(
                        storage.set_status,
                        tid,
                        QueuedTaskStatus.FAILED,
                        text,
                        level,
                        elapsed_ms,
                        owner=owner,
                        room=room,
                    )
                timed_out = isinstance(error, TaskTimeoutError)
                message = (
                    f"Task with id {tid} timed out."
                    if timed_out
                    else f"Error occurred executing task with id {tid}."
                )
                log.error("%s %s: %s", message, type(error).__name__, error, exc_info=error)
                if handler is not None and "on_error" in hooks:
                    await self._hook(run, "on_error", handler.on_error(tid, error, message))
                self._publish(
                    run,
                    EventKind.TIMEOUT if timed_out else EventKind.FAILED,
                    _ERROR,
                    message,
                    error,
                    logs=logs,
                )
            else:
                user = outcome is _Outcome.CANCELLED
                message = (
                    f"Task with id {tid} was cancelled."
                    if user
                    else f"Task with id {tid} was cancelled by service while stopping."
                )
                if storage is not None:
                    if user:
                        await write_retrying(storage.set_cancelled_by_user, tid, level)
                    else:
                        await write_retrying(  # with how long it ran
                            storage.set_status,
                            tid,
                            QueuedTaskStatus.SERVICE_STOPPED,
                            "The service stopped while the task was running; "
                            "it resumes at the next start.",
                            level,
                            elapsed_ms,
                        )
                if handler is not None and "on_error" in hooks:
                    await self._hook(run, "on_error", handler.on_error(tid, error, message))
                self._publish(
                    run,
                    EventKind.CANCELLED if user else EventKind.SERVICE_STOPPED,
                    _WARNING,
                    message,
                    logs=logs,
                )
        finally:
            if handler is not None and "dispose" in hooks:
                await self._hook(run, "dispose", handler.dispose())
            if released and self.on_released is not None:
                self.on_released(released)
        if recurring and outcome in (_Outcome.COMPLETED, _Outcome.FAILED):
            await self._recurring.after_run(run, outcome is _Outcome.COMPLETED, elapsed_ms)

    async def _hook(self, run: TaskRun, name: str, awaitable: Awaitable[None] | None) -> None:
        try:
            if awaitable is not None:
                await awaitable
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = (
                f"Error occurred while executing the callback {name} of task with id {run.id}."
            )
            log.exception(message)
            self._publish(run, EventKind.CALLBACK_ERROR, _ERROR, message, exc)

    def _publish(
        self,
        run: TaskRun,
        kind: EventKind,
        severity: str,
        message: str,
        exc: BaseException | None = None,
        *,
        logs: Any = None,
        attempt: int | None = None,
    ) -> None:
        events = self._events
        if not events.has_subscribers:
            return
        desc = run.descriptor
        events.publish(
            TaskEvent(
                task_id=run.id,
                timestamp=self._clock.now(),
                severity=severity,
                kind=kind,
                task_type=desc.task_type_name,
                handler_type=desc.handler_type_name,
                parameters=run.task.model_dump_json(),
                message=message,
                queue_name=run.queue_name,
                exception=None if exc is None else format_exception(exc),
                execution_logs=tuple(logs) if logs else None,
                attempt=attempt,
            )
        )


def _timed_out(run: TaskRun, timeout: float) -> TaskTimeoutError:
    return TaskTimeoutError(
        f"Task {run.id} ({run.descriptor.task_class.__qualname__}) timed out "
        f"after {timeout:g} s (per-attempt timeout)."
    )


def _attempt_token(execution: Execution) -> CancellationToken:
    """A token of the attempt's own, cancelled with ``execution`` (kept out of
    ``WorkerExecutor._invoke`` so that its closure's cells are made only for a timeout)."""
    source = execution.attempt = CancellationTokenSource()
    execution.register(lambda: source.cancel(execution.reason))
    return source.token
