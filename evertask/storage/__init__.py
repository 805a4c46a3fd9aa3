"""The storage protocol, the row models and the in-memory storage."""

from .memory import MemoryTaskStorage
from .models import (
    RECOVERABLE_STATUSES,
    STAMPED_STATUSES,
    ExecutionLogs,
    NodeInfo,
    QueuedTask,
    RunsAudit,
    SortField,
    StatusAudit,
    TaskBatch,
    TaskExecutionLog,
    TaskPage,
    TaskQuery,
    is_real_error,
    is_recoverable,
    wants_runs_audit,
    wants_status_audit,
)
from .protocol import BatchStore, PipelinedStorage, TaskStorage

__all__ = [
    "RECOVERABLE_STATUSES",
    "STAMPED_STATUSES",
    "BatchStore",
    "ExecutionLogs",
    "MemoryTaskStorage",
    "NodeInfo",
    "PipelinedStorage",
    "QueuedTask",
    "RunsAudit",
    "SortField",
    "StatusAudit",
    "TaskBatch",
    "TaskExecutionLog",
    "TaskPage",
    "TaskQuery",
    "TaskStorage",
    "is_real_error",
    "is_recoverable",
    "wants_runs_audit",
    "wants_status_audit",
]
