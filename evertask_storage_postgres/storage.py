"""``PostgresTaskStorage``: PostgreSQL through asyncpg, set-based group commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from evertask.clock import utc_now
from evertask_abstractions import ConfigurationError
from evertask_storage_efcore_like import SqlTaskStorage
from evertask_storage_efcore_like.writer import BatchExecutor

from .executor import PostgresExecutor
from .notify import PostgresNotifier, channel_name
from .sql import PostgresSql
from .statistics import TableStatistics

__all__ = ["DELTAS_VACUUM_EVERY", "PostgresTaskStorage", "asyncpg_url"]

_log = logging.getLogger("evertask.storage")

DELTAS_VACUUM_EVERY = 50_000
"""Folded count deltas after which their table is vacuumed."""

VACUUM_LOCK_WAIT_MS = 2_000
"""How long that vacuum waits for another session's hold on the table before the next
fold tries again."""

_PLAIN = ("postgresql", "postgres", "postgresql+asyncpg")


def asyncpg_url(url: str | URL) -> URL:
    """``url`` with the asyncpg driver (``postgresql://`` and ``postgres://`` are accepted)."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername not in _PLAIN:
        raise ConfigurationError(
            f"PostgresTaskStorage needs a postgresql:// URL (it uses asyncpg), got "
            f"{parsed.drivername}://...; write it as postgresql://user:password@host:5432/db."
        )
    return parsed.set(drivername="postgresql+asyncpg")


class PostgresTaskStorage(SqlTaskStorage):
    """Task rows in PostgreSQL (``timestamptz``, native ``uuid``, schema ``evertask``).

    Every write commits before its call returns: a committed write survives a process
    crash and, with PostgreSQL's default ``synchronous_commit=on``, a power loss too.
    Concurrent writes share transactions (group commit) and each kind of write in a
    batch is one set-based statement.

    Args:
        url: ``postgresql://user:password@host:5432/database``.
        schema: the schema holding the tables (created if missing).
        pool_size: reader connections.
        writer_connections: group-commit batches in flight at once (each holds a
            connection); two let PostgreSQL commit one batch while the next is prepared.
        connect_timeout: seconds to wait for a connection.
        auto_apply_migrations: migrate the tables at :meth:`open` (otherwise verify that a DBA
            applied them).
        now: the clock stamping audits and executions (aware UTC).
        max_batch_size: most writes committed in one transaction.
        max_batch_delay: seconds a batch may wait for more concurrent writes to join it.
        engine_options: extra ``create_async_engine`` keyword arguments.
    """

    def __init__(
        self,
        url: str | URL,
        schema: str | None = "evertask",
        *,
        pool_size: int = 5,
        connect_timeout: float = 10.0,
        auto_apply_migrations: bool = True,
        now: Callable[[], datetime] = utc_now,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        writer_connections: int = 2,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if connect_timeout <= 0:
            raise ConfigurationError("connect_timeout must be positive.")
        options: dict[str, Any] = {
            "connect_args": {
                "timeout": connect_timeout,
                # jit off: every statement of the storage is short and index-driven, and a
                # stale row estimate (the count deltas' table churns) made PostgreSQL spend
                # 177 ms compiling a 20 ms count (docs/storage.md, "Query plans")
                "server_settings": {"application_name": "evertask", "jit": "off"},
            },
            "pool_pre_ping": True,
        }
        options.update(engine_options or {})
        super().__init__(
            asyncpg_url(url),
            schema=schema,
            auto_apply_migrations=auto_apply_migrations,
            now=now,
            pool_size=pool_size,
            max_batch_size=max_batch_size,
            max_batch_delay=max_batch_delay,
            writer_connections=writer_connections,
            engine_options=options,
        )
        self.sql = PostgresSql(self.tables)
        self._folded_since_vacuum = 0
        self._notifier = PostgresNotifier(self.url, channel_name(self.schema), connect_timeout)
        quote = self.sql.quote
        tables = [t.name for t in self.tables.metadata.sorted_tables]
        self.statistics = TableStatistics(self._reader_engine, self.schema, tables, quote)
        """Keeps the tables analyzed while nothing else does (docs/storage.md, "Query
        plans and statistics")."""

    def describe(self) -> str:
        """The database, password hidden."""
        return "PostgreSQL at " + self.url.set(drivername="postgresql").render_as_string(
            hide_password=True
        )

    def _connect_hint(self) -> str:
        url = self.url
        return (
            f"Check that PostgreSQL is running and reachable at {url.host or 'localhost'}:"
            f"{url.port or 5432}, that user {url.username!r} may log in (password, "
            f"pg_hba.conf), and that database {url.database!r} exists."
        )

    def _create_engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        reader = create_async_engine(
            self.url,
            pool_size=self.pool_size,
            max_overflow=0,
            isolation_level="AUTOCOMMIT",
            **self.engine_options,
        )
        writer_options = {k: v for k, v in self.engine_options.items() if k != "pool_pre_ping"}
        writer = create_async_engine(
            self.url, pool_size=self.writer_connections, max_overflow=0, **writer_options
        )
        return reader, writer

    async def _create_executor(self, engine: AsyncEngine) -> BatchExecutor:
        return PostgresExecutor(engine, self.statements, self.sql, self.statistics.wrote)

    async def fold_counts(self) -> int:
        """Fold the count deltas (see the base class), then vacuum their table once many
        were deleted: its rows live for a second, and without a vacuum (autovacuum off)
        every count would read their dead versions."""
        folded = await super().fold_counts()
        self._folded_since_vacuum += folded
        if self._folded_since_vacuum >= DELTAS_VACUUM_EVERY:
            deltas = f"{self.sql.quote(self.schema)}." if self.schema else ""
            deltas += self.sql.quote(self.tables.count_deltas.name)
            try:
                async with self._reader_engine().connect() as connection:  # (autocommit)
                    # wait a little for another session's VACUUM or ANALYZE of the table
                    # (SKIP_LOCKED would skip it without an error, and the dead deltas
                    # would stay until 50,000 more were folded)
                    await connection.exec_driver_sql(f"SET lock_timeout = {VACUUM_LOCK_WAIT_MS}")
                    try:
                        await connection.exec_driver_sql(f"VACUUM {deltas}")
                    finally:
                        await connection.exec_driver_sql("RESET lock_timeout")
            except Exception as error:  # the lock still taken: the next fold tries again
                _log.info("Vacuuming %s failed: %s", deltas, str(error).splitlines()[0])
            else:  # (a role that does not own the table gets a warning: autovacuum's job)
                self._folded_since_vacuum = 0
        return folded

    async def open(self) -> None:
        """Open as every SQL storage does, then look at the tables' statistics (in the
        background)."""
        was_open = self.is_open
        await super().open()
        if not was_open:
            self.statistics.start()

    # -- notifications (the cluster's nodes wake one another: NotifyingStorage) -------------
    async def listen(self, on_notice: Callable[[str], None]) -> None:
        """LISTEN on the schema's channel through a connection of its own (reopened if it
        was lost)."""
        await self._notifier.listen(on_notice)

    async def notify(self, notice: str) -> None:
        """NOTIFY every node listening on this schema."""
        await self._notifier.notify(notice)

    async def close(self) -> None:
        """Stop listening, then close as every SQL storage does."""
        await self._notifier.unlisten()
        await self.statistics.close()
        await super().close()
