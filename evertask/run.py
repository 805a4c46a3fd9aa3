"""The in-memory unit of work that flows from dispatcher to scheduler to queue to worker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evertask_abstractions import AuditLevel, EverTask

from .registry import HandlerDescriptor

if TYPE_CHECKING:
    from .scheduling import RecurringSchedule

__all__ = ["TaskRun"]


@dataclass(slots=True, kw_only=True, eq=False)
class TaskRun:
    """One delivery of a task: its payload, routing and schedule state (no I/O)."""

    id: uuid.UUID
    task: EverTask
    descriptor: HandlerDescriptor
    queue_name: str
    audit_level: AuditLevel
    persisted: bool = False
    """Whether the task has a stored row (status writes go to storage)."""
    execution_time: datetime | None = None
    """When this occurrence is due (``None``: now)."""
    schedule: RecurringSchedule | None = None
    current_run: int = 0
    task_key: str | None = None
    trace_context: str | None = None
    handler: Any = None
    """A handler resolved at dispatch (eager resolution), taken by the executor."""
    generation: int = 0
    """The id's cancel count when this run was made: an older generation is stale."""
    enqueued_at: float = 0.0
    due_at: datetime | None = None
    """The time the scheduler fired this run for."""
    scopes: list[Any] | None = field(default=None, repr=False)
    """Observer scopes of the running execution."""
    rate_key: str | None = None
    """The rate-limit key, once resolved ("" : not rate limited)."""
    admitted: bool = False
    """Passed the throttle gate (its budget is spent; a concurrency wait does not re-ask)."""
    permit: bool = False
    """Holds one of its handler's ``max_concurrency`` permits."""
    parent_task_id: uuid.UUID | None = None
    """A continuation's parent (its handler reads it through ``parent_result``)."""

    @property
    def is_recurring(self) -> bool:
        """Whether this run belongs to a recurring series."""
        return self.schedule is not None and self.schedule.is_recurring

    def next_occurrence(self, execution_time: datetime, current_run: int) -> TaskRun:
        """The run of the same series' next occurrence."""
        return TaskRun(
            id=self.id,
            task=self.task,
            descriptor=self.descriptor,
            queue_name=self.queue_name,
            audit_level=self.audit_level,
            persisted=self.persisted,
            execution_time=execution_time,
            schedule=self.schedule,
            current_run=current_run,
            task_key=self.task_key,
            trace_context=self.trace_context,
            generation=self.generation,
        )

    def __repr__(self) -> str:
        return f"TaskRun({self.id}, {self.descriptor.task_type_name}, queue={self.queue_name!r})"
