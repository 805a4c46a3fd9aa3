"""One batch of each retention step, as operations any executor runs in one transaction.

Each batch reads the next keys of its walk and deletes within them; it returns what it
deleted and where the walk goes on, so a cleanup never reads a row twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .ops import Op, Step, StepGen, StepMode
from .rows import as_datetime, as_uuid

__all__ = [
    "AuditBatchOp",
    "Batch",
    "DeleteBatchOp",
    "LogBatchOp",
    "TaskBatchOp",
    "as_datetime",
    "as_uuid",
]


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch did: rows deleted, rows walked, where the walk goes on, and
    whether the walk reached its end."""

    deleted: int
    walked: int
    cursor: Any
    done: bool


@dataclass(slots=True)
class AuditBatchOp(Op):
    """Status or runs audits: walk ``take`` rows by id after ``after``; delete the
    success rows before ``cutoff`` and the error rows before ``error_cutoff``.

    The walk is done at the table's end, or once every walked row is newer than
    ``stop_after`` (ids grow with time, so the rest is newer still).
    """

    table: str  # "status_audits" or "runs_audits"
    after: int
    take: int
    cutoff: datetime
    error_cutoff: datetime
    stop_after: datetime

    heavy = True

    def steps(self) -> StepGen:
        window = {"after": self.after, "take": self.take}
        row = yield Step(f"examine_{self.table}", window, StepMode.ROWS)
        upto, oldest, walked = row[0] if row else (None, None, 0)
        if not walked or upto is None:
            return Batch(0, 0, self.after, True)
        deleted = yield Step(
            f"delete_{self.table}",
            {
                "after": self.after,
                "upto": int(upto),
                "cutoff": self.cutoff,
                "error_cutoff": self.error_cutoff,
            },
        )
        done = walked < self.take or as_datetime(oldest) >= self.stop_after
        return Batch(int(deleted or 0), int(walked), int(upto), done)


@dataclass(slots=True)
class LogBatchOp(Op):
    """Execution logs: walk ``take`` rows by id after ``after``; delete those before
    ``cutoff``."""

    after: uuid.UUID
    take: int
    cutoff: datetime

    heavy = True

    def steps(self) -> StepGen:
        rows = yield Step("examine_logs", {"after": self.after, "take": self.take}, StepMode.ROWS)
        if not rows:
            return Batch(0, 0, self.after, True)
        walked, upto = len(rows), as_uuid(rows[-1][0])
        deleted = yield Step(
            "delete_logs_before", {"after": self.after, "upto": upto, "cutoff": self.cutoff}
        )
        return Batch(int(deleted or 0), int(walked), upto, walked < self.take)


@dataclass(slots=True)
class TaskBatchOp(Op):
    """Old Completed one-shot tasks (with their audits and logs, by cascade): walk the
    next ``take`` Completed rows created before ``cutoff`` after ``after`` =
    ``(CreatedAtUtc, Id)``; delete those that also finished before ``cutoff`` (with
    ``keep_logged``, not those that own logs)."""

    after: tuple[datetime, uuid.UUID]
    take: int
    cutoff: datetime
    keep_logged: bool = False

    heavy = True

    def steps(self) -> StepGen:
        after_created, after_id = self.after
        keys = {"after_created": after_created, "after_id": after_id, "cutoff": self.cutoff}
        rows = yield Step("examine_completed_tasks", {**keys, "take": self.take}, StepMode.ROWS)
        if not rows:
            return Batch(0, 0, self.after, True)
        last_created, last_id = rows[-1]
        upto = (as_datetime(last_created), as_uuid(last_id))
        statement = "delete_completed_tasks" + ("_without_logs" if self.keep_logged else "")
        deleted = yield Step(statement, {**keys, "upto_created": upto[0], "upto_id": upto[1]})
        return Batch(int(deleted or 0), len(rows), upto, len(rows) < self.take)


@dataclass(slots=True)
class DeleteBatchOp(Op):
    """One run of a named delete; returns the number of rows deleted."""

    statement: str
    params: dict[str, Any]

    heavy = True

    def steps(self) -> StepGen:
        n = yield Step(self.statement, self.params)
        return int(n or 0)
