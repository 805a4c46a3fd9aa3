"""SQLite: the claim index's recoverable statuses as equalities joined by OR.

SQLite evaluates a partial index's WHERE for the old and the new row of every insert and
update of ``QueuedTasks``, and there it builds (and clears) a small temporary index for
an ``IN`` list of more than two constants every time. The index keeps the same rows; only
the form of its WHERE changes (the statements render the same form, so the planner still
proves the index usable). Other databases are left as they are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# frozen copies (as in 0003), not the model's constants: a migration must not change with them
_INDEX = "IX_QueuedTasks_Claim"
_RECOVERABLE = ("InProgress", "Pending", "Queued", "ServiceStopped", "WaitingQueue")
_RECURRING = (
    '"IsRecurring" = 1 AND "NextRunUtc" IS NOT NULL AND "Status" IN (\'Completed\', \'Failed\')'
)


def _schema() -> str | None:
    config = op.get_context().config
    return None if config is None else config.attributes.get("schema")


def _recreate(where: str) -> None:
    schema = _schema()
    op.drop_index(_INDEX, table_name="QueuedTasks", schema=schema)
    op.create_index(
        _INDEX,
        "QueuedTasks",
        ["OwnerNode", "CreatedAtUtc", "Id"],
        schema=schema,
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        statuses = " OR ".join(f"\"Status\" = '{name}'" for name in _RECOVERABLE)
        _recreate(f"{statuses} OR {_RECURRING}")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        statuses = ", ".join(f"'{name}'" for name in _RECOVERABLE)
        _recreate(f'"Status" IN ({statuses}) OR {_RECURRING}')
