"""Database rows to the storage models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from evertask.storage.models import QueuedTask, RunsAudit, StatusAudit, TaskExecutionLog
from evertask_abstractions import AuditLevel, QueuedTaskStatus

__all__ = ["to_log", "to_runs_audit", "to_status_audit", "to_task"]

_STATUS = {s.value: s for s in QueuedTaskStatus}
_LEVEL = {int(a): a for a in AuditLevel}


def to_task(r: Sequence[Any]) -> QueuedTask:
    """A ``QueuedTasks`` row selected in ``TASK_COLUMNS`` order."""
    level = r[7]
    return QueuedTask(
        r[0],
        r[1],
        r[2],
        r[3],
        _STATUS[r[4]],
        r[5],
        r[6] or "default",
        AuditLevel.FULL if level is None else _LEVEL[level],
        r[8],
        r[9],
        r[10],
        r[11],
        bool(r[12]),
        r[13],
        r[14],
        r[15],
        r[16],
        r[17],
        r[18],
        r[19],
        r[20] or 0,
        r[21],
        r[22],
    )


def to_status_audit(r: Sequence[Any]) -> StatusAudit:
    """A ``StatusAudit`` row (Id, QueuedTaskId, UpdatedAtUtc, NewStatus, Exception)."""
    return StatusAudit(int(r[0]), r[1], r[2], _STATUS[r[3]], r[4])


def to_runs_audit(r: Sequence[Any]) -> RunsAudit:
    """A ``RunsAudit`` row (Id, QueuedTaskId, ExecutedAt, ExecutionTimeMs, Status, Exception)."""
    return RunsAudit(int(r[0]), r[1], r[2], float(r[3]), _STATUS[r[4]], r[5])


def to_log(r: Sequence[Any]) -> TaskExecutionLog:
    """A ``TaskExecutionLogs`` row (Id, TaskId, TimestampUtc, Level, Message, Seq, Details)."""
    task_id: uuid.UUID = r[1]
    return TaskExecutionLog(r[0], task_id, r[2], r[3], r[4], int(r[5]), r[6])
