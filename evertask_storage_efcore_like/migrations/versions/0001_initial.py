"""Initial EverTask schema: QueuedTasks, StatusAudit, RunsAudit, TaskExecutionLogs.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from evertask_storage_efcore_like.types import GuidType, UtcDateTime, exact_text, long_text

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_AUDIT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _schema() -> str | None:
    config = op.get_context().config
    return None if config is None else config.attributes.get("schema")


def _recovery_where(dialect: str) -> sa.TextClause:
    true = "1" if dialect == "sqlite" else "true"
    return sa.text(
        "\"Status\" IN ('InProgress', 'Pending', 'Queued', 'ServiceStopped', 'WaitingQueue') "
        f'OR "IsRecurring" = {true} AND "NextRunUtc" IS NOT NULL '
        "AND \"Status\" IN ('Completed', 'Failed')"
    )


def upgrade() -> None:
    schema = _schema()
    dialect = op.get_context().dialect.name
    parent = "QueuedTasks.Id" if schema is None else f"{schema}.QueuedTasks.Id"
    op.create_table(
        "QueuedTasks",
        sa.Column("Id", GuidType(), nullable=False),
        sa.Column("CreatedAtUtc", UtcDateTime(), nullable=False),
        sa.Column("LastExecutionUtc", UtcDateTime(), nullable=True),
        sa.Column("ExecutionTimeMs", sa.Double(), nullable=False),
        sa.Column("ScheduledExecutionUtc", UtcDateTime(), nullable=True),
        sa.Column("Type", exact_text(500), nullable=False),
        sa.Column("Request", long_text(), nullable=False),
        sa.Column("Handler", exact_text(500), nullable=False),
        sa.Column("Exception", long_text(), nullable=True),
        sa.Column("IsRecurring", sa.Boolean(), nullable=False),
        sa.Column("RecurringTask", long_text(), nullable=True),
        sa.Column("RecurringInfo", long_text(), nullable=True),
        sa.Column("CurrentRunCount", sa.Integer(), nullable=True),
        sa.Column("MaxRuns", sa.Integer(), nullable=True),
        sa.Column("RunUntil", UtcDateTime(), nullable=True),
        sa.Column("NextRunUtc", UtcDateTime(), nullable=True),
        sa.Column("QueueName", exact_text(200), nullable=False),
        sa.Column("TaskKey", exact_text(200), nullable=True),
        sa.Column("AuditLevel", sa.Integer(), nullable=True),
        sa.Column("RecoveryDispatchFailureCount", sa.Integer(), nullable=True),
        sa.Column("Status", exact_text(15), nullable=False),
        sa.Column("TraceContext", long_text(), nullable=True),
        sa.Column("RetriedFrom", GuidType(), nullable=True),
        sa.PrimaryKeyConstraint("Id", name="PK_QueuedTasks"),
        schema=schema,
        sqlite_with_rowid=False,  # the primary key is the table: one B-tree less per write
    )
    op.create_index(
        "IX_QueuedTasks_Status_CreatedAtUtc",
        "QueuedTasks",
        ["Status", "CreatedAtUtc"],
        schema=schema,
    )
    op.create_index(
        "IX_QueuedTasks_QueueName_Status", "QueuedTasks", ["QueueName", "Status"], schema=schema
    )
    op.create_index(
        "IX_QueuedTasks_CreatedAtUtc_Id", "QueuedTasks", ["CreatedAtUtc", "Id"], schema=schema
    )
    not_null_key = sa.text('"TaskKey" IS NOT NULL')
    op.create_index(
        "IX_QueuedTasks_TaskKey",
        "QueuedTasks",
        ["TaskKey"],
        unique=True,
        schema=schema,
        sqlite_where=not_null_key,
        postgresql_where=not_null_key,
        mssql_where=sa.text("[TaskKey] IS NOT NULL"),
    )
    if dialect in ("postgresql", "sqlite"):
        op.create_index(
            "IX_QueuedTasks_Recovery",
            "QueuedTasks",
            ["CreatedAtUtc", "Id"],
            schema=schema,
            sqlite_where=_recovery_where(dialect),
            postgresql_where=_recovery_where(dialect),
        )

    op.create_table(
        "StatusAudit",
        sa.Column("Id", _AUDIT_ID, autoincrement=True, nullable=False),
        sa.Column("QueuedTaskId", GuidType(), nullable=False),
        sa.Column("UpdatedAtUtc", UtcDateTime(), nullable=False),
        sa.Column("NewStatus", exact_text(15), nullable=False),
        sa.Column("Exception", long_text(), nullable=True),
        sa.PrimaryKeyConstraint("Id", name="PK_StatusAudit"),
        sa.ForeignKeyConstraint(
            ["QueuedTaskId"],
            [parent],
            ondelete="CASCADE",
            name="FK_StatusAudit_QueuedTasks_QueuedTaskId",
        ),
        schema=schema,
    )
    op.create_index("IX_StatusAudit_QueuedTaskId", "StatusAudit", ["QueuedTaskId"], schema=schema)

    op.create_table(
        "RunsAudit",
        sa.Column("Id", _AUDIT_ID, autoincrement=True, nullable=False),
        sa.Column("QueuedTaskId", GuidType(), nullable=False),
        sa.Column("ExecutedAt", UtcDateTime(), nullable=False),
        sa.Column("ExecutionTimeMs", sa.Double(), nullable=False),
        sa.Column("Status", exact_text(15), nullable=False),
        sa.Column("Exception", long_text(), nullable=True),
        sa.PrimaryKeyConstraint("Id", name="PK_RunsAudit"),
        sa.ForeignKeyConstraint(
            ["QueuedTaskId"],
            [parent],
            ondelete="CASCADE",
            name="FK_RunsAudit_QueuedTasks_QueuedTaskId",
        ),
        schema=schema,
    )
    op.create_index("IX_RunsAudit_QueuedTaskId", "RunsAudit", ["QueuedTaskId"], schema=schema)

    op.create_table(
        "TaskExecutionLogs",
        sa.Column("Id", GuidType(), nullable=False),
        sa.Column("TaskId", GuidType(), nullable=False),
        sa.Column("TimestampUtc", UtcDateTime(), nullable=False),
        sa.Column("Level", sa.Unicode(20), nullable=False),
        sa.Column("Message", sa.Unicode(4000), nullable=False),
        sa.Column("ExceptionDetails", long_text(), nullable=True),
        sa.Column("SequenceNumber", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("Id", name="PK_TaskExecutionLogs"),
        sa.ForeignKeyConstraint(
            ["TaskId"],
            [parent],
            ondelete="CASCADE",
            name="FK_TaskExecutionLogs_QueuedTasks_TaskId",
        ),
        schema=schema,
    )
    op.create_index(
        "IX_TaskExecutionLogs_TaskId_TimestampUtc",
        "TaskExecutionLogs",
        ["TaskId", "TimestampUtc", "SequenceNumber"],
        schema=schema,
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_table("TaskExecutionLogs", schema=schema)
    op.drop_table("RunsAudit", schema=schema)
    op.drop_table("StatusAudit", schema=schema)
    op.drop_table("QueuedTasks", schema=schema)
