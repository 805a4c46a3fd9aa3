"""The tables (EverTask's names, PascalCase columns) and their indexes, per schema.

``QueuedTasks`` holds one row per task; ``StatusAudit`` and ``RunsAudit`` hold its
history and ``TaskExecutionLogs`` its captured logs; the three child tables cascade on
delete. ``PausedQueues`` remembers the queues an operator paused; ``Nodes`` holds the
hosts of a cluster (their leases), and ``QueuedTasks.OwnerNode`` the node that runs a
row. ``TaskCountDeltas`` and ``TaskCounts`` hold the finished rows' counts per hour of
creation, queue and status (kept by triggers, see :mod:`.counts`), and
``MaintenanceLeases`` the node doing a cluster-wide chore (retention).
``RateLimitBuckets`` holds the cluster-wide rate-limit budgets (one GCRA theoretical
arrival time per task type and key) and ``ConcurrencySlots`` the cluster-wide
``max_concurrency`` permits (a slot is held by a live node). Indexes serve the
id/key lookups, the recovery keyset, the monitoring filters and counts, and the
per-task history reads, so no query the storage issues scans a table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Unicode,
    and_,
    false,
    literal_column,
    or_,
    true,
)
from sqlalchemy.sql import FromClause

from evertask.storage.models import RECOVERABLE_STATUSES
from evertask_abstractions import ConfigurationError, QueuedTaskStatus

from .types import GuidType, UtcDateTime, exact_text, long_text

__all__ = [
    "CLAIM_INDEX",
    "OWNER_INDEX",
    "PARENT_INDEX",
    "PARTIAL_INDEX_DIALECTS",
    "RECOVERABLE_STATUS_NAMES",
    "RECURRING_INDEX",
    "STATUS_INDEX",
    "TaskTables",
    "build_tables",
    "recovery_index_predicate",
    "validate_schema_name",
]

RECOVERABLE_STATUS_NAMES: tuple[str, ...] = tuple(sorted(s.value for s in RECOVERABLE_STATUSES))
"""Status names whose rows resume at start (alphabetical, so DDL and queries render alike)."""

STATUS_INDEX = "IX_QueuedTasks_Status_CreatedAtUtc"
"""Rows by status and creation (PostgreSQL: and Id): status filters, counts, retention."""
RECURRING_INDEX = "IX_QueuedTasks_Recurring"
"""The recurring rows by (CreatedAtUtc, Id), partial (not on MySQL)."""
CLAIM_INDEX = "IX_QueuedTasks_Claim"
"""PostgreSQL and SQLite: the partial index of pending rows by (OwnerNode, CreatedAtUtc, Id)."""
PARENT_INDEX = "IX_QueuedTasks_ParentTaskId"
"""The continuations of a parent (partial: only rows with a parent, where supported)."""
OWNER_INDEX = "IX_QueuedTasks_OwnerNode_Status"
"""The index the claims of orphaned rows seek: (OwnerNode, Status, NextRunUtc)."""

PARTIAL_INDEX_DIALECTS = frozenset({"postgresql", "sqlite"})
"""Dialects that get the partial recovery index (SQL Server filtered indexes refuse OR)."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# audit ids: BIGINT identity, but SQLite needs INTEGER PRIMARY KEY for its rowid alias
_AUDIT_ID = BigInteger().with_variant(Integer(), "sqlite")


def validate_schema_name(schema: str | None) -> str | None:
    """Return ``schema`` (``None`` or ``""`` mean the default schema) or raise if malformed."""
    if schema is None or schema == "":
        return None
    if not _IDENT.match(schema):
        raise ConfigurationError(
            f"Invalid schema name {schema!r}: use letters, digits and underscores "
            "(starting with a letter or underscore, at most 63 characters)."
        )
    return schema


def _names(*names: str) -> list[ColumnElement[str]]:
    return [literal_column(f"'{name}'") for name in names]


def recovery_index_predicate(tasks: FromClause, dialect: str | None) -> ColumnElement[bool]:
    """The status part of the recoverable predicate, with inline constants.

    It is both the WHERE of the partial recovery index and a conjunct of the pending-rows
    and compare-and-set statements, rendered identically so that SQLite's planner can
    prove the partial index usable.

    On SQLite the recoverable statuses are equalities joined by OR, not an ``IN`` list:
    SQLite evaluates a partial index's WHERE for the old and the new row of every insert
    and update, and there it builds (and clears) a small temporary index for an ``IN``
    list of more than two constants every time: a seventh of a status write's time in
    SQLite (migration ``0008``; the count triggers avoid ``IN`` for the same reason).
    """
    c = tasks.c
    names = _names(*RECOVERABLE_STATUS_NAMES)
    return or_(
        or_(*(c.Status == name for name in names)) if dialect == "sqlite" else c.Status.in_(names),
        and_(
            c.IsRecurring == true(),
            c.NextRunUtc.is_not(None),
            c.Status.in_(_names(QueuedTaskStatus.COMPLETED.value, QueuedTaskStatus.FAILED.value)),
        ),
    )


@dataclass(frozen=True, slots=True)
class TaskTables:
    """The tables of one schema, bound to their own :class:`MetaData`."""

    metadata: MetaData
    tasks: Table
    status_audit: Table
    runs_audit: Table
    logs: Table
    paused_queues: Table
    nodes: Table
    count_deltas: Table
    counts: Table
    leases: Table
    rate_buckets: Table
    concurrency_slots: Table
    batches: Table
    schema: str | None
    dialect: str | None


def build_tables(schema: str | None = None, dialect: str | None = None) -> TaskTables:
    """Build the table definitions for ``schema`` (``None``: the default schema).

    ``dialect`` decides dialect-specific indexes (the partial recovery index exists on
    PostgreSQL and SQLite only); ``None`` builds the portable set.
    """
    schema = validate_schema_name(schema)
    metadata = MetaData(schema=schema)
    tasks = Table(
        "QueuedTasks",
        metadata,
        Column("Id", GuidType(), nullable=False),
        Column("CreatedAtUtc", UtcDateTime(), nullable=False),
        Column("LastExecutionUtc", UtcDateTime(), nullable=True),
        Column("ExecutionTimeMs", Double(), nullable=False),
        Column("ScheduledExecutionUtc", UtcDateTime(), nullable=True),
        Column("Type", exact_text(500), nullable=False),
        Column("Request", long_text(), nullable=False),
        Column("Handler", exact_text(500), nullable=False),
        Column("Exception", long_text(), nullable=True),
        Column("IsRecurring", Boolean(), nullable=False),
        Column("RecurringTask", long_text(), nullable=True),
        Column("RecurringInfo", long_text(), nullable=True),
        Column("CurrentRunCount", Integer(), nullable=True),
        Column("MaxRuns", Integer(), nullable=True),
        Column("RunUntil", UtcDateTime(), nullable=True),
        Column("NextRunUtc", UtcDateTime(), nullable=True),
        Column("QueueName", exact_text(200), nullable=False),
        Column("TaskKey", exact_text(200), nullable=True),
        Column("AuditLevel", Integer(), nullable=True),
        Column("RecoveryDispatchFailureCount", Integer(), nullable=True),
        Column("Status", exact_text(15), nullable=False),
        Column("TraceContext", long_text(), nullable=True),
        Column("RetriedFrom", GuidType(), nullable=True),
        Column("OwnerNode", GuidType(), nullable=True),
        Column("Result", long_text(), nullable=True),
        Column("ParentTaskId", GuidType(), nullable=True),
        Column("ContinueWhen", exact_text(15), nullable=True),
        Column("BatchId", GuidType(), nullable=True),
        Column("WorkflowId", GuidType(), nullable=True),
        # set by the first terminal write of a batch's or a workflow's member, which counts
        # it in the records' progress (a later terminal write of the row counts nothing)
        Column("BatchCounted", Boolean(), nullable=False, server_default=false()),
        PrimaryKeyConstraint("Id", name="PK_QueuedTasks"),
        sqlite_with_rowid=False,
    )
    c = tasks.c
    # (PostgreSQL: with Id, so (CreatedAtUtc, Id) order needs no sort; the other
    # databases' secondary indexes end with the primary key already)
    Index(
        STATUS_INDEX,
        c.Status,
        c.CreatedAtUtc,
        *((c.Id,) if dialect == "postgresql" else ()),
    )
    Index("IX_QueuedTasks_QueueName_Status", c.QueueName, c.Status)
    Index("IX_QueuedTasks_CreatedAtUtc_Id", c.CreatedAtUtc, c.Id)
    # the claims seek "OwnerNode IS NULL" and "OwnerNode IN (dead nodes)" by recoverable
    # status; NextRunUtc keeps the Completed/Failed part of that range to recurring rows
    # with a next run, so a long history of finished rows is not scanned
    if dialect not in PARTIAL_INDEX_DIALECTS:  # (PostgreSQL and SQLite: CLAIM_INDEX below)
        Index(OWNER_INDEX, c.OwnerNode, c.Status, c.NextRunUtc)
    if dialect not in ("mysql", "mariadb"):  # (no partial indexes there)
        # the recurring rows, newest first: the task list's "recurring" filter
        Index(
            RECURRING_INDEX,
            c.CreatedAtUtc,
            c.Id,
            sqlite_where=c.IsRecurring == true(),
            postgresql_where=c.IsRecurring == true(),
            mssql_where=c.IsRecurring == true(),
        )
    # a parent's continuations, found by its terminal status write (only continuations are
    # in it where partial indexes exist)
    Index(
        PARENT_INDEX,
        c.ParentTaskId,
        sqlite_where=c.ParentTaskId.is_not(None),
        postgresql_where=c.ParentTaskId.is_not(None),
        mssql_where=c.ParentTaskId.is_not(None),
    )
    for column in (c.BatchId, c.WorkflowId):  # a record's members (only members, if partial)
        Index(
            f"IX_QueuedTasks_{column.name}",
            column,
            sqlite_where=column.is_not(None),
            postgresql_where=column.is_not(None),
            mssql_where=column.is_not(None),
        )
    Index(
        "IX_QueuedTasks_TaskKey",
        c.TaskKey,
        unique=True,
        sqlite_where=c.TaskKey.is_not(None),
        postgresql_where=c.TaskKey.is_not(None),
        mssql_where=c.TaskKey.is_not(None),
    )
    if dialect in PARTIAL_INDEX_DIALECTS:
        predicate = recovery_index_predicate(tasks, dialect)
        # the pending rows by owner, oldest first: a claim seeks the unowned (and the dead
        # nodes') rows in order, never walking past the rows of live nodes
        Index(
            CLAIM_INDEX,
            c.OwnerNode,
            c.CreatedAtUtc,
            c.Id,
            sqlite_where=predicate,
            postgresql_where=predicate,
        )
    fk_target = "QueuedTasks.Id" if schema is None else f"{schema}.QueuedTasks.Id"
    status_audit = Table(
        "StatusAudit",
        metadata,
        Column("Id", _AUDIT_ID, autoincrement=True, nullable=False),
        Column(
            "QueuedTaskId",
            GuidType(),
            ForeignKey(
                fk_target, ondelete="CASCADE", name="FK_StatusAudit_QueuedTasks_QueuedTaskId"
            ),
            nullable=False,
        ),
        Column("UpdatedAtUtc", UtcDateTime(), nullable=False),
        Column("NewStatus", exact_text(15), nullable=False),
        Column("Exception", long_text(), nullable=True),
        PrimaryKeyConstraint("Id", name="PK_StatusAudit"),
    )
    Index("IX_StatusAudit_QueuedTaskId", status_audit.c.QueuedTaskId)
    runs_audit = Table(
        "RunsAudit",
        metadata,
        Column("Id", _AUDIT_ID, autoincrement=True, nullable=False),
        Column(
            "QueuedTaskId",
            GuidType(),
            ForeignKey(fk_target, ondelete="CASCADE", name="FK_RunsAudit_QueuedTasks_QueuedTaskId"),
            nullable=False,
        ),
        Column("ExecutedAt", UtcDateTime(), nullable=False),
        Column("ExecutionTimeMs", Double(), nullable=False),
        Column("Status", exact_text(15), nullable=False),
        Column("Exception", long_text(), nullable=True),
        PrimaryKeyConstraint("Id", name="PK_RunsAudit"),
    )
    Index("IX_RunsAudit_QueuedTaskId", runs_audit.c.QueuedTaskId)
    logs = Table(
        "TaskExecutionLogs",
        metadata,
        Column("Id", GuidType(), nullable=False),
        Column(
            "TaskId",
            GuidType(),
            ForeignKey(
                fk_target, ondelete="CASCADE", name="FK_TaskExecutionLogs_QueuedTasks_TaskId"
            ),
            nullable=False,
        ),
        Column("TimestampUtc", UtcDateTime(), nullable=False),
        Column("Level", Unicode(20), nullable=False),
        Column("Message", Unicode(4000), nullable=False),
        Column("ExceptionDetails", long_text(), nullable=True),
        Column("SequenceNumber", Integer(), nullable=False),
        PrimaryKeyConstraint("Id", name="PK_TaskExecutionLogs"),
    )
    Index(
        "IX_TaskExecutionLogs_TaskId_TimestampUtc",
        logs.c.TaskId,
        logs.c.TimestampUtc,
        logs.c.SequenceNumber,
    )
    paused_queues = Table(
        "PausedQueues",
        metadata,
        Column("QueueName", exact_text(200), nullable=False),
        Column("PausedAtUtc", UtcDateTime(), nullable=False),
        PrimaryKeyConstraint("QueueName", name="PK_PausedQueues"),
    )
    nodes = Table(
        "Nodes",
        metadata,
        Column("Id", GuidType(), nullable=False),
        Column("HostName", exact_text(255), nullable=False),
        Column("Pid", Integer(), nullable=False),
        Column("StartedAtUtc", UtcDateTime(), nullable=False),
        Column("LastHeartbeatUtc", UtcDateTime(), nullable=False),
        Column("LeaseExpiresUtc", UtcDateTime(), nullable=False),
        Column("Queues", long_text(), nullable=True),  # a JSON array of queue names
        Column("RunsWorkers", Boolean(), nullable=False),
        PrimaryKeyConstraint("Id", name="PK_Nodes"),
    )
    # the history's counts (see .counts): triggers on QueuedTasks append one delta per
    # finished row that appears, changes or goes; the storage folds them into TaskCounts
    count_deltas = Table(
        "TaskCountDeltas",
        metadata,
        Column("Id", _AUDIT_ID, autoincrement=True, nullable=False),
        Column("CreatedAtUtc", UtcDateTime(), nullable=False),
        Column("QueueName", exact_text(200), nullable=False),
        Column("IsRecurring", Boolean(), nullable=False),
        Column("Status", exact_text(15), nullable=False),
        Column("Delta", Integer(), nullable=False),
        PrimaryKeyConstraint("Id", name="PK_TaskCountDeltas"),
    )
    counts = Table(
        "TaskCounts",
        metadata,
        Column("HourUtc", UtcDateTime(), nullable=False),
        Column("QueueName", exact_text(200), nullable=False),
        Column("Status", exact_text(15), nullable=False),
        Column("IsRecurring", Boolean(), nullable=False),
        Column("Count", BigInteger(), nullable=False),
        PrimaryKeyConstraint("HourUtc", "QueueName", "Status", "IsRecurring", name="PK_TaskCounts"),
    )
    leases = Table(
        "MaintenanceLeases",
        metadata,
        Column("Name", exact_text(100), nullable=False),
        Column("Owner", GuidType(), nullable=False),
        Column("ExpiresUtc", UtcDateTime(), nullable=False),
        PrimaryKeyConstraint("Name", name="PK_MaintenanceLeases"),
    )
    # cluster-wide throttling (evertask.cluster_limits): a bucket per (task type, key),
    # addressed by the SHA-256 of both; Tat in microseconds since the epoch (exact, so a
    # compare-and-set on it never misses for a rounding)
    rate_buckets = Table(
        "RateLimitBuckets",
        metadata,
        Column("ScopeHash", exact_text(64), nullable=False),
        Column("Tat", BigInteger(), nullable=False),
        Column("UpdatedAtUtc", UtcDateTime(), nullable=False),
        PrimaryKeyConstraint("ScopeHash", name="PK_RateLimitBuckets"),
    )
    # a handler's max_concurrency permits: slot k of a scope is held by NodeId while that
    # node's lease lasts (a dead or departed node's slots are free again)
    concurrency_slots = Table(
        "ConcurrencySlots",
        metadata,
        Column("ScopeHash", exact_text(64), nullable=False),
        Column("Slot", Integer(), nullable=False),
        Column("NodeId", GuidType(), nullable=True),
        Column("AcquiredAtUtc", UtcDateTime(), nullable=True),
        PrimaryKeyConstraint("ScopeHash", "Slot", name="PK_ConcurrencySlots"),
    )
    # batches and workflows (docs/workflows.md): a record per batch, workflow, workflow group
    # or saga compensation, with its members' progress; members name it in BatchId or
    # WorkflowId, continuations waiting for it in ParentTaskId
    batches = Table(
        "TaskBatches",
        metadata,
        Column("Id", GuidType(), nullable=False),
        Column("Kind", exact_text(15), nullable=False),
        Column("Name", exact_text(200), nullable=True),
        Column("WorkflowId", GuidType(), nullable=True),
        Column("Status", exact_text(15), nullable=False),
        Column("Total", Integer(), nullable=False),
        Column("Succeeded", Integer(), nullable=False),
        Column("Failed", Integer(), nullable=False),
        Column("Cancelled", Integer(), nullable=False),
        Column("CreatedAtUtc", UtcDateTime(), nullable=False),
        Column("FinishedAtUtc", UtcDateTime(), nullable=True),
        Column("Definition", long_text(), nullable=True),
        PrimaryKeyConstraint("Id", name="PK_TaskBatches"),
    )
    Index("IX_TaskBatches_CreatedAtUtc", batches.c.CreatedAtUtc, batches.c.Id)
    Index("IX_TaskBatches_WorkflowId", batches.c.WorkflowId)
    return TaskTables(
        metadata,
        tasks,
        status_audit,
        runs_audit,
        logs,
        paused_queues,
        nodes,
        count_deltas,
        counts,
        leases,
        rate_buckets,
        concurrency_slots,
        batches,
        schema,
        dialect,
    )
