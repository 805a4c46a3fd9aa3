"""Retention: delete old audit rows, old or surplus execution logs, and finished tasks.

A :class:`RetentionPolicy` says what to keep; ``storage.cleanup(policy, now)`` applies it
once, in short batches paced so task writes keep going; :class:`RetentionComponent`
applies it periodically inside a host (``builder.add_component(RetentionComponent(None,
policy))``). With several hosts on one database, one of them cleans at a time (a lease
in ``MaintenanceLeases``); the others skip that run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, Self

from evertask_abstractions import ConfigurationError

from .ops import Op
from .retention_ops import AuditBatchOp, Batch, DeleteBatchOp, LogBatchOp, TaskBatchOp

if TYPE_CHECKING:
    from evertask.host import EverTaskHost

__all__ = [
    "RetentionComponent",
    "RetentionPolicy",
    "RetentionResult",
    "SupportsCleanup",
    "apply_retention",
]

log = logging.getLogger("evertask.storage.retention")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What the cleanup deletes (every knob is off by default), and how fast.

    - ``status_audit_retention_days``: status-audit rows older than this go.
    - ``runs_audit_retention_days``: runs-audit rows older than this go.
    - ``error_audit_retention_days``: audit rows of errors (Failed, or with an exception)
      are kept this long instead (a longer window keeps failures around longer).
    - ``execution_log_retention_days``: captured logs older than this go.
    - ``max_execution_logs_per_task``: keep only the newest N logs of each task.
    - ``delete_completed_tasks_after_retention``: delete one-shot Completed tasks, with
      their audits and logs, once they finished before the longest of the audit and log
      windows (without a log window, tasks that own logs are kept, with their logs), and
      the batch and workflow records that finished before it.
    - ``batch_size``: most rows one batch walks (each batch is its own transaction).
    - ``batch_seconds``: the time a batch aims at (``None``: the storage's own, 5 ms on
      SQLite, whose single writer the batches share with task writes, 50 ms elsewhere);
      batches shrink or grow to it, and the cleanup rests as long as each batch took, so
      task writes keep at least half of the database's time.
    - ``max_rows_per_second``: an upper bound on the deletion rate (``None``: none).

    A knob that is set must be positive; anything else is a configuration error.
    """

    status_audit_retention_days: float | None = None
    runs_audit_retention_days: float | None = None
    error_audit_retention_days: float | None = None
    execution_log_retention_days: float | None = None
    max_execution_logs_per_task: int | None = None
    delete_completed_tasks_after_retention: bool = False
    batch_size: int = 1000
    batch_seconds: float | None = None
    max_rows_per_second: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "status_audit_retention_days",
            "runs_audit_retention_days",
            "error_audit_retention_days",
            "execution_log_retention_days",
            "max_execution_logs_per_task",
            "max_rows_per_second",
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"RetentionPolicy.{name} must be a number, got {value!r}.")
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(
                    f"RetentionPolicy.{name} must be positive, got {value!r}; use None for "
                    "no limit."
                )
        if isinstance(self.max_execution_logs_per_task, float):
            raise ConfigurationError("RetentionPolicy.max_execution_logs_per_task must be an int.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigurationError(
                f"RetentionPolicy.batch_size must be a positive int, got {self.batch_size!r}."
            )
        seconds = self.batch_seconds
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds <= 60
        ):  # (None: the storage's own)
            raise ConfigurationError(
                f"RetentionPolicy.batch_seconds must be a number of seconds in (0, 60], got "
                f"{seconds!r}."
            )
        if self.delete_completed_tasks_after_retention and self.longest_audit_window_days() is None:
            raise ConfigurationError(
                "RetentionPolicy.delete_completed_tasks_after_retention needs an audit window: "
                "set status_audit_retention_days, runs_audit_retention_days or "
                "error_audit_retention_days."
            )

    @classmethod
    def with_uniform_retention(cls, days: float, *, delete_completed_tasks: bool = False) -> Self:
        """Keep audits and logs for ``days``; optionally delete completed tasks after."""
        return cls(
            status_audit_retention_days=days,
            runs_audit_retention_days=days,
            execution_log_retention_days=days,
            delete_completed_tasks_after_retention=delete_completed_tasks,
        )

    @classmethod
    def with_error_priority(cls, success_days: float, error_days: float) -> Self:
        """Keep successful audit rows ``success_days`` and error rows ``error_days``."""
        return cls(
            status_audit_retention_days=success_days,
            runs_audit_retention_days=success_days,
            error_audit_retention_days=error_days,
        )

    def longest_audit_window_days(self) -> float | None:
        """The longest audit retention window that is set, or ``None``."""
        windows = [
            d
            for d in (
                self.status_audit_retention_days,
                self.runs_audit_retention_days,
                self.error_audit_retention_days,
            )
            if d is not None
        ]
        return max(windows) if windows else None

    def task_window_days(self) -> float | None:
        """How long a Completed task is kept when tasks are deleted: the longest of the
        audit and log windows (``None`` when tasks are kept)."""
        audit = self.longest_audit_window_days()
        if not self.delete_completed_tasks_after_retention or audit is None:
            return None
        return max(audit, self.execution_log_retention_days or 0)


@dataclass(slots=True)
class RetentionResult:
    """Rows deleted by one cleanup (``skipped``: another node was cleaning)."""

    status_audits: int = 0
    runs_audits: int = 0
    execution_logs: int = 0
    tasks: int = 0
    batches: int = 0
    """Finished batch and workflow records (deleted with the tasks, on the same window)."""
    skipped: bool = False

    @property
    def total(self) -> int:
        """All rows deleted (a task's cascaded audits and logs count with the task)."""
        return self.status_audits + self.runs_audits + self.execution_logs + self.tasks


RunBatch = Callable[[Op], Awaitable[Any]]
"""Runs one retention operation in its own short transaction; returns its outcome."""
TasksOverLogLimit = Callable[[int, uuid.UUID, int], Awaitable[list[uuid.UUID]]]
"""``(keep, after, batch)`` -> ids above ``after`` of tasks with more than ``keep`` logs."""
KeepGoing = Callable[[], Awaitable[bool]]
"""Called between batches: ``False`` stops the cleanup (the node lost its lease)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_ID = uuid.UUID(int=0)


class _Pacer:
    """Sizes batches to ``batch_seconds`` and rests between them (see the policy)."""

    def __init__(
        self,
        policy: RetentionPolicy,
        batch_seconds: float,
        keep_going: KeepGoing,
        sleep: Callable[[float], Awaitable[None]],
        monotonic: Callable[[], float],
    ) -> None:
        self.take = min(policy.batch_size, 100)
        self._most = policy.batch_size
        self._target = policy.batch_seconds or batch_seconds
        self._rate = policy.max_rows_per_second
        self._keep_going = keep_going
        self._sleep = sleep
        self._clock = monotonic
        self._started = monotonic()
        self._deleted = 0
        self.stopped = False

    async def run(self, op: Op, run: RunBatch) -> Batch:
        begun = self._clock()
        batch: Batch = await run(op)
        took = self._clock() - begun
        if took > self._target:
            self.take = max(1, int(self.take * self._target / took))
        elif took < self._target / 2:
            self.take = min(self._most, self.take * 2)
        self._deleted += batch.deleted
        rest = took
        if self._rate is not None:  # no faster than the rate since the cleanup began
            due = self._started + self._deleted / self._rate
            rest = max(rest, due - self._clock())
        if not batch.done:
            await self._sleep(rest)
            if not await self._keep_going():
                self.stopped = True
        return batch


def _audit_batch(
    table: str, cutoff: datetime, error_cutoff: datetime, stop: datetime, after: int, take: int
) -> Op:
    return AuditBatchOp(table, after, take, cutoff, error_cutoff, stop)


async def _keep_going() -> bool:
    return True


async def apply_retention(
    policy: RetentionPolicy,
    now: datetime,
    run: RunBatch,
    tasks_over_log_limit: TasksOverLogLimit,
    *,
    keep_going: KeepGoing = _keep_going,
    batch_seconds: float = 0.05,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RetentionResult:
    """Apply ``policy`` as of ``now``, one short transaction per batch (aiming at
    ``batch_seconds`` unless the policy says otherwise).

    Order: old Completed tasks with their audits and logs first (the rest then has less
    to walk), then the remaining audits, logs by age, and logs over the per-task limit.
    """
    result = RetentionResult()
    pacer = _Pacer(policy, batch_seconds, keep_going, sleep, monotonic)

    def cutoff(days: float | None) -> datetime:
        return _EPOCH if days is None else now - timedelta(days=days)

    async def walk(make: Callable[[Any, int], Op], start: Any) -> int:
        deleted, cursor = 0, start
        while not pacer.stopped:
            batch = await pacer.run(make(cursor, pacer.take), run)
            deleted, cursor = deleted + batch.deleted, batch.cursor
            if batch.done:
                break
        return deleted

    task_days = policy.task_window_days()
    if task_days is not None:
        tasks_cutoff = cutoff(task_days)
        keep_logged = policy.execution_log_retention_days is None
        result.tasks = await walk(
            lambda after, take: TaskBatchOp(after, take, tasks_cutoff, keep_logged),
            (_EPOCH, _NO_ID),
        )
        result.batches = int(
            await run(DeleteBatchOp("delete_finished_batches", {"cutoff": tasks_cutoff}))
        )
    error_days = policy.error_audit_retention_days
    for table, days, attribute in (
        ("status_audits", policy.status_audit_retention_days, "status_audits"),
        ("runs_audits", policy.runs_audit_retention_days, "runs_audits"),
    ):
        if days is None and error_days is None:
            continue
        success_cutoff = cutoff(days)
        error_cutoff = cutoff(error_days if error_days is not None else days)
        audits = functools.partial(
            _audit_batch, table, success_cutoff, error_cutoff, max(success_cutoff, error_cutoff)
        )
        setattr(result, attribute, await walk(audits, 0))
    if policy.execution_log_retention_days is not None:
        logs_cutoff = cutoff(policy.execution_log_retention_days)
        result.execution_logs += await walk(
            lambda after, take: LogBatchOp(after, take, logs_cutoff), _NO_ID
        )
    keep = policy.max_execution_logs_per_task
    if keep is not None:
        after = _NO_ID
        while not pacer.stopped:
            task_ids = await tasks_over_log_limit(keep, after, policy.batch_size)
            for task_id in task_ids:
                while True:
                    op = DeleteBatchOp(
                        "delete_logs_over_limit",
                        {"id": task_id, "keep": keep, "batch": policy.batch_size},
                    )
                    deleted = int(await run(op))
                    result.execution_logs += deleted
                    if deleted < policy.batch_size:
                        break
            if len(task_ids) < policy.batch_size:
                break
            after = task_ids[-1]
    return result


class SupportsCleanup(Protocol):
    """A storage with a retention cleanup (the SQL storages)."""

    async def cleanup(
        self, policy: RetentionPolicy, now: datetime | None = None
    ) -> RetentionResult:
        """Apply ``policy`` once."""
        ...


class RetentionComponent:
    """Runs ``storage.cleanup(policy)`` every ``interval`` while the host runs.

    Pass ``storage=None`` to use the host's storage. Add it with
    ``builder.add_component(RetentionComponent(None, policy))``; the first cleanup runs
    after ``initial_delay``. A failed cleanup is logged and retried at the next interval.
    """

    def __init__(
        self,
        storage: SupportsCleanup | None,
        policy: RetentionPolicy,
        interval: timedelta = timedelta(hours=24),
        *,
        initial_delay: timedelta = timedelta(minutes=1),
    ) -> None:
        if interval <= timedelta(0):
            raise ConfigurationError(f"The retention interval must be positive, got {interval}.")
        if initial_delay < timedelta(0):
            raise ConfigurationError(
                f"The retention initial delay must not be negative, got {initial_delay}."
            )
        self.policy = policy
        self.interval = interval
        self.initial_delay = initial_delay
        self.last_result: RetentionResult | None = None
        self.runs = 0
        self._storage = storage
        self._task: asyncio.Task[None] | None = None

    async def start(self, host: EverTaskHost) -> None:
        """Start the periodic cleanup."""
        storage: Any = self._storage if self._storage is not None else host.storage
        if storage is None or not callable(getattr(storage, "cleanup", None)):
            raise ConfigurationError(
                "RetentionComponent needs a SQL storage with cleanup() (SQLite, PostgreSQL, ...); "
                f"the host uses {type(storage).__name__}."
            )
        self._storage = storage
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="evertask-retention"
            )

    async def stop(self) -> None:
        """Stop (an in-flight cleanup batch is abandoned and retried next time)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run_once(self) -> RetentionResult:
        """Clean up now."""
        storage = self._storage
        if storage is None:
            raise ConfigurationError("RetentionComponent has no storage; start it with a host.")
        result = await storage.cleanup(self.policy)
        self.last_result = result
        self.runs += 1
        if result.skipped:
            log.info("Retention cleanup skipped: another host is cleaning the database.")
            return result
        log.info(
            "Retention cleanup deleted %d status audits, %d runs audits, %d execution logs, "
            "%d tasks.",
            result.status_audits,
            result.runs_audits,
            result.execution_logs,
            result.tasks,
        )
        return result

    async def _loop(self) -> None:
        await asyncio.sleep(self.initial_delay.total_seconds())
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Retention cleanup failed; retrying in %s.", self.interval)
            await asyncio.sleep(self.interval.total_seconds())
