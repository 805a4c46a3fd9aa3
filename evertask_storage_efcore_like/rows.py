"""Database rows to the storage models."""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from evertask.storage.models import (
    NodeInfo,
    QueuedTask,
    RunsAudit,
    StatusAudit,
    TaskBatch,
    TaskExecutionLog,
)
from evertask_abstractions import AuditLevel, BatchKind, BatchStatus, QueuedTaskStatus

__all__ = [
    "TASK_ATTRIBUTES",
    "as_datetime",
    "as_uuid",
    "batch_params",
    "node_queues",
    "task_params",
    "to_batch",
    "to_log",
    "to_node",
    "to_runs_audit",
    "to_status_audit",
    "to_task",
]

_STATUS = {s.value: s for s in QueuedTaskStatus}
_LEVEL = {int(a): a for a in AuditLevel}


def as_datetime(value: Any) -> datetime:
    """A datetime as a driver returned it (SQLite: ISO text; some: naive UTC), aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is UTC:  # (as SQLAlchemy reads it)
        return value  # type: ignore[no-any-return]
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def as_uuid(value: Any) -> uuid.UUID:
    """A UUID as a driver returned it (text or native)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _time(value: Any) -> datetime | None:
    return None if value is None else as_datetime(value)


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else as_uuid(value)


TASK_ATTRIBUTES: dict[str, str] = {
    "Id": "id",
    "Type": "type",
    "Request": "request",
    "Handler": "handler",
    "Status": "status.value",
    "CreatedAtUtc": "created_at_utc",
    "QueueName": "queue_name",
    "AuditLevel": "audit_level.value",
    "ScheduledExecutionUtc": "scheduled_execution_utc",
    "LastExecutionUtc": "last_execution_utc",
    "ExecutionTimeMs": "execution_time_ms",
    "Exception": "exception",
    "IsRecurring": "is_recurring",
    "RecurringTask": "recurring_task",
    "RecurringInfo": "recurring_info",
    "CurrentRunCount": "current_run_count",
    "MaxRuns": "max_runs",
    "RunUntil": "run_until",
    "NextRunUtc": "next_run_utc",
    "TaskKey": "task_key",
    "RecoveryDispatchFailureCount": "recovery_dispatch_failure_count",
    "TraceContext": "trace_context",
    "RetriedFrom": "retried_from",
    "OwnerNode": "owner_node",
    "Result": "result",
    "ParentTaskId": "parent_task_id",
    "ContinueWhen": "continue_when",
    "BatchId": "batch_id",
    "WorkflowId": "workflow_id",
}
"""The ``QueuedTasks`` columns, in :class:`QueuedTask` field order (``TASK_COLUMNS``), and
the attribute of a ``QueuedTask`` each takes (the status as its name, the audit level as a
plain ``int``): the ``insert_task`` statement's bind parameters."""

_TASK_VALUES = operator.attrgetter(*TASK_ATTRIBUTES.values())


def task_params(row: QueuedTask) -> dict[str, Any]:
    """Bind parameters of the ``insert_task`` statement for a row."""
    return dict(zip(TASK_ATTRIBUTES, _TASK_VALUES(row), strict=False))  # names and values: one dict


def to_task(r: Sequence[Any]) -> QueuedTask:
    """A ``QueuedTasks`` row selected in ``TASK_COLUMNS`` order, as SQLAlchemy reads it or
    as a batch executor's driver returned it (SQLite's UUIDs and times are text)."""
    level = r[7]
    return QueuedTask(
        id=as_uuid(r[0]),
        type=r[1],
        request=r[2],
        handler=r[3],
        status=_STATUS[r[4]],
        created_at_utc=as_datetime(r[5]),
        queue_name=r[6] or "default",
        audit_level=AuditLevel.FULL if level is None else _LEVEL[level],
        scheduled_execution_utc=_time(r[8]),
        last_execution_utc=_time(r[9]),
        execution_time_ms=r[10],
        exception=r[11],
        is_recurring=bool(r[12]),
        recurring_task=r[13],
        recurring_info=r[14],
        current_run_count=r[15],
        max_runs=r[16],
        run_until=_time(r[17]),
        next_run_utc=_time(r[18]),
        task_key=r[19],
        recovery_dispatch_failure_count=r[20] or 0,
        trace_context=r[21],
        retried_from=_uuid(r[22]),
        owner_node=_uuid(r[23]),
        result=r[24],
        parent_task_id=_uuid(r[25]),
        continue_when=r[26],
        batch_id=_uuid(r[27]),
        workflow_id=_uuid(r[28]),
    )


def to_batch(r: Sequence[Any]) -> TaskBatch:
    """A ``TaskBatches`` row selected in ``BATCH_COLUMNS`` order."""
    return TaskBatch(
        id=r[0],
        kind=BatchKind(r[1]),
        status=BatchStatus(r[2]),
        created_at_utc=r[3],
        total=int(r[4]),
        name=r[5],
        workflow_id=r[6],
        succeeded=int(r[7]),
        failed=int(r[8]),
        cancelled=int(r[9]),
        finished_at_utc=r[10],
        definition=r[11],
    )


def batch_params(batch: TaskBatch) -> dict[str, Any]:
    """Bind parameters of the ``insert_batch`` statement for a record."""
    return {
        "Id": batch.id,
        "Kind": batch.kind.value,
        "Status": batch.status.value,
        "CreatedAtUtc": batch.created_at_utc,
        "Total": batch.total,
        "Name": batch.name,
        "WorkflowId": batch.workflow_id,
        "Succeeded": batch.succeeded,
        "Failed": batch.failed,
        "Cancelled": batch.cancelled,
        "FinishedAtUtc": batch.finished_at_utc,
        "Definition": batch.definition,
    }


def to_node(r: Sequence[Any]) -> NodeInfo:
    """A ``Nodes`` row selected in ``NODE_COLUMNS`` order (``Queues``: a JSON array)."""
    queues = r[6]
    return NodeInfo(
        id=r[0],
        host_name=r[1],
        pid=int(r[2]),
        started_at_utc=r[3],
        last_heartbeat_utc=r[4],
        lease_expires_utc=r[5],
        queues=tuple(json.loads(queues)) if queues else (),
        runs_workers=bool(r[7]),
    )


def node_queues(queues: Sequence[str]) -> str:
    """The ``Nodes.Queues`` text of a node's queue names: a JSON array."""
    return json.dumps(list(queues), ensure_ascii=False)


def to_status_audit(r: Sequence[Any]) -> StatusAudit:
    """A ``StatusAudit`` row (Id, QueuedTaskId, UpdatedAtUtc, NewStatus, Exception)."""
    return StatusAudit(
        id=int(r[0]),
        task_id=r[1],
        updated_at_utc=r[2],
        new_status=_STATUS[r[3]],
        exception=r[4],
    )


def to_runs_audit(r: Sequence[Any]) -> RunsAudit:
    """A ``RunsAudit`` row (Id, QueuedTaskId, ExecutedAt, ExecutionTimeMs, Status, Exception)."""
    return RunsAudit(
        id=int(r[0]),
        task_id=r[1],
        executed_at=r[2],
        execution_time_ms=float(r[3]),
        status=_STATUS[r[4]],
        exception=r[5],
    )


def to_log(r: Sequence[Any]) -> TaskExecutionLog:
    """A ``TaskExecutionLogs`` row (Id, TaskId, TimestampUtc, Level, Message, Seq, Details)."""
    task_id: uuid.UUID = r[1]
    return TaskExecutionLog(
        id=r[0],
        task_id=task_id,
        timestamp_utc=r[2],
        level=r[3],
        message=r[4],
        sequence_number=int(r[5]),
        exception_details=r[6],
    )
