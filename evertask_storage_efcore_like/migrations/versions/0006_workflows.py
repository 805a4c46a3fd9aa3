"""Workflows: QueuedTasks.Result (a handler's JSON result), ParentTaskId and ContinueWhen
(continuations waiting for their parent) and the index of a parent's continuations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from evertask_storage_efcore_like.types import GuidType, exact_text, long_text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_INDEX = "IX_QueuedTasks_ParentTaskId"


def _schema() -> str | None:
    config = op.get_context().config
    return None if config is None else config.attributes.get("schema")


def upgrade() -> None:
    schema = _schema()
    op.add_column("QueuedTasks", sa.Column("Result", long_text(), nullable=True), schema=schema)
    op.add_column(
        "QueuedTasks", sa.Column("ParentTaskId", GuidType(), nullable=True), schema=schema
    )
    op.add_column(
        "QueuedTasks", sa.Column("ContinueWhen", exact_text(15), nullable=True), schema=schema
    )
    has_parent = sa.text('"ParentTaskId" IS NOT NULL')
    op.create_index(
        _INDEX,
        "QueuedTasks",
        ["ParentTaskId"],
        schema=schema,
        sqlite_where=has_parent,
        postgresql_where=has_parent,
        mssql_where=has_parent,
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_index(_INDEX, table_name="QueuedTasks", schema=schema)
    for column in ("ContinueWhen", "ParentTaskId", "Result"):
        op.drop_column("QueuedTasks", column, schema=schema)
