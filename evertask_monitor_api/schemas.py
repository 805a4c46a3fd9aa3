"""Request and response models of the REST API (camelCase JSON, as the dashboard expects)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from evertask import management
from evertask.storage.models import (
    NodeInfo,
    QueuedTask,
    RunsAudit,
    SortField,
    StatusAudit,
    TaskBatch,
    TaskExecutionLog,
)
from evertask.throttling import ParkedTask
from evertask_abstractions import BatchKind, BatchStatus, QueuedTaskStatus, RateLimitPolicy

__all__ = [
    "BatchActionResponse",
    "BatchDetailDto",
    "BatchDto",
    "BatchMemberDto",
    "BatchRecordDto",
    "BatchesPageResponse",
    "ConfigResponse",
    "CountsResponse",
    "ExecutionLogDto",
    "ExecutionLogsResponse",
    "ExecutionTimePoint",
    "LoginRequest",
    "LoginResponse",
    "MessageResponse",
    "NodeDto",
    "OverviewResponse",
    "ParkedKeyDto",
    "ParkedTaskDto",
    "QueueActionResponse",
    "QueueConfigurationDto",
    "QueueMetricsDto",
    "QueueSummaryDto",
    "Range",
    "RateLimitPolicyDto",
    "RateLimitsDto",
    "RecentActivityDto",
    "RetryResponse",
    "RunsAuditDto",
    "SortKey",
    "StatusAuditDto",
    "SuccessRatePeriod",
    "SuccessRateTrendResponse",
    "TaskActionResponse",
    "TaskDetailDto",
    "TaskListItem",
    "TaskTypeCount",
    "TaskTypesResponse",
    "TasksPageResponse",
    "ThrottledHandlerDto",
    "TimeBucketDto",
    "TokenValidationResponse",
    "ValidateRequest",
    "WorkflowStageDto",
    "decode_result",
    "exception_summary",
    "short_type_name",
]


class Dto(BaseModel):
    """camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Range(str, Enum):
    """Time range of dashboard figures (by creation time)."""

    TODAY = "Today"
    WEEK = "Week"
    MONTH = "Month"
    ALL = "All"


class SuccessRatePeriod(str, Enum):
    """Period of the success-rate trend (daily buckets; weekly for 90 days)."""

    LAST_7_DAYS = "Last7Days"
    LAST_30_DAYS = "Last30Days"
    LAST_90_DAYS = "Last90Days"


class SortKey(str, Enum):
    """Columns the task list sorts by."""

    CREATED_AT = "createdAtUtc"
    LAST_EXECUTION = "lastExecutionUtc"
    SCHEDULED_EXECUTION = "scheduledExecutionUtc"
    STATUS = "status"
    TYPE = "type"
    QUEUE_NAME = "queueName"

    @property
    def field(self) -> SortField:
        """The storage's sort field."""
        return _SORT_FIELDS[self]


_SORT_FIELDS = {
    SortKey.CREATED_AT: SortField.CREATED_AT,
    SortKey.LAST_EXECUTION: SortField.LAST_EXECUTION,
    SortKey.SCHEDULED_EXECUTION: SortField.SCHEDULED_EXECUTION,
    SortKey.STATUS: SortField.STATUS,
    SortKey.TYPE: SortField.TYPE,
    SortKey.QUEUE_NAME: SortField.QUEUE_NAME,
}


def short_type_name(type_name: str) -> str:
    """``"pkg.mod.SendEmail"`` -> ``"SendEmail"`` (also strips ``, assembly`` suffixes)."""
    head = type_name.split(",", 1)[0].strip()
    return head.rsplit(".", 1)[-1].rsplit(":", 1)[-1] or type_name


# -- auth and config ---------------------------------------------------------------------
class LoginRequest(Dto):
    """Credentials."""

    username: str = Field(max_length=256)
    password: str = Field(max_length=1024)


class LoginResponse(Dto):
    """A session token."""

    token: str
    expires_at: datetime
    username: str


class ValidateRequest(Dto):
    """A token to check (or none: the ``Authorization`` header's)."""

    token: str | None = Field(default=None, max_length=4096)


class TokenValidationResponse(Dto):
    """Whether a token is valid, for whom and until when."""

    is_valid: bool
    username: str | None = None
    expires_at: datetime | None = None


class MessageResponse(Dto):
    """An error or status message."""

    message: str


class ConfigResponse(Dto):
    """What the dashboard needs to know before login."""

    api_base_path: str
    ui_base_path: str
    web_socket_path: str
    require_authentication: bool
    ui_enabled: bool
    event_debounce_ms: int
    read_only: bool
    live_events: bool
    version: str
    docs_url: str | None = None


# -- tasks -------------------------------------------------------------------------------
class TaskListItem(Dto):
    """One row of the task list."""

    id: uuid.UUID
    type: str
    short_type: str
    handler: str
    status: QueuedTaskStatus
    queue_name: str
    created_at_utc: datetime
    last_execution_utc: datetime | None = None
    scheduled_execution_utc: datetime | None = None
    execution_time_ms: float
    is_recurring: bool
    recurring_info: str | None = None
    current_run_count: int | None = None
    max_runs: int | None = None
    next_run_utc: datetime | None = None
    task_key: str | None = None
    retried_from: uuid.UUID | None = None
    owner_node: uuid.UUID | None = None
    """The cluster node that will run the task (``None``: any worker node may claim it)."""
    has_exception: bool

    @classmethod
    def of(cls, row: QueuedTask) -> TaskListItem:
        """From a storage row."""
        return cls(**_list_fields(row))


def _list_fields(row: QueuedTask) -> dict[str, object]:
    return {
        "id": row.id,
        "type": row.type,
        "short_type": short_type_name(row.type),
        "handler": row.handler,
        "status": row.status,
        "queue_name": row.queue_name,
        "created_at_utc": row.created_at_utc,
        "last_execution_utc": row.last_execution_utc,
        "scheduled_execution_utc": row.scheduled_execution_utc,
        "execution_time_ms": row.execution_time_ms,
        "is_recurring": row.is_recurring,
        "recurring_info": row.recurring_info,
        "current_run_count": row.current_run_count,
        "max_runs": row.max_runs,
        "next_run_utc": row.next_run_utc,
        "task_key": row.task_key,
        "retried_from": row.retried_from,
        "owner_node": row.owner_node,
        "has_exception": bool(row.exception),
    }


class TasksPageResponse(Dto):
    """One page of tasks."""

    items: list[TaskListItem]
    total_count: int
    page: int
    page_size: int
    total_pages: int


class StatusAuditDto(Dto):
    """One status transition."""

    id: int
    queued_task_id: uuid.UUID
    updated_at_utc: datetime
    new_status: QueuedTaskStatus
    exception: str | None = None

    @classmethod
    def of(cls, audit: StatusAudit) -> StatusAuditDto:
        """From a storage row."""
        return cls(
            id=audit.id,
            queued_task_id=audit.task_id,
            updated_at_utc=audit.updated_at_utc,
            new_status=audit.new_status,
            exception=audit.exception,
        )


class RunsAuditDto(Dto):
    """One run of a recurring task."""

    id: int
    queued_task_id: uuid.UUID
    executed_at: datetime
    execution_time_ms: float
    status: QueuedTaskStatus
    exception: str | None = None

    @classmethod
    def of(cls, audit: RunsAudit) -> RunsAuditDto:
        """From a storage row."""
        return cls(
            id=audit.id,
            queued_task_id=audit.task_id,
            executed_at=audit.executed_at,
            execution_time_ms=audit.execution_time_ms,
            status=audit.status,
            exception=audit.exception,
        )


class TaskDetailDto(TaskListItem):
    """Every column of a task plus its histories (newest first)."""

    request: str
    exception: str | None = None
    audit_level: str
    run_until: datetime | None = None
    recurring_task: str | None = None
    status_audits: list[StatusAuditDto]
    runs_audits: list[RunsAuditDto]
    execution_log_count: int
    can_cancel: bool
    can_retry: bool
    throttled_until: datetime | None = None
    """When the serving host lets it start: its reserved rate-limit slot while it is parked
    (or waits to retry); ``None`` otherwise and in standalone mode."""
    result: Any = None
    """The JSON result its handler returned (decoded), once Completed; ``None``: none."""
    parent_task_id: uuid.UUID | None = None
    """A continuation's parent: a task, or a batch record (docs/workflows.md)."""
    parent_kind: str | None = None
    """What the parent is: ``Task``, or a record's kind (``Batch``, ``Workflow``, ``Group``,
    ``Compensation``); ``None`` without a parent."""
    continue_when: str | None = None
    """A continuation's condition: Succeeded, Failed or Finished."""
    batch_id: uuid.UUID | None = None
    """The batch, workflow group or compensation record the task counts in."""
    workflow_id: uuid.UUID | None = None
    """The workflow the task is a step of."""

    @classmethod
    def build(
        cls,
        row: QueuedTask,
        status_audits: list[StatusAudit],
        runs_audits: list[RunsAudit],
        log_count: int,
        can_cancel: bool,
        can_retry: bool,
        throttled_until: datetime | None = None,
        parent_kind: str | None = None,
    ) -> TaskDetailDto:
        """From a row, its audits and what the caller may do with it."""
        return cls(
            **_list_fields(row),
            request=row.request,
            exception=row.exception,
            audit_level=row.audit_level.name.title().replace("_", ""),
            run_until=row.run_until,
            recurring_task=row.recurring_task,
            status_audits=[StatusAuditDto.of(a) for a in reversed(status_audits)],
            runs_audits=[RunsAuditDto.of(a) for a in reversed(runs_audits)],
            execution_log_count=log_count,
            can_cancel=can_cancel,
            can_retry=can_retry,
            throttled_until=throttled_until,
            result=decode_result(row.result),
            parent_task_id=row.parent_task_id,
            parent_kind=parent_kind,
            continue_when=row.continue_when,
            batch_id=row.batch_id,
            workflow_id=row.workflow_id,
        )


def decode_result(text: str | None) -> Any:
    """A stored result as JSON (``None``: none; text that is not JSON comes back as text)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


EXCEPTION_SUMMARY_CHARS = 300


def exception_summary(text: str | None) -> str | None:
    """The first line of a stored exception (``"module.Type: message"``), shortened."""
    if not text:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    if len(line) > EXCEPTION_SUMMARY_CHARS:
        line = line[: EXCEPTION_SUMMARY_CHARS - 1] + "…"
    return line


class ExecutionLogDto(Dto):
    """One captured log record."""

    id: uuid.UUID
    timestamp_utc: datetime
    level: str
    message: str
    exception_details: str | None = None
    sequence_number: int

    @classmethod
    def of(cls, log: TaskExecutionLog) -> ExecutionLogDto:
        """From a storage row."""
        return cls(
            id=log.id,
            timestamp_utc=log.timestamp_utc,
            level=log.level,
            message=log.message,
            exception_details=log.exception_details,
            sequence_number=log.sequence_number,
        )


class ExecutionLogsResponse(Dto):
    """One page of a task's captured logs."""

    logs: list[ExecutionLogDto]
    total_count: int
    skip: int
    take: int


class CountsResponse(Dto):
    """Headline counts (all time)."""

    all: int
    standard: int
    recurring: int
    failed: int


class TaskActionResponse(Dto):
    """The state of a task after a management action."""

    task_id: uuid.UUID
    status: QueuedTaskStatus
    message: str


class RetryResponse(Dto):
    """The new task that retries an old one."""

    task_id: uuid.UUID
    retried_from: uuid.UUID
    message: str


# -- dashboard ---------------------------------------------------------------------------
class TimeBucketDto(Dto):
    """Tasks created in one time bucket."""

    timestamp: datetime
    completed: int
    failed: int
    total: int


class QueueSummaryDto(Dto):
    """A queue at a glance (pending and running now; finished within the range)."""

    queue_name: str
    pending_count: int
    in_progress_count: int
    completed_count: int
    failed_count: int
    paused: bool


class OverviewResponse(Dto):
    """Key figures for the overview page."""

    range: Range
    total_tasks_today: int
    total_tasks_week: int
    total_tasks_in_range: int
    success_rate: float | None
    failed_count: int
    avg_execution_time_ms: float | None
    status_distribution: dict[str, int]
    tasks_over_time: list[TimeBucketDto]
    queue_summaries: list[QueueSummaryDto]


class RecentActivityDto(Dto):
    """One line of the recent-activity feed."""

    task_id: uuid.UUID
    type: str
    short_type: str
    status: QueuedTaskStatus
    queue_name: str
    timestamp: datetime
    message: str
    is_recurring: bool = False


class QueueMetricsDto(Dto):
    """Per-queue counts (all time) and recent average execution time."""

    queue_name: str
    total_tasks: int
    pending_tasks: int
    in_progress_tasks: int
    completed_tasks: int
    failed_tasks: int
    cancelled_tasks: int
    avg_execution_time_ms: float | None
    success_rate: float | None
    paused: bool


class QueueConfigurationDto(QueueMetricsDto):
    """A queue's configuration (``None`` when the queue is not configured in this process)."""

    configured: bool
    max_degree_of_parallelism: int | None = None
    channel_capacity: int | None = None
    queue_full_behavior: str | None = None
    default_timeout_ms: float | None = None
    waiting_in_memory: int | None = None


class QueueActionResponse(Dto):
    """A queue's paused state after pause/resume."""

    queue_name: str
    paused: bool
    message: str


class SuccessRateTrendResponse(Dto):
    """Success rate per bucket (``null`` where nothing finished)."""

    period: SuccessRatePeriod
    timestamps: list[datetime]
    success_rates: list[float | None]
    completed: list[int]
    failed: list[int]


class TaskTypeCount(Dto):
    """Tasks of one type."""

    type: str
    short_type: str
    count: int


class TaskTypesResponse(Dto):
    """Tasks per type within a range. ``exact`` is false when counted over a sample."""

    range: Range
    exact: bool
    sample_size: int
    types: list[TaskTypeCount]


class ExecutionTimePoint(Dto):
    """Average execution time of the tasks completed in one bucket."""

    timestamp: datetime
    avg_execution_time_ms: float | None
    sample_size: int


# -- rate limits -------------------------------------------------------------------------
class ParkedTaskDto(Dto):
    """A run parked until its rate-limit slot (``until_utc``: its throttled-until)."""

    task_id: uuid.UUID
    task_type: str
    short_type: str
    queue_name: str
    rate_limit_key: str
    until_utc: datetime
    parked_at_utc: datetime

    @classmethod
    def of(cls, parked: ParkedTask) -> ParkedTaskDto:
        """From the host's snapshot."""
        return cls(
            task_id=parked.task_id,
            task_type=parked.task_type,
            short_type=short_type_name(parked.task_type),
            queue_name=parked.queue_name,
            rate_limit_key=parked.rate_limit_key,
            until_utc=parked.until,
            parked_at_utc=parked.parked_at,
        )


class ParkedKeyDto(Dto):
    """The runs parked on one budget (task type and key): how many, first and last slot."""

    task_type: str
    short_type: str
    rate_limit_key: str
    queue_name: str
    parked_count: int
    next_slot_utc: datetime
    last_slot_utc: datetime

    @classmethod
    def summarize(cls, parked: list[ParkedTask]) -> list[ParkedKeyDto]:
        """One entry per (task type, key) of a snapshot sorted by slot; earliest slot first."""
        keys: dict[tuple[str, str], ParkedKeyDto] = {}
        for p in parked:
            entry = keys.get((p.task_type, p.rate_limit_key))
            if entry is None:
                keys[(p.task_type, p.rate_limit_key)] = cls(
                    task_type=p.task_type,
                    short_type=short_type_name(p.task_type),
                    rate_limit_key=p.rate_limit_key,
                    queue_name=p.queue_name,
                    parked_count=1,
                    next_slot_utc=p.until,
                    last_slot_utc=p.until,
                )
            else:
                entry.parked_count += 1
                entry.next_slot_utc = min(entry.next_slot_utc, p.until)
                entry.last_slot_utc = max(entry.last_slot_utc, p.until)
        return sorted(keys.values(), key=lambda k: k.next_slot_utc)


class RateLimitPolicyDto(Dto):
    """A handler's declared ``rate_limit`` (periods in milliseconds)."""

    permits: int
    period_ms: float
    burst: int
    throttle_retries: bool
    start_empty: bool
    max_reservation_horizon_ms: float
    overflow_behavior: str

    @classmethod
    def of(cls, policy: RateLimitPolicy) -> RateLimitPolicyDto:
        """From the declaration."""
        return cls(
            permits=policy.permits,
            period_ms=policy.period.total_seconds() * 1000,
            burst=policy.burst,
            throttle_retries=policy.throttle_retries,
            start_empty=policy.start_empty,
            max_reservation_horizon_ms=policy.max_reservation_horizon.total_seconds() * 1000,
            overflow_behavior=policy.overflow_behavior.name,
        )


class ThrottledHandlerDto(Dto):
    """A handler that declares ``rate_limit`` or ``max_concurrency``, and its state now.

    ``running`` and ``waiting`` (``max_concurrency`` permits held, runs waiting for one)
    are ``None`` without a ``max_concurrency``; ``parked`` counts its runs parked for a
    rate-limit slot.
    """

    handler: str
    short_handler: str
    task_type: str
    short_type: str
    queue_name: str | None
    rate_limit: RateLimitPolicyDto | None
    max_concurrency: int | None
    running: int | None
    waiting: int | None
    parked: int


class AdaptiveThrottlingDto(Dto):
    """Adaptive throttling of the serving host (``enabled`` false: no threshold set)."""

    enabled: bool
    paused: bool = False
    reason: str | None = None
    since: datetime | None = None
    cpu: float | None = None
    memory_bytes: int | None = None
    cpu_threshold: float | None = None
    memory_threshold_bytes: int | None = None
    pauses: int = 0


class RateLimitsDto(Dto):
    """The serving host's rate limiter now.

    ``cluster_wide``: budgets and ``max_concurrency`` permits are shared through the
    database (otherwise per host); parked runs and waiting runs are always this host's.
    ``available`` is false when no host runs in this process (the standalone monitor): the
    limiter's state lives in a running host, so every other field is empty.
    """

    available: bool
    cluster_wide: bool = False
    parked_task_count: int = 0
    max_parked_tasks: int = 0
    tracked_key_count: int = 0
    fail_open_count: int = 0
    parked: list[ParkedTaskDto] = []
    keys: list[ParkedKeyDto] = []
    handlers: list[ThrottledHandlerDto] = []
    adaptive: AdaptiveThrottlingDto = AdaptiveThrottlingDto(enabled=False)


# -- batches and workflows ---------------------------------------------------------------
class BatchDto(Dto):
    """A batch, a workflow, one of a workflow's groups or its compensations, with the
    progress of its members (``pending`` = not finished yet)."""

    id: uuid.UUID
    kind: BatchKind
    name: str | None = None
    status: BatchStatus
    total: int
    succeeded: int
    failed: int
    cancelled: int
    pending: int
    created_at_utc: datetime
    finished_at_utc: datetime | None = None
    workflow_id: uuid.UUID | None = None
    """The workflow a group or a compensation record belongs to."""
    can_cancel: bool
    """Running, and the monitor may manage (not read-only)."""

    @classmethod
    def of(cls, batch: TaskBatch, writable: bool) -> BatchDto:
        """From a storage record."""
        return cls(**_batch_fields(batch, writable))


def _batch_fields(batch: TaskBatch, writable: bool) -> dict[str, Any]:
    return {
        "id": batch.id,
        "kind": batch.kind,
        "name": batch.name,
        "status": batch.status,
        "total": batch.total,
        "succeeded": batch.succeeded,
        "failed": batch.failed,
        "cancelled": batch.cancelled,
        "pending": max(batch.total - batch.succeeded - batch.failed - batch.cancelled, 0),
        "created_at_utc": batch.created_at_utc,
        "finished_at_utc": batch.finished_at_utc,
        "workflow_id": batch.workflow_id,
        "can_cancel": writable and batch.status is BatchStatus.RUNNING,
    }


class BatchesPageResponse(Dto):
    """One page of records, newest first; ``hasMore``: a next page exists."""

    items: list[BatchDto]
    page: int
    page_size: int
    has_more: bool


class BatchMemberDto(Dto):
    """A task of a batch or a workflow (or a continuation waiting for one)."""

    id: uuid.UUID
    type: str
    short_type: str
    status: QueuedTaskStatus
    queue_name: str
    created_at_utc: datetime
    last_execution_utc: datetime | None = None
    execution_time_ms: float
    result: Any = None
    """The JSON result its handler returned (decoded), once Completed; ``None``: none."""
    exception_summary: str | None = None
    """The first line of its exception (the task's page has all of it)."""
    parent_task_id: uuid.UUID | None = None
    continue_when: str | None = None
    batch_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    retried_from: uuid.UUID | None = None
    compensation: str | None = None
    """A saga step's compensating task type (short name), else ``None``."""
    can_cancel: bool
    can_retry: bool

    @classmethod
    def of(cls, row: QueuedTask, writable: bool, compensation: str | None = None) -> BatchMemberDto:
        """From a storage row; ``writable``: the monitor may manage."""
        return cls(
            id=row.id,
            type=row.type,
            short_type=short_type_name(row.type),
            status=row.status,
            queue_name=row.queue_name,
            created_at_utc=row.created_at_utc,
            last_execution_utc=row.last_execution_utc,
            execution_time_ms=row.execution_time_ms,
            result=decode_result(row.result),
            exception_summary=exception_summary(row.exception),
            parent_task_id=row.parent_task_id,
            continue_when=row.continue_when,
            batch_id=row.batch_id,
            workflow_id=row.workflow_id,
            retried_from=row.retried_from,
            compensation=compensation,
            can_cancel=writable and management.can_cancel(row),
            can_retry=writable and management.can_retry(row),
        )


class BatchRecordDto(BatchDto):
    """A record with its members (a workflow's compensations)."""

    members: list[BatchMemberDto]


class WorkflowStageDto(Dto):
    """One stage of a workflow: one step, or a group of parallel steps (``group``: its
    record). ``taskIds`` lists every step of the stage in dispatch order."""

    index: int
    group: BatchDto | None = None
    task_ids: list[uuid.UUID]


class BatchDetailDto(BatchDto):
    """A record with its members and what hangs on it.

    ``members``: the rows counting in it in dispatch order (a workflow's steps), at most
    ``memberLimit`` of ``memberCount``; ``stages``: a workflow's stages in order (empty
    for other kinds); ``compensations``: a failed saga's compensation records with their
    members; ``continuations``: the tasks dispatched after this record (waiting for it,
    released or skipped), oldest first, at most ``continuationLimit``.
    """

    members: list[BatchMemberDto]
    member_count: int
    member_limit: int
    stages: list[WorkflowStageDto]
    compensations: list[BatchRecordDto]
    continuations: list[BatchMemberDto]
    continuation_limit: int


class BatchActionResponse(Dto):
    """A record's state after a management action."""

    batch_id: uuid.UUID
    kind: BatchKind
    status: BatchStatus
    message: str


# -- cluster -----------------------------------------------------------------------------
class NodeDto(Dto):
    """A node of the cluster (a host registered on the storage), alive or dead.

    ``running`` is known only for this host's own node (``None`` for the others).
    """

    id: uuid.UUID
    host_name: str
    pid: int
    started_at_utc: datetime
    last_heartbeat_utc: datetime
    lease_expires_utc: datetime
    queues: list[str]
    runs_workers: bool
    alive: bool
    is_current: bool
    running: int | None = None

    @classmethod
    def of(
        cls, node: NodeInfo, now: datetime, current: uuid.UUID | None, running: int | None
    ) -> NodeDto:
        """From a storage row, judged alive at ``now``; ``current`` is this host's node."""
        is_current = node.id == current
        return cls(
            id=node.id,
            host_name=node.host_name,
            pid=node.pid,
            started_at_utc=node.started_at_utc,
            last_heartbeat_utc=node.last_heartbeat_utc,
            lease_expires_utc=node.lease_expires_utc,
            queues=list(node.queues),
            runs_workers=node.runs_workers,
            alive=node.is_alive(now),
            is_current=is_current,
            running=running if is_current else None,
        )
