"""What a test host saw: every dispatch and every execution, recorded by an observer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from evertask_abstractions import EverTask

from ..clock import Clock
from ..observe import Outcome
from ..run import TaskRun

__all__ = ["DispatchedTask", "ExecutedTask", "Recorder"]


@dataclass(frozen=True, slots=True)
class DispatchedTask:
    """One accepted dispatch (``host.dispatched``), from a test or from a handler."""

    task_id: uuid.UUID
    """The id the dispatch returned (an existing one for a task key that was re-used)."""
    task: EverTask
    """The task instance as dispatched (its payload)."""
    dispatched_at: datetime
    """The manual clock's time of the dispatch."""
    kind: str
    """``"immediate"``, ``"delayed"`` (a ``timedelta``), ``"scheduled"`` (an instant, or a
    one-shot schedule), ``"recurring"``, ``"continuation"`` (``after=``), ``"batch"`` (a
    member of ``dispatch_batch``) or ``"workflow"`` (a step of ``dispatch_workflow``)."""
    scheduled_for: datetime | None
    """When it was set to run (the first occurrence of a recurring task); ``None``: at once."""
    schedule: str | None = None
    """The schedule's description (``str(schedule)``), if a schedule was given."""
    task_key: str | None = None
    queue_name: str = "default"

    @property
    def task_type(self) -> type[EverTask]:
        """The task's class."""
        return type(self.task)

    @property
    def due_at(self) -> datetime:
        """When it was set to run: ``scheduled_for``, or the dispatch time for an immediate
        task (what ``assert_dispatched(..., at=)`` compares)."""
        return self.scheduled_for or self.dispatched_at

    @property
    def is_recurring(self) -> bool:
        """Whether it registered a recurring series."""
        return self.kind == "recurring"

    def describe(self) -> str:
        """One readable line (used in assertion messages)."""
        when = self.dispatched_at.isoformat()
        if self.scheduled_for is not None and self.scheduled_for != self.dispatched_at:
            when += f", to run at {self.scheduled_for.isoformat()}"
        extra = f", schedule {self.schedule!r}" if self.is_recurring and self.schedule else ""
        key = f", key {self.task_key!r}" if self.task_key else ""
        return f"{self.task!r} {self.kind}, dispatched {when}{extra}{key} (id {self.task_id})"


@dataclass(frozen=True, slots=True)
class ExecutedTask:
    """One execution (one delivery, with all its attempts) that ended (``host.executions``)."""

    task_id: uuid.UUID
    task: EverTask
    outcome: Outcome
    """``COMPLETED``, ``FAILED``, ``TIMEOUT``, ``CANCELLED`` or ``SERVICE_STOPPED``."""
    error: BaseException | None
    """The last attempt's exception (``None`` when it completed)."""
    started_at: datetime
    """The manual clock's time when the execution began."""
    finished_at: datetime
    """The manual clock's time when it ended (later than ``started_at`` after retries
    waited on the clock)."""
    scheduled_for: datetime | None
    """The time this occurrence was due (``None``: an immediate task)."""
    retries: tuple[timedelta, ...] = field(default=())
    """The delay before each retry, in order (empty: the first attempt decided)."""

    @property
    def task_type(self) -> type[EverTask]:
        """The task's class."""
        return type(self.task)

    @property
    def attempts(self) -> int:
        """How many times the handler ran."""
        return len(self.retries) + 1

    @property
    def succeeded(self) -> bool:
        """Whether the execution completed."""
        return self.outcome is Outcome.COMPLETED

    def describe(self) -> str:
        """One readable line (used in assertion messages)."""
        error = f": {type(self.error).__name__}: {self.error}" if self.error is not None else ""
        tries = f" after {self.attempts} attempts" if self.retries else ""
        return (
            f"{self.task!r} {self.outcome.value}{tries}{error}, started "
            f"{self.started_at.isoformat()} (id {self.task_id})"
        )


class _Dispatch:
    """The scope of one dispatch: it is recorded unless the dispatch fails."""

    __slots__ = ("recorder", "run")

    def __init__(self, recorder: Recorder, run: TaskRun) -> None:
        self.recorder, self.run = recorder, run

    def finish(self, error: BaseException | None) -> None:
        self.recorder._dispatch_finished(self.run, error)


class _Execution:
    """The scope of one execution: its retries, then its outcome."""

    __slots__ = ("recorder", "retries", "run", "started_at")

    def __init__(self, recorder: Recorder, run: TaskRun, started_at: datetime) -> None:
        self.recorder, self.run, self.started_at = recorder, run, started_at
        self.retries: list[timedelta] = []

    def retry(self, attempt: int, exception: BaseException, delay: timedelta) -> None:
        self.retries.append(delay)

    def finish(self, outcome: Outcome, error: BaseException | None, elapsed_ms: float) -> None:
        self.recorder._executed(self, outcome, error)


class Recorder:
    """A task observer keeping every dispatch and execution of one host, in order."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.dispatched: list[DispatchedTask] = []
        self.executions: list[ExecutedTask] = []
        self._pending: dict[int, int] = {}  # id(run) -> index of its record, until finished

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.dispatched.clear()
        self.executions.clear()
        self._pending.clear()

    # -- TaskObserver ------------------------------------------------------------------------
    def dispatching(self, run: TaskRun, kind: str) -> _Dispatch:
        """Record the dispatch now (a dispatch without a scope, e.g. ``retry``, stays)."""
        self._pending[id(run)] = len(self.dispatched)
        self.dispatched.append(self._record(run, kind))
        return _Dispatch(self, run)

    def executing(self, run: TaskRun, queue_wait_s: float | None) -> _Execution:
        """Follow one execution."""
        return _Execution(self, run, self._clock.now())

    # -- internals ---------------------------------------------------------------------------
    def _record(self, run: TaskRun, kind: str) -> DispatchedTask:
        schedule = run.schedule
        return DispatchedTask(
            task_id=run.id,
            task=run.task,
            dispatched_at=self._clock.now(),
            kind=kind,
            scheduled_for=run.execution_time,
            schedule=None if schedule is None else str(schedule),
            task_key=run.task_key,
            queue_name=run.queue_name,
        )

    def _dispatch_finished(self, run: TaskRun, error: BaseException | None) -> None:
        index = self._pending.pop(id(run), None)
        if index is None or index >= len(self.dispatched):
            return  # cleared meanwhile
        record = self.dispatched[index]
        if error is not None:
            del self.dispatched[index]
            self._pending = {k: i - (i > index) for k, i in self._pending.items()}
            return
        # the dispatcher may settle the time after observing (a recurring run due now)
        self.dispatched[index] = replace(record, scheduled_for=run.execution_time)

    def _executed(self, scope: _Execution, outcome: Outcome, error: BaseException | None) -> None:
        run = scope.run
        self.executions.append(
            ExecutedTask(
                task_id=run.id,
                task=run.task,
                outcome=outcome,
                error=error,
                started_at=scope.started_at,
                finished_at=self._clock.now(),
                scheduled_for=run.execution_time,
                retries=tuple(scope.retries),
            )
        )
