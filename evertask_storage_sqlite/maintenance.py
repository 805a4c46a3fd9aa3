"""SQLite's maintenance: statements for giving freed pages back, and keeping the planner's
statistics current.

A database created by this version uses ``auto_vacuum = INCREMENTAL``: after a cleanup,
:class:`VacuumOp` returns the freed pages to the file system in small steps through the
writer (a step holds the write lock for about a millisecond). A database created
before keeps its free pages for reuse; ``VACUUM`` (offline) converts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import TextClause, text

from evertask_storage_efcore_like import Statements, TaskTables
from evertask_storage_efcore_like.ops import Op, Step, StepGen, StepMode

__all__ = ["OPTIMIZE_PRAGMAS", "VACUUM_PAGES", "SqliteStatements", "VacuumOp"]

VACUUM_PAGES = 64
"""Pages (4 KiB each by default) one vacuum step frees."""

OPTIMIZE_PRAGMAS = ("PRAGMA analysis_limit = 400", "PRAGMA optimize = 0x10002")
"""Refresh the planner's statistics where they are missing or stale, reading at most
about 400 rows per index (cheap on any size of database)."""


class SqliteStatements(Statements):
    """The portable statements plus SQLite's vacuum step."""

    def __init__(self, tables: TaskTables) -> None:
        super().__init__(tables)
        # one page per statement step, and the drivers step a PRAGMA once: one page a call
        self.incremental_vacuum: TextClause = text("PRAGMA incremental_vacuum(1)")
        self.freelist_count: TextClause = text("PRAGMA freelist_count")


@dataclass(slots=True)
class VacuumOp(Op):
    """Free up to :data:`VACUUM_PAGES` pages; returns how many free pages remain."""

    heavy = True

    def steps(self) -> StepGen:
        for _ in range(VACUUM_PAGES):
            yield Step("incremental_vacuum", {})
        remaining = yield Step("freelist_count", {}, StepMode.SCALAR)
        return int(remaining or 0)
