"""Rows persisted by every storage: tasks, status audits, run audits, execution logs."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import overload

from evertask_abstractions import AuditLevel, BatchInfo, BatchKind, BatchStatus, QueuedTaskStatus

__all__ = [
    "RECOVERABLE_STATUSES",
    "STAMPED_STATUSES",
    "ExecutionLogs",
    "LogEntry",
    "NodeInfo",
    "QueuedTask",
    "RunsAudit",
    "SortField",
    "StatusAudit",
    "TaskBatch",
    "TaskExecutionLog",
    "TaskPage",
    "TaskQuery",
    "batch_outcome",
    "is_real_error",
    "is_recoverable",
    "log_row",
    "member_retry_refusal",
    "skip_reason",
]

RECOVERABLE_STATUSES = frozenset(
    {
        QueuedTaskStatus.WAITING_QUEUE,
        QueuedTaskStatus.QUEUED,
        QueuedTaskStatus.PENDING,
        QueuedTaskStatus.SERVICE_STOPPED,
        QueuedTaskStatus.IN_PROGRESS,
    }
)
"""Statuses whose rows resume at start (recurring Completed/Failed rows with a next run also do)."""

STAMPED_STATUSES = frozenset(
    {QueuedTaskStatus.COMPLETED, QueuedTaskStatus.FAILED, QueuedTaskStatus.SERVICE_STOPPED}
)
"""Statuses whose transition stamps ``last_execution_utc``."""


@dataclass(slots=True, kw_only=True)
class QueuedTask:
    """One task row (the ``QueuedTasks`` table)."""

    id: uuid.UUID
    type: str
    request: str
    handler: str
    status: QueuedTaskStatus
    created_at_utc: datetime
    queue_name: str = "default"
    audit_level: AuditLevel = AuditLevel.FULL
    scheduled_execution_utc: datetime | None = None
    last_execution_utc: datetime | None = None
    execution_time_ms: float = 0.0
    exception: str | None = None
    is_recurring: bool = False
    recurring_task: str | None = None
    recurring_info: str | None = None
    current_run_count: int | None = None
    max_runs: int | None = None
    run_until: datetime | None = None
    next_run_utc: datetime | None = None
    task_key: str | None = None
    recovery_dispatch_failure_count: int = 0
    trace_context: str | None = None
    retried_from: uuid.UUID | None = None
    owner_node: uuid.UUID | None = None
    """The node (host) that will run the row, or ``None``: any worker node may claim it."""
    result: str | None = None
    """The JSON result a completed one-shot task's handler returned (``None``: none)."""
    parent_task_id: uuid.UUID | None = None
    """A continuation's parent: the row waits (WaitingParent) until the parent finishes."""
    continue_when: str | None = None
    """A continuation's condition: a :class:`~evertask_abstractions.ContinueWhen` name."""
    batch_id: uuid.UUID | None = None
    """The batch (or workflow group, or compensation) whose progress this row counts in."""
    workflow_id: uuid.UUID | None = None
    """The workflow this row is a step of (its progress counts every step)."""

    def copy(self) -> QueuedTask:
        """A detached copy (storages never hand out their internal objects)."""
        return replace(self)


@dataclass(slots=True, kw_only=True)
class TaskBatch:
    """One batch record (the ``TaskBatches`` table): a batch, a workflow, one of its
    groups or its compensations, with the progress of its members."""

    id: uuid.UUID
    kind: BatchKind
    status: BatchStatus
    created_at_utc: datetime
    total: int
    name: str | None = None
    workflow_id: uuid.UUID | None = None
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    finished_at_utc: datetime | None = None
    definition: str | None = None
    """A saga workflow's compensations (JSON written by the dispatcher), else ``None``."""

    def info(self) -> BatchInfo:
        """The public view of this record."""
        return BatchInfo(
            id=self.id,
            kind=self.kind,
            name=self.name,
            status=self.status,
            total=self.total,
            succeeded=self.succeeded,
            failed=self.failed,
            cancelled=self.cancelled,
            created_at_utc=self.created_at_utc,
            finished_at_utc=self.finished_at_utc,
            workflow_id=self.workflow_id,
        )


def batch_outcome(batch: TaskBatch) -> BatchStatus | None:
    """The status a Running batch takes once its counters say every member finished
    (``None``: not yet)."""
    if batch.succeeded + batch.failed + batch.cancelled < batch.total:
        return None
    return BatchStatus.COMPLETED if batch.succeeded >= batch.total else BatchStatus.FAILED


@dataclass(slots=True, kw_only=True)
class NodeInfo:
    """One host registered on a storage (the ``Nodes`` table): a node of the cluster."""

    id: uuid.UUID
    host_name: str
    pid: int
    started_at_utc: datetime
    last_heartbeat_utc: datetime
    lease_expires_utc: datetime
    """Until when the node owns its rows; after it, other nodes take them over."""
    queues: tuple[str, ...] = ()
    runs_workers: bool = True
    """``False``: a dispatch-only node (it persists dispatches and runs nothing)."""

    def is_alive(self, now: datetime) -> bool:
        """Whether the node's lease is still valid at ``now``."""
        return self.lease_expires_utc > now


def is_recoverable(task: QueuedTask, now: datetime) -> bool:
    """EverTask's recoverable predicate: the row should (re)enter the engine at start."""
    if task.max_runs is not None and (task.current_run_count or 0) >= task.max_runs:
        return False
    if task.run_until is not None and task.run_until < now:
        return False
    if task.status in RECOVERABLE_STATUSES:
        return True
    return (
        task.is_recurring
        and task.next_run_utc is not None
        and task.status in (QueuedTaskStatus.COMPLETED, QueuedTaskStatus.FAILED)
    )


def member_retry_refusal(
    task_id: uuid.UUID, status: str, records: list[tuple[str, uuid.UUID, str, bool]]
) -> str | None:
    """Why a batch member cannot be requeued in place (``None``: it can): ``status`` is
    its status, ``records`` its batch and workflow as (kind, id, status, is a saga)."""
    if status not in (QueuedTaskStatus.FAILED.value, QueuedTaskStatus.CANCELLED.value):
        return f"Task {task_id} is {status}; only Failed or Cancelled tasks can be retried."
    for kind, record_id, record_status, saga in records:
        name = f"{kind.lower()} {record_id}"
        if record_status == BatchStatus.CANCELLED.value:
            return f"The {name} was cancelled; its tasks are not retried in place."
        if saga and record_status == BatchStatus.FAILED.value:
            return (
                f"The {name} failed and its compensations were dispatched; a saga is not "
                "retried in place once it has failed."
            )
    return None


def skip_reason(parent_id: uuid.UUID | str, parent_status: QueuedTaskStatus | str) -> str:
    """The Exception text of a continuation cancelled because its parent ended otherwise
    than its condition asks (or was cancelled); ``parent_id`` may be a driver's raw value
    (the text is the same for any spelling of the id)."""
    return f"Skipped: parent task {uuid.UUID(str(parent_id))} ended {parent_status}."


def is_real_error(status: QueuedTaskStatus, exception: str | None) -> bool:
    """Whether a transition counts as an error for ``MINIMAL``/``ERRORS_ONLY`` audits.

    Failed always does; a ServiceStopped or Cancelled transition (a cancellation) never
    does; any other transition does when it carries an exception.
    """
    if status is QueuedTaskStatus.FAILED:
        return True
    if status in (QueuedTaskStatus.SERVICE_STOPPED, QueuedTaskStatus.CANCELLED):
        return False
    return exception is not None


def wants_status_audit(level: AuditLevel, status: QueuedTaskStatus, exception: str | None) -> bool:
    """Whether a status transition writes a ``StatusAudit`` row at this audit level."""
    if level is AuditLevel.FULL:
        return True
    if level is AuditLevel.NONE:
        return False
    return is_real_error(status, exception)


def wants_runs_audit(level: AuditLevel, status: QueuedTaskStatus, exception: str | None) -> bool:
    """Whether a recurring run writes a ``RunsAudit`` row at this audit level."""
    if level is AuditLevel.NONE:
        return False
    if level is AuditLevel.ERRORS_ONLY:
        return status is QueuedTaskStatus.FAILED or exception is not None
    return True


__all__ += ["wants_runs_audit", "wants_status_audit"]


@dataclass(slots=True, frozen=True, kw_only=True)
class StatusAudit:
    """One status transition (the ``StatusAudit`` table)."""

    id: int
    task_id: uuid.UUID
    updated_at_utc: datetime
    new_status: QueuedTaskStatus
    exception: str | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class RunsAudit:
    """One execution of a recurring task (the ``RunsAudit`` table)."""

    id: int
    task_id: uuid.UUID
    executed_at: datetime
    execution_time_ms: float
    status: QueuedTaskStatus
    exception: str | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class TaskExecutionLog:
    """One captured log record of a task execution (the ``TaskExecutionLogs`` table)."""

    id: uuid.UUID
    task_id: uuid.UUID
    timestamp_utc: datetime
    level: str
    message: str
    sequence_number: int
    exception_details: str | None = None


LogEntry = tuple[int, float, str, str, str | None]
"""One captured record as a plain tuple: id (a UUIDv7 as its integer), Unix time, level
name, message, exception text."""


def log_row(task_id: uuid.UUID, sequence_number: int, entry: LogEntry) -> TaskExecutionLog:
    """The :class:`TaskExecutionLog` of a captured record of task ``task_id``."""
    log_id, created, level, message, exception = entry
    return TaskExecutionLog(
        id=uuid.UUID(int=log_id),
        task_id=task_id,
        timestamp_utc=datetime.fromtimestamp(created, UTC),
        level=level,
        message=message,
        sequence_number=sequence_number,
        exception_details=exception,
    )


class ExecutionLogs(Sequence[TaskExecutionLog]):
    """The captured logs of one execution, as the engine passes them to
    ``save_execution_logs`` and attaches them to its events: an immutable sequence of
    :class:`TaskExecutionLog` rows kept as plain tuples (``entries``, see
    :data:`LogEntry`; a record's sequence number is its position), each row built when it
    is read. Every read builds equal rows (the ids were drawn when the records were
    captured), so a storage may keep ``entries`` and build the rows later, as the memory
    storage does.
    """

    __slots__ = ("entries", "task_id")

    def __init__(self, task_id: uuid.UUID, entries: Iterable[LogEntry]) -> None:
        self.task_id = task_id
        self.entries = tuple(entries)

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, index: int) -> TaskExecutionLog: ...
    @overload
    def __getitem__(self, index: slice) -> list[TaskExecutionLog]: ...
    def __getitem__(self, index: int | slice) -> TaskExecutionLog | list[TaskExecutionLog]:
        entries = self.entries
        if isinstance(index, slice):
            return [log_row(self.task_id, i, entries[i]) for i in range(len(entries))[index]]
        entry = entries[index]  # (IndexError out of range)
        return log_row(self.task_id, index % len(entries), entry)

    def __iter__(self) -> Iterator[TaskExecutionLog]:
        task_id = self.task_id
        return (log_row(task_id, seq, entry) for seq, entry in enumerate(self.entries))

    def __repr__(self) -> str:
        return f"ExecutionLogs({self.task_id}, {len(self.entries)} records)"


class SortField(str, Enum):
    """Columns a task list can be sorted by."""

    CREATED_AT = "created_at_utc"
    LAST_EXECUTION = "last_execution_utc"
    SCHEDULED_EXECUTION = "scheduled_execution_utc"
    STATUS = "status"
    TYPE = "type"
    QUEUE_NAME = "queue_name"


@dataclass(slots=True)
class TaskQuery:
    """A server-side filtered, sorted, paged task list request."""

    statuses: frozenset[QueuedTaskStatus] | None = None
    task_type_contains: str | None = None
    queue_name: str | None = None
    is_recurring: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    search: str | None = None
    sort_by: SortField = SortField.CREATED_AT
    descending: bool = True
    page: int = 1
    page_size: int = 20


@dataclass(slots=True)
class TaskPage:
    """One page of tasks plus the total number of matches."""

    items: list[QueuedTask] = field(default_factory=list)
    total_count: int = 0
    page: int = 1
    page_size: int = 20
