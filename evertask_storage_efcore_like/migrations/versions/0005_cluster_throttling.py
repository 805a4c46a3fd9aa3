"""Cluster-wide throttling: RateLimitBuckets (a GCRA budget per task type and key, shared
by every node) and ConcurrencySlots (a handler's max_concurrency permits, held by live
nodes).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from evertask_storage_efcore_like.types import GuidType, UtcDateTime, exact_text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _schema() -> str | None:
    config = op.get_context().config
    return None if config is None else config.attributes.get("schema")


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "RateLimitBuckets",
        sa.Column("ScopeHash", exact_text(64), nullable=False),
        sa.Column("Tat", sa.BigInteger(), nullable=False),
        sa.Column("UpdatedAtUtc", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ScopeHash", name="PK_RateLimitBuckets"),
        schema=schema,
    )
    op.create_table(
        "ConcurrencySlots",
        sa.Column("ScopeHash", exact_text(64), nullable=False),
        sa.Column("Slot", sa.Integer(), nullable=False),
        sa.Column("NodeId", GuidType(), nullable=True),
        sa.Column("AcquiredAtUtc", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("ScopeHash", "Slot", name="PK_ConcurrencySlots"),
        schema=schema,
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_table("ConcurrencySlots", schema=schema)
    op.drop_table("RateLimitBuckets", schema=schema)
