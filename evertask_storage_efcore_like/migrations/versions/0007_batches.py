"""Batches and workflows: the TaskBatches records, QueuedTasks.BatchId / WorkflowId (the
records a row counts in) and BatchCounted (counted once), with their indexes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from evertask_storage_efcore_like.types import GuidType, UtcDateTime, exact_text, long_text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _schema() -> str | None:
    config = op.get_context().config
    return None if config is None else config.attributes.get("schema")


def upgrade() -> None:
    schema = _schema()
    op.add_column("QueuedTasks", sa.Column("BatchId", GuidType(), nullable=True), schema=schema)
    op.add_column("QueuedTasks", sa.Column("WorkflowId", GuidType(), nullable=True), schema=schema)
    op.add_column(
        "QueuedTasks",
        sa.Column("BatchCounted", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema=schema,
    )
    for column in ("BatchId", "WorkflowId"):
        present = sa.text(f'"{column}" IS NOT NULL')
        op.create_index(
            f"IX_QueuedTasks_{column}",
            "QueuedTasks",
            [column],
            schema=schema,
            sqlite_where=present,
            postgresql_where=present,
            mssql_where=present,
        )
    op.create_table(
        "TaskBatches",
        sa.Column("Id", GuidType(), nullable=False),
        sa.Column("Kind", exact_text(15), nullable=False),
        sa.Column("Name", exact_text(200), nullable=True),
        sa.Column("WorkflowId", GuidType(), nullable=True),
        sa.Column("Status", exact_text(15), nullable=False),
        sa.Column("Total", sa.Integer(), nullable=False),
        sa.Column("Succeeded", sa.Integer(), nullable=False),
        sa.Column("Failed", sa.Integer(), nullable=False),
        sa.Column("Cancelled", sa.Integer(), nullable=False),
        sa.Column("CreatedAtUtc", UtcDateTime(), nullable=False),
        sa.Column("FinishedAtUtc", UtcDateTime(), nullable=True),
        sa.Column("Definition", long_text(), nullable=True),
        sa.PrimaryKeyConstraint("Id", name="PK_TaskBatches"),
        schema=schema,
    )
    op.create_index(
        "IX_TaskBatches_CreatedAtUtc", "TaskBatches", ["CreatedAtUtc", "Id"], schema=schema
    )
    op.create_index("IX_TaskBatches_WorkflowId", "TaskBatches", ["WorkflowId"], schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_table("TaskBatches", schema=schema)
    for column in ("BatchId", "WorkflowId"):
        op.drop_index(f"IX_QueuedTasks_{column}", table_name="QueuedTasks", schema=schema)
    # (SQL Server: the server default's constraint goes first)
    op.drop_column("QueuedTasks", "BatchCounted", schema=schema, mssql_drop_default=True)
    for column in ("WorkflowId", "BatchId"):
        op.drop_column("QueuedTasks", column, schema=schema)
