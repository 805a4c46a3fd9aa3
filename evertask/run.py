"""The in-memory unit of work that flows from dispatcher to scheduler to queue to worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evertask_abstractions import AuditLevel, EverTask

from .registry import HandlerDescriptor

if TYPE_CHECKING:
    from .scheduling import RecurringSchedule

__all__ = ["TaskRun"]


class TaskRun:
    """One delivery of a task: its payload, routing and schedule state (no I/O)."""

    __slots__ = (
        "audit_level",
        "current_run",
        "descriptor",
        "due_at",
        "enqueued_at",
        "execution_time",
        "generation",
        "handler",
        "id",
        "persisted",
        "queue_name",
        "schedule",
        "scopes",
        "task",
        "task_key",
        "trace_context",
    )

    def __init__(
        self,
        task_id: uuid.UUID,
        task: EverTask,
        descriptor: HandlerDescriptor,
        queue_name: str,
        audit_level: AuditLevel,
        persisted: bool = False,
        execution_time: datetime | None = None,
        schedule: RecurringSchedule | None = None,
        current_run: int = 0,
        task_key: str | None = None,
        trace_context: str | None = None,
        handler: Any = None,
    ) -> None:
        # no keyword-only parameters: a call passing them positionally (the dispatcher's
        # hot path passes ``persisted`` so) is about twice as fast as one with keywords
        self.id = task_id
        self.task = task
        self.descriptor = descriptor
        self.queue_name = queue_name
        self.audit_level = audit_level
        self.execution_time = execution_time
        self.schedule = schedule
        self.current_run = current_run
        self.task_key = task_key
        self.persisted = persisted
        self.trace_context = trace_context
        self.handler = handler
        self.enqueued_at = 0.0
        self.due_at: datetime | None = None  # the time the scheduler fired this run for
        self.generation = 0  # bumped by cancel: deliveries of an older generation are dropped
        self.scopes: list[Any] | None = None  # observer scopes of the running execution

    @property
    def is_recurring(self) -> bool:
        """Whether this run belongs to a recurring series."""
        return self.schedule is not None and self.schedule.is_recurring

    def __repr__(self) -> str:
        return f"TaskRun({self.id}, {self.descriptor.task_type_name}, queue={self.queue_name!r})"
