"""Row builders for the storage tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from evertask.ids import uuid7
from evertask.storage import QueuedTask
from evertask_abstractions import AuditLevel, QueuedTaskStatus


def row(
    created: datetime,
    *,
    status: QueuedTaskStatus = QueuedTaskStatus.WAITING_QUEUE,
    task_id: uuid.UUID | None = None,
    **fields: Any,
) -> QueuedTask:
    """A task row with sensible defaults (WaitingQueue, audit Full)."""
    values: dict[str, Any] = {
        "id": task_id or uuid7(),
        "type": "tests.Ping",
        "request": '{"n": 1}',
        "handler": "tests.PingHandler",
        "status": status,
        "created_at_utc": created,
        "audit_level": AuditLevel.FULL,
    }
    values.update(fields)
    return QueuedTask(**values)


def recurring(created: datetime, next_run: datetime, **fields: Any) -> QueuedTask:
    """A recurring row with a next run."""
    values: dict[str, Any] = {
        "is_recurring": True,
        "recurring_task": '{"every": "1m"}',
        "recurring_info": "every minute",
        "current_run_count": 0,
        "next_run_utc": next_run,
        "queue_name": "recurring",
    }
    values.update(fields)
    return row(created, **values)
