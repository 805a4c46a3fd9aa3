"""History at scale: the finished rows' counts (TaskCountDeltas, TaskCounts, their
triggers), MaintenanceLeases (one node runs retention at a time), a partial index of the
recurring rows (not on MySQL) and, on PostgreSQL, Id in the status index.

The existing finished rows are counted once, as deltas the storage folds at its next
start.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from evertask_storage_efcore_like.count_triggers import (
    FINISHED_STATUS_NAMES,
    create_count_triggers,
    drop_count_triggers,
)
from evertask_storage_efcore_like.schema import RECURRING_INDEX, STATUS_INDEX
from evertask_storage_efcore_like.types import GuidType, UtcDateTime, exact_text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _schema() -> str | None:
    config = op.get_context().config
    return None if config is None else config.attributes.get("schema")


def upgrade() -> None:
    schema = _schema()
    dialect = op.get_context().dialect.name
    op.create_table(
        "TaskCountDeltas",
        sa.Column("Id", _ID, autoincrement=True, nullable=False),
        sa.Column("CreatedAtUtc", UtcDateTime(), nullable=False),
        sa.Column("QueueName", exact_text(200), nullable=False),
        sa.Column("IsRecurring", sa.Boolean(), nullable=False),
        sa.Column("Status", exact_text(15), nullable=False),
        sa.Column("Delta", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("Id", name="PK_TaskCountDeltas"),
        schema=schema,
    )
    op.create_table(
        "TaskCounts",
        sa.Column("HourUtc", UtcDateTime(), nullable=False),
        sa.Column("QueueName", exact_text(200), nullable=False),
        sa.Column("Status", exact_text(15), nullable=False),
        sa.Column("IsRecurring", sa.Boolean(), nullable=False),
        sa.Column("Count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "HourUtc", "QueueName", "Status", "IsRecurring", name="PK_TaskCounts"
        ),
        schema=schema,
    )
    op.create_table(
        "MaintenanceLeases",
        sa.Column("Name", exact_text(100), nullable=False),
        sa.Column("Owner", GuidType(), nullable=False),
        sa.Column("ExpiresUtc", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("Name", name="PK_MaintenanceLeases"),
        schema=schema,
    )
    if dialect == "postgresql":
        # (Status, CreatedAtUtc, Id): pages and retention walks in (CreatedAtUtc, Id) order
        # within a status without sorting every row of it (the other databases' indexes
        # end with the primary key already)
        op.drop_index(STATUS_INDEX, table_name="QueuedTasks", schema=schema)
        op.create_index(
            STATUS_INDEX, "QueuedTasks", ["Status", "CreatedAtUtc", "Id"], schema=schema
        )
    if dialect not in ("mysql", "mariadb"):
        recurring = sa.text(
            {"sqlite": '"IsRecurring" = 1', "mssql": "[IsRecurring] = 1"}.get(
                dialect, '"IsRecurring" = true'
            )
        )
        op.create_index(
            RECURRING_INDEX,
            "QueuedTasks",
            ["CreatedAtUtc", "Id"],
            schema=schema,
            sqlite_where=recurring,
            postgresql_where=recurring,
            mssql_where=recurring,
        )
    for statement in create_count_triggers(dialect, schema):
        op.execute(sa.text(statement).execution_options(no_parameters=True))
    # the finished rows already there, counted like the triggers count new ones
    tasks = sa.table(
        "QueuedTasks",
        sa.column("CreatedAtUtc"),
        sa.column("QueueName"),
        sa.column("IsRecurring"),
        sa.column("Status"),
        schema=schema,
    )
    deltas = sa.table(
        "TaskCountDeltas",
        sa.column("CreatedAtUtc"),
        sa.column("QueueName"),
        sa.column("IsRecurring"),
        sa.column("Status"),
        sa.column("Delta"),
        schema=schema,
    )
    existing = sa.select(
        tasks.c.CreatedAtUtc,
        tasks.c.QueueName,
        tasks.c.IsRecurring,
        tasks.c.Status,
        sa.literal_column("1"),
    ).where(tasks.c.Status.in_([sa.literal_column(f"'{n}'") for n in FINISHED_STATUS_NAMES]))
    op.execute(
        deltas.insert().from_select(
            ["CreatedAtUtc", "QueueName", "IsRecurring", "Status", "Delta"], existing
        )
    )


def downgrade() -> None:
    schema = _schema()
    dialect = op.get_context().dialect.name
    for statement in drop_count_triggers(dialect, schema):
        op.execute(sa.text(statement))
    if dialect not in ("mysql", "mariadb"):
        op.drop_index(RECURRING_INDEX, table_name="QueuedTasks", schema=schema)
    if dialect == "postgresql":
        op.drop_index(STATUS_INDEX, table_name="QueuedTasks", schema=schema)
        op.create_index(STATUS_INDEX, "QueuedTasks", ["Status", "CreatedAtUtc"], schema=schema)
    op.drop_table("MaintenanceLeases", schema=schema)
    op.drop_table("TaskCounts", schema=schema)
    op.drop_table("TaskCountDeltas", schema=schema)
