"""The SQLite batch executor: one transaction per batch on the single writer connection.

aiosqlite runs each call on the connection's own thread, and a thread round trip
(around 0.1 ms) costs more than committing a small batch in WAL mode with
``synchronous=NORMAL`` (no fsync at commit). So:

- a small batch (at most ``inline_max_ops`` writes) commits right on the event loop,
  provided the write lock is free at once (the connection's busy timeout is 0 here);
- a large batch, a batch that finds the database locked by another connection or
  process, and maintenance (retention, folds) run on aiosqlite's thread instead, where
  waiting for the lock (up to the busy timeout) never blocks the loop. Automatic
  checkpoints are off on the writer: every ``checkpoint_every`` batches the storage runs
  a passive checkpoint (which syncs the database file) on a connection of its own, so
  neither the loop nor the writer waits for it (without a ``checkpointer``, that
  batch runs on the thread and checkpoints after committing).

With ``synchronous="FULL"`` every commit syncs, so every batch runs on the thread.

Either way a batch is ``BEGIN IMMEDIATE``, every operation's steps as precompiled SQL,
``COMMIT``; the same step of many operations runs as one statement (:mod:`.grouped`,
a declared fast path). A constraint violation undoes only its statement in SQLite, so a
task-key conflict fails only its own operation and the rest of the batch commits.

The thread path calls ``aiosqlite.Connection._execute`` (the method behind all of
aiosqlite's calls) to run the whole batch in one hop, and both paths use its sqlite3
connection; should a future aiosqlite drop either, the executor falls back to the
public API (one hop per statement).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from evertask.storage.protocol import fast_paths_enabled
from evertask_storage_efcore_like.errors import map_integrity_error
from evertask_storage_efcore_like.ops import Op, Step, StepMode, drive_async
from evertask_storage_efcore_like.precompiled import PrecompiledCache
from evertask_storage_efcore_like.statements import Statements

from .binding import bind_none_directly
from .grouped import SINCE, GroupedSteps, run_alone

__all__ = ["SqliteExecutor"]


class _Busy(Exception):
    """The write lock was not free (inline attempt); nothing was written."""


class SqliteExecutor:
    """Runs batches on the single writer connection of a SQLite database."""

    def __init__(
        self,
        engine: AsyncEngine,
        statements: Statements,
        *,
        busy_timeout_ms: int,
        inline_max_ops: int,
        checkpoint_every: int = 500,
        checkpointer: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        bind_none_directly()
        self._sql = PrecompiledCache(statements, engine.dialect)
        self._grouped = GroupedSteps(self._sql) if sqlite3.sqlite_version_info >= SINCE else None
        self._busy_timeout_ms = busy_timeout_ms
        self._inline_max_ops = inline_max_ops
        self._checkpoint_every = checkpoint_every
        self._checkpointer = checkpointer
        self._since_checkpoint = 0
        self._connection: AsyncConnection | None = None
        self._driver: Any = None  # the aiosqlite.Connection
        self._direct = True
        # whether the connection waits for locks: its busy timeout (the storage's connect
        # pragma, this same value) until _ensure sets 0 for batches on the loop
        self._waits = True
        self.inline_batches = 0
        """Batches committed on the event loop."""
        self.thread_batches = 0
        """Batches committed on aiosqlite's thread."""

    async def _ensure(self) -> Any:
        if self._driver is None:
            connection = await self._engine.connect()
            raw = await connection.get_raw_connection()
            self._connection = connection
            self._driver = raw.driver_connection
            # the grouped statements' small temporary tables (a VALUES list, what RETURNING
            # returns, an IN list) in memory, not each behind a temporary file's pager: 11%
            # of the batches' SQL time (docs/benchmarks.md). Set here, after the migrations
            # ran on this connection, so that their index builds still sort in files.
            await self._driver.execute("PRAGMA temp_store = MEMORY")
            # a declared fast path (off with EVERTASK_FAST_PATHS=0): small batches commit on
            # the event loop through aiosqlite's own connection, others on its thread
            self._direct = (
                fast_paths_enabled()
                and hasattr(self._driver, "_execute")
                and hasattr(self._driver, "_conn")
            )
            if self._direct and self._inline_max_ops > 0:
                # from now on lock waits and checkpoints happen on the thread, never inline
                # (migrations, which ran before on this connection, still waited for locks)
                for pragma in ("PRAGMA busy_timeout = 0", "PRAGMA wal_autocheckpoint = 0"):
                    await self._driver.execute(pragma)
                self._waits = False
        return self._driver

    async def execute(self, ops: Sequence[Op]) -> list[Any]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` for the whole batch."""
        driver = await self._ensure()
        if not self._direct:
            return await self._run_batch_async(driver, ops)
        cx: sqlite3.Connection = driver._conn
        checkpoint = self._inline_max_ops > 0 and self._since_checkpoint >= self._checkpoint_every
        if checkpoint and self._checkpointer is not None:
            self._checkpointer()  # on another connection: the writer does not wait for it
            self._since_checkpoint, checkpoint = 0, False
        if len(ops) <= self._inline_max_ops and not checkpoint and not any(op.heavy for op in ops):
            try:
                outcomes = self._run_batch(cx, ops, False, False)
            except _Busy:
                pass  # another connection writes: wait for the lock on the thread
            else:
                self._since_checkpoint += 1
                self.inline_batches += 1
                return outcomes
        outcomes = await driver._execute(self._run_batch, cx, ops, True, checkpoint)
        self.thread_batches += 1
        if checkpoint:
            self._since_checkpoint = 0
        else:
            self._since_checkpoint += 1
        return outcomes  # type: ignore[no-any-return]

    def map_error(self, op: Op, error: BaseException) -> BaseException:
        """Unique violations become the protocol's errors."""
        if isinstance(error, sqlite3.IntegrityError):
            return map_integrity_error(op, error)
        return error

    async def close(self) -> None:
        """Checkpoint the WAL and return the writer connection."""
        connection, self._connection, driver, self._driver = (
            self._connection,
            None,
            self._driver,
            None,
        )
        if connection is None:
            return
        try:
            if self._direct and self._inline_max_ops > 0:
                await driver._execute(driver._conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            await connection.close()

    # -- the batch (on the loop or on aiosqlite's thread) ------------------------------------
    def _run_batch(
        self, cx: sqlite3.Connection, ops: Sequence[Op], wait: bool, checkpoint: bool
    ) -> list[Any]:
        sql = self._sql

        def run(step: Step) -> Any:
            prepared = sql[step.name]
            if step.mode is StepMode.MANY:
                cx.executemany(prepared.sql, [prepared.args(p) for p in step.params])
                return None
            cursor = cx.execute(prepared.sql, prepared.args(step.params))
            if step.mode is StepMode.SCALAR:
                row = cursor.fetchone()
                return None if row is None else row[0]
            if step.mode is StepMode.ROWS:
                return cursor.fetchall()
            return cursor.rowcount

        if wait is not self._waits:  # only BEGIN waits; set when a batch's kind changes
            cx.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms if wait else 0}")
            self._waits = wait
        try:
            cx.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if not wait and "locked" in str(error):
                raise _Busy from error
            raise
        try:
            outcomes: list[Any] = [None] * len(ops)
            if self._grouped is None:
                run_alone(ops, range(len(ops)), outcomes, run)
            else:
                self._grouped.run_batch(cx, ops, outcomes, run)
            cx.commit()
        except BaseException:
            cx.rollback()
            raise
        if checkpoint:
            cx.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return outcomes

    # -- fallback: aiosqlite's public API ----------------------------------------------------
    async def _run_batch_async(self, driver: Any, ops: Sequence[Op]) -> list[Any]:
        sql = self._sql

        async def run(step: Step) -> Any:
            prepared = sql[step.name]
            if step.mode is StepMode.MANY:
                await driver.executemany(prepared.sql, [prepared.args(p) for p in step.params])
                return None
            cursor = await driver.execute(prepared.sql, prepared.args(step.params))
            if step.mode is StepMode.SCALAR:
                row = await cursor.fetchone()
                return None if row is None else row[0]
            if step.mode is StepMode.ROWS:
                return await cursor.fetchall()
            return cursor.rowcount

        await driver.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        await driver.execute("BEGIN IMMEDIATE")
        try:
            outcomes: list[Any] = []
            for op in ops:
                try:
                    outcomes.append(await drive_async(op.steps(), run))
                except sqlite3.IntegrityError as error:
                    if op.several_writes:
                        raise
                    outcomes.append(map_integrity_error(op, error))
            await driver.commit()
        except BaseException:
            await driver.rollback()
            raise
        self.thread_batches += 1
        return outcomes
