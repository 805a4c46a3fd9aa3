"""SQL Server's statements: the portable set with T-SQL hints on the claim paths.

* ``try_queued`` (the recovery compare-and-set) runs ``UPDATE ... WITH (UPDLOCK,
  READPAST)``: a row another host is claiming right now is skipped, not waited for.
* ``increment_recovery_output`` counts a failed recovery and returns the new count in one
  round trip (``OUTPUT inserted.[RecoveryDispatchFailureCount]``).
* ``count_run`` / ``complete_run`` take the row's update lock up front
  (``WITH (UPDLOCK, ROWLOCK)``), like EverTask's ``usp_UpdateCurrentRun``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Update

from evertask_storage_efcore_like import Statements, TaskTables

__all__ = ["CLAIM_HINT", "ROW_HINT", "SqlServerStatements"]

CLAIM_HINT = "WITH (UPDLOCK, READPAST)"
"""Table hint of the compare-and-set claim: lock the row for update, skip locked rows."""

ROW_HINT = "WITH (UPDLOCK, ROWLOCK)"
"""Table hint of the single-row counters: take the update lock at once, on the row only."""


class SqlServerStatements(Statements):
    """:class:`~evertask_storage_efcore_like.Statements` with SQL Server's hot paths."""

    def __init__(self, tables: TaskTables) -> None:
        super().__init__(tables)
        c = tables.tasks.c
        self.try_queued = self.try_queued.with_hint(CLAIM_HINT, dialect_name="mssql")
        self.count_run = self.count_run.with_hint(ROW_HINT, dialect_name="mssql")
        self.complete_run = self.complete_run.with_hint(ROW_HINT, dialect_name="mssql")
        self.increment_recovery = self.increment_recovery.with_hint(ROW_HINT, dialect_name="mssql")
        self.increment_recovery_output: Update = self.increment_recovery.returning(
            c.RecoveryDispatchFailureCount
        )

    def hot_paths(self) -> dict[str, Any]:
        """The statements SQL Server runs with table hints or ``OUTPUT`` (for checks)."""
        return {
            "try_queued": self.try_queued,
            "count_run": self.count_run,
            "complete_run": self.complete_run,
            "increment_recovery": self.increment_recovery,
            "increment_recovery_output": self.increment_recovery_output,
        }
