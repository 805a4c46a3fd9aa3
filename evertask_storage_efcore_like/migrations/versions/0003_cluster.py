"""Cluster mode: the Nodes table (hosts and their leases) and QueuedTasks.OwnerNode.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from evertask_storage_efcore_like.types import GuidType, UtcDateTime, exact_text, long_text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


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
    op.add_column("QueuedTasks", sa.Column("OwnerNode", GuidType(), nullable=True), schema=schema)
    if dialect not in ("postgresql", "sqlite"):
        # the claims' seek; NextRunUtc keeps finished one-shot rows out of its ranges
        op.create_index(
            "IX_QueuedTasks_OwnerNode_Status",
            "QueuedTasks",
            ["OwnerNode", "Status", "NextRunUtc"],
            schema=schema,
        )
    else:
        # the pending rows by owner, oldest first: a claim seeks the unowned (and the dead
        # nodes') rows in order, never walking past the rows of live nodes. It replaces the
        # recovery index (pending rows by creation), which startup recovery no longer
        # walks, so a status change keeps up as many indexes as before.
        op.drop_index("IX_QueuedTasks_Recovery", table_name="QueuedTasks", schema=schema)
        op.create_index(
            "IX_QueuedTasks_Claim",
            "QueuedTasks",
            ["OwnerNode", "CreatedAtUtc", "Id"],
            schema=schema,
            sqlite_where=_recovery_where(dialect),
            postgresql_where=_recovery_where(dialect),
        )
    op.create_table(
        "Nodes",
        sa.Column("Id", GuidType(), nullable=False),
        sa.Column("HostName", exact_text(255), nullable=False),
        sa.Column("Pid", sa.Integer(), nullable=False),
        sa.Column("StartedAtUtc", UtcDateTime(), nullable=False),
        sa.Column("LastHeartbeatUtc", UtcDateTime(), nullable=False),
        sa.Column("LeaseExpiresUtc", UtcDateTime(), nullable=False),
        sa.Column("Queues", long_text(), nullable=True),
        sa.Column("RunsWorkers", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("Id", name="PK_Nodes"),
        schema=schema,
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_table("Nodes", schema=schema)
    dialect = op.get_context().dialect.name
    if dialect in ("postgresql", "sqlite"):
        op.drop_index("IX_QueuedTasks_Claim", table_name="QueuedTasks", schema=schema)
        op.create_index(
            "IX_QueuedTasks_Recovery",
            "QueuedTasks",
            ["CreatedAtUtc", "Id"],
            schema=schema,
            sqlite_where=_recovery_where(dialect),
            postgresql_where=_recovery_where(dialect),
        )
    else:
        op.drop_index("IX_QueuedTasks_OwnerNode_Status", table_name="QueuedTasks", schema=schema)
    op.drop_column("QueuedTasks", "OwnerNode", schema=schema)
