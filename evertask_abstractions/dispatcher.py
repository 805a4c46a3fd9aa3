"""The dispatcher contract: what handlers and applications call to run tasks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeAlias, runtime_checkable

from .enums import AuditLevel, ContinueWhen
from .recurring import RecurringTaskBuilder
from .task import EverTask
from .workflow import BatchInfo, Workflow

__all__ = ["TaskDispatcher", "When"]

When: TypeAlias = timedelta | datetime | Callable[[RecurringTaskBuilder], object] | None
"""``None`` (now), a delay, an aware instant, or a recurring-schedule callable."""


@runtime_checkable
class TaskDispatcher(Protocol):
    """Dispatches tasks; every method returns once the task is durably persisted."""

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
        """Run ``task`` now, after a delay, at an aware instant, or on a recurring schedule;
        with ``after=parent_id``, once that task has finished as ``continue_when`` asks.

        Returns the task id (a time-ordered UUIDv7) once the task row is committed.
        """
        ...

    async def get_result(self, task_id: uuid.UUID, result_type: Any = Any) -> Any:
        """A completed task's result, validated as ``result_type``; raises
        ``TaskResultError`` when the task has none (not completed, failed, cancelled)."""
        ...

    async def dispatch_batch(
        self,
        tasks: Sequence[EverTask],
        *,
        name: str | None = None,
        audit_level: AuditLevel | None = None,
    ) -> uuid.UUID:
        """Dispatch ``tasks`` as one batch, all or none in one transaction; returns the
        batch id (for ``get_batch``, ``cancel_batch`` and ``dispatch(..., after=batch_id)``)."""
        ...

    async def dispatch_workflow(
        self, workflow: Workflow, *, audit_level: AuditLevel | None = None
    ) -> uuid.UUID:
        """Dispatch every step of ``workflow`` as one unit; returns the workflow id."""
        ...

    async def get_batch(self, batch_id: uuid.UUID) -> BatchInfo:
        """A batch's or workflow's progress; ``TaskNotFoundError`` if there is none."""
        ...

    async def cancel_batch(self, batch_id: uuid.UUID) -> None:
        """Cancel a batch or workflow: its pending members, its running ones, and the
        continuations waiting for it."""
        ...

    def dispatch_sync(
        self,
        task: EverTask,
        when: When = None,
        *,
        task_key: str | None = None,
        audit_level: AuditLevel | None = None,
        timeout: float | None = None,
    ) -> uuid.UUID:
        """:meth:`dispatch` from any thread that is not the host's event loop thread."""
        ...

    async def cancel(self, task_id: uuid.UUID) -> None:
        """Cancel a queued, scheduled, recurring or running task (unknown ids are ignored)."""
        ...
