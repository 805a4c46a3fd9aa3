"""The planner statistics of the storage's own tables, kept while nothing else keeps them.

PostgreSQL plans a statement from each table's size and column statistics, which
``ANALYZE`` writes (autovacuum runs it by itself, unless it is switched off). A table
never analyzed is planned as if it held ten pages, one analyzed while empty as if it held
nothing, and a prepared statement keeps its generic plan until the statistics of its
tables change: on a fresh schema, the storage's statements are planned as scans of a tiny
table and keep those plans while the table grows (docs/storage.md, "Query plans and
statistics").

:class:`TableStatistics` analyzes a table of the schema once it has :data:`MIN_PAGES`
pages and was never analyzed (or was analyzed empty), and again whenever it has grown to
:data:`GROWTH` times the pages it had at its last analysis: a bounded number of times in a
table's life, one per doubling. Analyzing invalidates the plans cached for the table in
every session, which are then made again from the new statistics. Where autovacuum
analyzes, a table never doubles between two of its analyses and nothing is done here.

It looks when the storage opens and whenever the writes of the storage since it opened
doubled, in the background, on a reader connection (a look is one catalog query). A
table the storage's user does not own is left alone (``ANALYZE`` needs the owner).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["GROWTH", "MIN_PAGES", "MIN_WRITES", "TableState", "TableStatistics", "stale"]

log = logging.getLogger("evertask.storage.statistics")

MIN_PAGES = 10
"""Smaller tables are left alone: any plan reads them in a few page reads (and PostgreSQL
plans a table never analyzed as if it had this many pages)."""
GROWTH = 2
"""A table is analyzed again once it has this many times the pages of its last analysis."""
MIN_WRITES = 1000
"""Writes after which the storage looks the second time; then each time their total doubled."""

_STATES = text(
    "SELECT c.relname, c.reltuples, c.relpages, "
    "pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::int "
    "FROM pg_catalog.pg_class AS c "
    "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = COALESCE(:schema, pg_catalog.current_schema()) "
    "AND c.relname = ANY(:names) AND c.relkind = 'r' "
    "AND pg_catalog.pg_has_role(c.relowner, 'USAGE')"
)


@dataclass(frozen=True, slots=True)
class TableState:
    """What the planner knows of a table (``pg_class``) and its size now."""

    name: str
    reltuples: float
    """Rows at the last analysis; negative when never analyzed."""
    relpages: int
    """Pages at the last analysis (or vacuum)."""
    pages: int
    """Pages now."""


def stale(table: TableState) -> bool:
    """Whether ``table`` needs ``ANALYZE``: big enough to matter, and never analyzed (or
    analyzed empty), or grown :data:`GROWTH` times since its last analysis."""
    if table.pages < MIN_PAGES:
        return False
    return table.reltuples < 0 or table.pages >= GROWTH * table.relpages


class TableStatistics:
    """Analyzes the storage's tables when their statistics are missing or outgrown.

    Args:
        engine: the storage's reader engine (called at each look: it exists once open).
        schema: the tables' schema (``None``: the connection's current schema).
        tables: the names of the tables to look after.
        quote: quotes an identifier for PostgreSQL.
    """

    def __init__(
        self,
        engine: Callable[[], AsyncEngine],
        schema: str | None,
        tables: Sequence[str],
        quote: Callable[[str], str],
    ) -> None:
        self._engine = engine
        self._schema = schema
        self._tables = list(tables)
        self._quote = quote
        self._running = False
        self._written = 0
        self._next_look = MIN_WRITES
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._warned = False
        self.analyzed: list[str] = []
        """The tables analyzed here so far, in order (diagnostics, tests)."""

    def start(self) -> None:
        """The storage opened: look now, then as it writes."""
        self._running = True
        self._written = 0
        self._next_look = MIN_WRITES
        self._look()

    def wrote(self, count: int) -> None:
        """The storage committed ``count`` writes; look again once their total doubled."""
        self._written += count
        if self._written >= self._next_look:
            self._next_look = max(MIN_WRITES, GROWTH * self._written)
            self._look()

    async def idle(self) -> None:
        """Wait until no look is under way."""
        while (task := self._task) is not None and not task.done():
            await asyncio.shield(task)

    async def close(self) -> None:
        """Stop looking (the storage closes)."""
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def states(self) -> list[TableState]:
        """The tables this storage may analyze, as the catalog describes them now."""
        async with self._engine().connect() as connection:
            result = await connection.execute(
                _STATES, {"schema": self._schema, "names": self._tables}
            )
            return [TableState(str(n), float(t), int(p), int(c)) for n, t, p, c in result]

    async def check(self) -> list[str]:
        """Analyze the tables that need it now; return their names."""
        names = [t.name for t in await self.states() if stale(t)]
        if not names:
            return []
        prefix = "" if self._schema is None else self._quote(self._schema) + "."
        targets = ", ".join(prefix + self._quote(name) for name in names)
        async with self._engine().connect() as connection:
            # SKIP_LOCKED: a table another session is analyzing right now is left to it
            await connection.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {targets}")
        self.analyzed += names
        log.debug("Analyzed %s: statistics missing or outgrown.", ", ".join(names))
        return names

    def _look(self) -> None:
        if not self._running:
            return
        if self._task is not None and not self._task.done():
            self._again = True  # (once the look under way is over)
            return
        self._task = asyncio.get_running_loop().create_task(
            self._looks(), name="evertask-table-statistics"
        )

    async def _looks(self) -> None:
        while True:
            self._again = False
            try:
                await self.check()
            except Exception as exc:  # the plans stay as they are until the next look
                level = logging.DEBUG if self._warned else logging.WARNING
                self._warned = True
                log.log(level, "Could not update the statistics of the EverTask tables: %r", exc)
            if not (self._again and self._running):
                return
