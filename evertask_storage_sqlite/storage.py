"""``SqliteTaskStorage``: the embedded storage (one file, WAL, one writer, group commit)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from evertask.clock import utc_now
from evertask_abstractions import ConfigurationError
from evertask_storage_efcore_like import RetentionResult, SqlTaskStorage
from evertask_storage_efcore_like.ops import Op
from evertask_storage_efcore_like.writer import BatchExecutor

from .executor import SqliteExecutor
from .maintenance import OPTIMIZE_PRAGMAS, SqliteStatements, VacuumOp

__all__ = ["SqliteTaskStorage"]

_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
_log = logging.getLogger("evertask.storage")


def _execute_patiently(cursor: Any, statement: str, patience: float) -> None:
    """Run a connection pragma; switching a new database to WAL does not wait for the busy
    timeout (another process or connection switching it at the same moment makes it fail
    at once), so a locked database is retried until ``patience`` seconds have passed."""
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute(statement)
            return
        except Exception as error:  # sqlite3's, or the async adapter's wrapper of it
            if "database is locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)  # connection set-up only: another connection is mid-switch


class SqliteTaskStorage(SqlTaskStorage):
    """Task rows in one SQLite file, through aiosqlite.

    The database runs in WAL mode with one writer connection, which the group-commit
    writer batches every write through, and ``readers`` reader connections (readers
    never block the writer, nor it them).

    Durability: with ``synchronous="NORMAL"`` (the default) every committed write
    survives a crash of the process; a power loss or OS crash may lose the last
    transactions (never corrupt the file). ``synchronous="FULL"`` also survives a power
    loss, at the price of an fsync per batch.

    Args:
        path: the database file (created if missing; its directory must exist).
        synchronous: ``"NORMAL"`` (default), ``"FULL"`` or ``"EXTRA"``.
        busy_timeout: seconds to wait for a lock held by another process.
        readers: reader connections.
        auto_apply_migrations: create/upgrade the tables at :meth:`open`.
        now: the clock stamping audits and executions.
        max_batch_size: group-commit bound: most writes committed in one transaction.
        max_batch_delay: group-commit bound: seconds a batch may wait for more
            concurrent writes to join it.
        inline_max_ops: batches up to this size commit directly on the event loop when
            the write lock is free (about 0.1 ms saved per batch; 0 disables). Lock
            waits, checkpoints and larger batches always run on aiosqlite's thread.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "evertask.db",
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 5.0,
        readers: int = 2,
        auto_apply_migrations: bool = True,
        now: Callable[[], datetime] = utc_now,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        inline_max_ops: int = 64,
    ) -> None:
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file::memory:"):
            raise ConfigurationError(
                "An in-memory SQLite database cannot be shared by the writer and reader "
                "connections; use a file path, or add_memory_storage() for a volatile store."
            )
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}."
            )
        if busy_timeout < 0:
            raise ConfigurationError("busy_timeout must not be negative.")
        if inline_max_ops < 0:
            raise ConfigurationError("inline_max_ops must not be negative (0 disables).")
        self.inline_max_ops = inline_max_ops
        self._cluster: AsyncEngine | None = None
        self._checkpointing: asyncio.Task[None] | None = None
        self.path = Path(text).expanduser().resolve()
        self.synchronous = mode
        self.busy_timeout = busy_timeout
        super().__init__(
            URL.create("sqlite+aiosqlite", database=str(self.path)),
            schema=None,
            auto_apply_migrations=auto_apply_migrations,
            now=now,
            pool_size=readers,
            max_batch_size=max_batch_size,
            max_batch_delay=max_batch_delay,
        )
        self.statements = SqliteStatements(self.tables)

    def describe(self) -> str:
        """The database file."""
        return f"SQLite database {self.path}"

    def _connect_hint(self) -> str:
        return (
            f"Check that the directory {self.path.parent} exists and is writable by this "
            "process, and that the file is a SQLite database."
        )

    def _pragmas(self, engine: AsyncEngine, statements: list[str]) -> None:
        patience = self.busy_timeout

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                for statement in statements:
                    _execute_patiently(cursor, statement, patience)
            finally:
                cursor.close()

    def _create_engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        if not self.path.parent.is_dir():
            raise ConfigurationError(
                f"The directory {self.path.parent} of the SQLite database does not exist; "
                "create it or choose another path."
            )
        timeout_ms = int(self.busy_timeout * 1000)
        # the executor commits small batches on the loop thread too (see executor.py)
        writer = create_async_engine(
            self.url, pool_size=1, max_overflow=0, connect_args={"check_same_thread": False}
        )
        self._pragmas(
            writer,
            [
                f"PRAGMA busy_timeout = {timeout_ms}",
                # a new file only (before its first table); an existing one keeps its mode
                "PRAGMA auto_vacuum = INCREMENTAL",
                "PRAGMA journal_mode = WAL",
                f"PRAGMA synchronous = {self.synchronous}",
                "PRAGMA foreign_keys = ON",
            ],
        )
        reader = create_async_engine(
            self.url,
            pool_size=self.pool_size,
            max_overflow=0,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,
        )
        self._pragmas(reader, [f"PRAGMA busy_timeout = {timeout_ms}", "PRAGMA query_only = ON"])
        return reader, writer

    def _cluster_engine(self) -> AsyncEngine:
        """A writable connection of its own for the cluster's transactions (the readers
        are query-only and the writer's connection belongs to the group-commit writer);
        ``BEGIN IMMEDIATE`` on it waits for the write lock up to the busy timeout."""
        self._reader_engine()  # raises when closed
        if self._cluster is None:
            engine = create_async_engine(
                self.url, pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT"
            )
            timeout_ms = int(self.busy_timeout * 1000)
            self._pragmas(
                engine, [f"PRAGMA busy_timeout = {timeout_ms}", "PRAGMA foreign_keys = ON"]
            )
            self._cluster = engine
        return self._cluster

    async def close(self) -> None:
        """Commit pending writes, then release every connection."""
        checkpointing, self._checkpointing = self._checkpointing, None
        if checkpointing is not None:
            await asyncio.gather(checkpointing, return_exceptions=True)
        cluster, self._cluster = self._cluster, None
        try:
            await super().close()
        finally:
            if cluster is not None:
                await cluster.dispose()

    async def open(self) -> None:
        """Open (see the base class), then refresh the planner's statistics if stale."""
        was_open = self.is_open
        await super().open()
        if not was_open:
            await self._optimize()

    async def _optimize(self) -> None:
        try:
            async with self._cluster_engine().connect() as connection:
                for pragma in OPTIMIZE_PRAGMAS:
                    await connection.exec_driver_sql(pragma)
        except Exception as error:  # statistics are an optimisation: never fail for them
            _log.warning("Refreshing the SQLite statistics of %s failed: %s", self.path, error)

    _retention_batch_seconds = 0.005  # task writes wait for a batch: keep it short

    async def _maintain(self, op: Op) -> Any:
        """Through the writer: SQLite has one writer, so maintenance waits its turn there
        instead of contending for the lock (on the writer's thread, never the loop's)."""
        return await self._submit(op)

    async def _after_cleanup(self, result: RetentionResult) -> None:
        """Give freed pages back in small steps, paced like the cleanup; refresh stats."""
        if result.total == 0:
            return
        for _ in range(1_000_000):
            begun = time.monotonic()
            if await self._submit(VacuumOp()) == 0:
                break
            await asyncio.sleep(time.monotonic() - begun)
        await self._optimize()

    @property
    def _inline_max_ops(self) -> int:
        # inline commits only where a commit does not sync (WAL + NORMAL)
        return self.inline_max_ops if self.synchronous == "NORMAL" else 0

    async def _create_executor(self, engine: AsyncEngine) -> BatchExecutor:
        return SqliteExecutor(
            engine,
            self.statements,
            busy_timeout_ms=int(self.busy_timeout * 1000),
            inline_max_ops=self._inline_max_ops,
            checkpointer=self._checkpoint_soon,
        )

    def _checkpoint_soon(self) -> None:
        """Start a passive WAL checkpoint on a connection of its own (unless one runs):
        it copies committed pages into the database file while the writer goes on."""
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        self._checkpointing = asyncio.get_running_loop().create_task(
            self._checkpoint(), name="evertask-sqlite-checkpoint"
        )

    async def _checkpoint(self) -> None:
        try:
            async with self._cluster_engine().connect() as connection:
                await connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as error:  # the next one retries; the WAL only grows meanwhile
            _log.warning("A WAL checkpoint of %s failed: %s", self.path, error)
