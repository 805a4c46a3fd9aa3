"""The storage suite's SQL floor: the database alone, running what a run commits.

For each task the SQL storage commits two writes: the dispatch's row (``PersistOp``) and
the Completed transition (``TransitionOp``: the status update, the audit rows of the
level, the probe for a batch or continuations to release). The floor builds those two
operations for ``n`` tasks as the storage builds them, in transactions of the size the
EverTask run committed, and has the SQLite storage's own batch code
(:class:`~evertask_storage_sqlite.grouped.GroupedSteps`) run them on a scratch copy of a
fresh database, recording every statement and its arguments. The clock then times only
those statements replayed on another copy, on one ``sqlite3`` connection with the
writer's pragmas: no engine, no asyncio, no argument conversion, no thread hop. What any
implementation issuing these statements has to pay, measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect

from evertask.ids import uuid7
from evertask.storage.models import wants_status_audit
from evertask_abstractions import AuditLevel, QueuedTaskStatus
from evertask_storage_efcore_like.ops import Op, PersistOp, Step, StepMode, TransitionOp
from evertask_storage_efcore_like.precompiled import PrecompiledCache
from evertask_storage_sqlite import SqliteTaskStorage
from evertask_storage_sqlite.grouped import GroupedSteps

from .engine import Noop, storage_row

__all__ = ["Recording", "Statement", "completed_op", "persist_op", "record", "sql_floor"]

Statement = tuple[str, tuple[Any, ...]]
"""One execution: the SQL text and its positional arguments."""

_COMPLETED = QueuedTaskStatus.COMPLETED


def persist_op(row: Any, now: datetime) -> Op:
    """The operation ``SqlTaskStorage.persist`` submits for ``row``."""
    audit = row.status is not QueuedTaskStatus.WAITING_QUEUE and wants_status_audit(
        row.audit_level, row.status, row.exception
    )
    return PersistOp(row, now if audit else None)


def completed_op(task_id: uuid.UUID, level: AuditLevel, now: datetime, owner: uuid.UUID) -> Op:
    """The operation ``set_completed`` submits after an InProgress write it withdrew (the
    engine's path for a no-op task): its audit row, if the level keeps one, rides along."""
    prior = now if wants_status_audit(level, QueuedTaskStatus.IN_PROGRESS, None) else None
    audit = now if wants_status_audit(level, _COMPLETED, None) else None
    return TransitionOp(
        task_id, _COMPLETED.value, None, now, 0.01, False, audit, False, prior, None, now, owner
    )


class Recording:
    """A sqlite3 connection that notes in ``seen`` each statement it executes."""

    def __init__(self, cx: sqlite3.Connection, seen: list[Statement] | None = None) -> None:
        self._cx = cx
        self.seen: list[Statement] = [] if seen is None else seen

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        self.seen.append((sql, tuple(args)))
        return self._cx.execute(sql, args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cx, name)


def record(path: str, transactions: Sequence[Sequence[Op]], sql: PrecompiledCache) -> list[Any]:
    """Run ``transactions`` (each a batch of operations) on the database at ``path`` as the
    SQLite executor runs a batch; the statements of each, as executed."""
    grouped = GroupedSteps(sql)
    cx = sqlite3.connect(path, isolation_level=None)
    recording = Recording(cx)

    def run(step: Step) -> Any:
        prepared = sql[step.name]
        if step.mode is StepMode.MANY:
            raise AssertionError(f"unexpected executemany step {step.name}")
        cursor = recording.execute(prepared.sql, prepared.args(step.params))
        return cursor.fetchall() if step.mode is StepMode.ROWS else cursor.rowcount

    out: list[list[Statement]] = []
    try:
        cx.execute("PRAGMA foreign_keys = ON")
        for ops in transactions:
            recording.seen = []
            outcomes: list[Any] = [None] * len(ops)
            cx.execute("BEGIN IMMEDIATE")
            grouped.run_batch(recording, ops, outcomes, run)  # type: ignore[arg-type]
            cx.execute("COMMIT")
            out.append(recording.seen)
    finally:
        cx.close()
    return out


async def _fresh_database(directory: str) -> tuple[str, Any]:
    path = os.path.join(directory, "floor.db")
    storage = SqliteTaskStorage(path)
    await storage.open()
    statements = storage.statements
    await storage.close()
    return path, statements


def _transactions(level: AuditLevel, n: int, size: int) -> list[list[Op]]:
    """``n`` tasks' writes, ``size`` operations per transaction: the inserts of ``size``
    tasks, then their completions, and so on."""
    node = uuid.uuid4()
    now = datetime.now(UTC)
    out: list[list[Op]] = []
    for start in range(0, n, size):
        rows = [
            replace(storage_row(uuid7(), Noop(n=i), node), audit_level=level)
            for i in range(start, min(n, start + size))
        ]
        out.append([persist_op(row, now) for row in rows])
        out.append([completed_op(row.id, level, now, node) for row in rows])
    return out


def _run(path: str, transactions: Sequence[Sequence[Statement]], synchronous: str) -> float:
    cx = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in (
            "PRAGMA journal_mode = WAL",
            f"PRAGMA synchronous = {synchronous}",
            "PRAGMA foreign_keys = ON",
            "PRAGMA wal_autocheckpoint = 0",
        ):
            cx.execute(pragma)
        execute = cx.execute
        start = time.perf_counter()
        for transaction in transactions:
            execute("BEGIN IMMEDIATE")
            for text, args in transaction:
                execute(text, args).fetchall()
            execute("COMMIT")
        return time.perf_counter() - start
    finally:
        cx.close()


def sql_floor(
    level: AuditLevel, n: int, ops_per_batch: float, synchronous: str = "NORMAL"
) -> float:
    """Tasks per second of the database alone for ``n`` tasks at audit ``level``, in
    transactions of ``ops_per_batch`` writes (the EverTask run's mean)."""
    directory = tempfile.mkdtemp(prefix="evertask-bench-floor-")
    path, statements = asyncio.run(_fresh_database(directory))
    scratch = os.path.join(directory, "scratch.db")
    shutil.copyfile(path, scratch)
    sql = PrecompiledCache(statements, aiosqlite_dialect())
    transactions = record(scratch, _transactions(level, n, max(1, round(ops_per_batch))), sql)
    return n / _run(path, transactions, synchronous)
