"""SQL Server's statements: the portable set with T-SQL hints on the claim paths.

* ``try_queued`` (the recovery compare-and-set) runs ``UPDATE ... WITH (UPDLOCK,
  READPAST)``: a row another host is claiming right now is skipped, not waited for.
* ``try_queued_owned`` (the same with an owner check) likewise.
* the candidate selects of ``claim_orphans`` (``claim_unowned``, ``claim_orphaned`` and
  their ``_due`` and ``_later`` forms) read ``WITH (UPDLOCK, READPAST, ROWLOCK, INDEX(...))``: SQL
  Server's ``FOR UPDATE SKIP LOCKED`` (SQLAlchemy renders no ``FOR UPDATE`` for it), on
  the owner index.
* ``count_run`` / ``complete_run`` take the row's update lock up front
  (``WITH (UPDLOCK, ROWLOCK)``), like EverTask's ``usp_UpdateCurrentRun``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from evertask_storage_efcore_like import Statements, TaskTables
from evertask_storage_efcore_like.schema import OWNER_INDEX

__all__ = ["CLAIM_HINT", "CLAIM_ROWS_HINT", "ROW_HINT", "SqlServerStatements"]

CLAIM_HINT = "WITH (UPDLOCK, READPAST)"
"""Table hint of the compare-and-set claim: lock the row for update, skip locked rows."""

CLAIM_ROWS_HINT = f"WITH (UPDLOCK, READPAST, ROWLOCK, INDEX({OWNER_INDEX}))"
"""Table hint of the candidate selects of a claim: row update locks, skip locked rows,
seek the owner index (no partial recovery index here; not a walk of the whole history)."""

ROW_HINT = "WITH (UPDLOCK, ROWLOCK)"
"""Table hint of the single-row counters: take the update lock at once, on the row only."""


class SqlServerStatements(Statements):
    """:class:`~evertask_storage_efcore_like.Statements` with SQL Server's hot paths."""

    def __init__(self, tables: TaskTables) -> None:
        super().__init__(tables)
        self.try_queued = self.try_queued.with_hint(CLAIM_HINT, dialect_name="mssql")
        self.try_queued_owned = self.try_queued_owned.with_hint(CLAIM_HINT, dialect_name="mssql")
        self.claim_unowned = self._locked(self.claim_unowned)
        self.claim_unowned_due = self._locked(self.claim_unowned_due)
        self.claim_orphaned = self._locked(self.claim_orphaned)
        self.claim_orphaned_due = self._locked(self.claim_orphaned_due)
        self.claim_unowned_later = self._locked(self.claim_unowned_later)
        self.claim_orphaned_later = self._locked(self.claim_orphaned_later)
        self.count_run = self.count_run.with_hint(ROW_HINT, dialect_name="mssql")
        self.complete_run = self.complete_run.with_hint(ROW_HINT, dialect_name="mssql")
        self.increment_recovery = self.increment_recovery.with_hint(ROW_HINT, dialect_name="mssql")

    def _locked(self, candidates: Select[Any]) -> Select[Any]:
        return candidates.with_hint(self.tables.tasks, CLAIM_ROWS_HINT, dialect_name="mssql")

    def hot_paths(self) -> dict[str, Any]:
        """The statements SQL Server runs with table hints (for checks).

        No statement on ``QueuedTasks`` may use ``OUTPUT`` without ``INTO``: the table has
        the count trigger, and SQL Server refuses that combination (error 334)."""
        return {
            "try_queued": self.try_queued,
            "try_queued_owned": self.try_queued_owned,
            "count_run": self.count_run,
            "complete_run": self.complete_run,
            "increment_recovery": self.increment_recovery,
        }
