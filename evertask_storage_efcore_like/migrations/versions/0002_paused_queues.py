"""PausedQueues: the queues an operator paused (pausing survives restarts).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from evertask_storage_efcore_like.types import UtcDateTime, exact_text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _schema() -> str | None:
    config = op.get_context().config
    return None if config is None else config.attributes.get("schema")


def upgrade() -> None:
    op.create_table(
        "PausedQueues",
        sa.Column("QueueName", exact_text(200), nullable=False),
        sa.Column("PausedAtUtc", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("QueueName", name="PK_PausedQueues"),
        schema=_schema(),
    )


def downgrade() -> None:
    op.drop_table("PausedQueues", schema=_schema())
