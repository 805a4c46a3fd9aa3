"""Retention: delete old audit rows, old or surplus execution logs, and finished tasks.

A :class:`RetentionPolicy` says what to keep; ``storage.cleanup(policy, now)`` applies it
once, in batches; :class:`RetentionComponent` applies it periodically inside a host
(``builder.add_component(RetentionComponent(None, policy))``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, Self

from evertask_abstractions import ConfigurationError

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
    """What the cleanup deletes (every knob is off by default).

    - ``status_audit_retention_days``: status-audit rows older than this go.
    - ``runs_audit_retention_days``: runs-audit rows older than this go.
    - ``error_audit_retention_days``: audit rows of errors (Failed, or with an exception)
      are kept this long instead (a longer window keeps failures around longer).
    - ``execution_log_retention_days``: captured logs older than this go.
    - ``max_execution_logs_per_task``: keep only the newest N logs of each task.
    - ``delete_completed_tasks_after_retention``: delete one-shot Completed tasks that
      finished before the longest audit window and have no audit rows or logs left.
    - ``batch_size``: rows per delete statement (each batch is its own transaction).

    A knob that is set must be positive; anything else is a configuration error.
    """

    status_audit_retention_days: float | None = None
    runs_audit_retention_days: float | None = None
    error_audit_retention_days: float | None = None
    execution_log_retention_days: float | None = None
    max_execution_logs_per_task: int | None = None
    delete_completed_tasks_after_retention: bool = False
    batch_size: int = 100

    def __post_init__(self) -> None:
        for name in (
            "status_audit_retention_days",
            "runs_audit_retention_days",
            "error_audit_retention_days",
            "execution_log_retention_days",
            "max_execution_logs_per_task",
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"RetentionPolicy.{name} must be a number, got {value!r}.")
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(
                    f"RetentionPolicy.{name} must be positive, got {value!r}; use None to keep "
                    "those rows forever."
                )
        if isinstance(self.max_execution_logs_per_task, float):
            raise ConfigurationError("RetentionPolicy.max_execution_logs_per_task must be an int.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigurationError(
                f"RetentionPolicy.batch_size must be a positive int, got {self.batch_size!r}."
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


@dataclass(slots=True)
class RetentionResult:
    """Rows deleted by one cleanup."""

    status_audits: int = 0
    runs_audits: int = 0
    execution_logs: int = 0
    tasks: int = 0

    @property
    def total(self) -> int:
        """All rows deleted."""
        return self.status_audits + self.runs_audits + self.execution_logs + self.tasks


DeleteBatch = Callable[[str, dict[str, Any]], Awaitable[int]]
"""Runs one batch of a named retention delete; returns the rows deleted."""
TasksOverLogLimit = Callable[[int, int], Awaitable[list[uuid.UUID]]]
"""``(keep, batch)`` -> ids of tasks with more than ``keep`` logs (at most ``batch``)."""


async def apply_retention(
    policy: RetentionPolicy,
    now: datetime,
    delete: DeleteBatch,
    tasks_over_log_limit: TasksOverLogLimit,
) -> RetentionResult:
    """Apply ``policy`` as of ``now`` with the storage's batched deletes.

    Each named delete (see ``retention_statements``) is repeated until a batch deletes
    fewer rows than the batch size.
    """
    batch = policy.batch_size
    result = RetentionResult()

    async def drain(statement: str, **params: Any) -> int:
        total = 0
        while True:
            deleted = await delete(statement, {**params, "batch": batch})
            total += deleted
            if deleted < batch:
                return total

    def cutoff(days: float) -> datetime:
        return now - timedelta(days=days)

    status_days = policy.status_audit_retention_days
    runs_days = policy.runs_audit_retention_days
    error_days = policy.error_audit_retention_days
    if status_days is not None:
        result.status_audits += await drain(
            "delete_status_audits_success", cutoff=cutoff(status_days)
        )
    status_error_days = error_days if error_days is not None else status_days
    if status_error_days is not None:
        result.status_audits += await drain(
            "delete_status_audits_error", cutoff=cutoff(status_error_days)
        )
    if runs_days is not None:
        result.runs_audits += await drain("delete_runs_audits_success", cutoff=cutoff(runs_days))
    runs_error_days = error_days if error_days is not None else runs_days
    if runs_error_days is not None:
        result.runs_audits += await drain(
            "delete_runs_audits_error", cutoff=cutoff(runs_error_days)
        )
    if policy.execution_log_retention_days is not None:
        result.execution_logs += await drain(
            "delete_logs_before", cutoff=cutoff(policy.execution_log_retention_days)
        )
    keep = policy.max_execution_logs_per_task
    if keep is not None:
        while True:
            task_ids = await tasks_over_log_limit(keep, batch)
            deleted = 0
            for task_id in task_ids:
                deleted += await drain("delete_logs_over_limit", id=task_id, keep=keep)
            result.execution_logs += deleted
            if deleted == 0:  # none left over the limit (or none could be trimmed)
                break
    window = policy.longest_audit_window_days()
    if policy.delete_completed_tasks_after_retention and window is not None:
        result.tasks += await drain("delete_completed_tasks", cutoff=cutoff(window))
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
