"""The footprint suite: bytes of database per finished task, per audit level.

10,000 no-op tasks (2,000 with ``--quick``) run to Completed through a real host at each
audit level, on SQLite and PostgreSQL; then the database is compacted (SQLite
``VACUUM``, PostgreSQL ``VACUUM FULL``) and its size divided by the tasks. The figure is
what history costs once dead versions are reclaimed: size retention with it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import uuid
from typing import Any

from evertask_abstractions import AuditLevel, QueuedTaskStatus
from evertask_storage_postgres import PostgresTaskStorage
from evertask_storage_sqlite import SqliteTaskStorage

from .common import Results, report
from .engine import Container, Noop
from .storage import PG_URL, _builder, _drop_schema

LEVELS = (AuditLevel.NONE, AuditLevel.ERRORS_ONLY, AuditLevel.MINIMAL, AuditLevel.FULL)


async def _run(backend: str, audit: AuditLevel, n: int) -> float:
    """Bytes per task after ``n`` tasks completed at ``audit``."""
    container = Container()
    builder = _builder(container, audit)
    directory = tempfile.mkdtemp(prefix="evertask-footprint-")
    path = os.path.join(directory, "footprint.db")
    schema = f"footprint_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        builder.add_sqlite_storage(path)
    else:
        builder.add_postgres_storage(PG_URL, schema=schema)
    host = builder.build()
    recorder = container.recorder()
    try:
        async with host:
            recorder.reset(n)
            for start in range(0, n, 500):
                await asyncio.gather(
                    *(
                        host.dispatcher.dispatch(Noop(n=i))
                        for i in range(start, min(start + 500, n))
                    )
                )
            await recorder.done.wait()
        # stopped: every write committed; fold the counts as a running host would have
        storage: Any = (
            SqliteTaskStorage(path)
            if backend == "sqlite"
            else PostgresTaskStorage(PG_URL, schema=schema)
        )
        await storage.open()
        try:
            assert (await storage.count_by_status()).get(QueuedTaskStatus.COMPLETED) == n
            await storage.fold_counts()
        finally:
            await storage.close()
        if backend == "sqlite":
            return _sqlite_bytes(path) / n
        return await _postgres_bytes(schema) / n
    finally:
        if backend == "postgres":
            await _drop_schema(schema)


def _sqlite_bytes(path: str) -> int:
    connection = sqlite3.connect(path)
    try:
        connection.execute("VACUUM")
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        return int(pages * size)
    finally:
        connection.close()


async def _postgres_bytes(schema: str) -> int:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(PG_URL)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema
        )
        total = 0
        for (table,) in tables:
            name = f'"{schema}"."{table}"'
            await connection.execute(f"VACUUM FULL {name}")
            total += await connection.fetchval("SELECT pg_total_relation_size($1)", name)
        return int(total)
    finally:
        await connection.close()


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it."""
    n = 2_000 if quick else 10_000
    results: Results = {}
    rows: list[tuple[str, str]] = []
    for backend in ("sqlite", "postgres"):
        for audit in LEVELS:
            per_task = asyncio.run(_run(backend, audit, n))
            key = f"{backend}_{audit.name.lower()}_bytes_per_task"
            results[key] = round(per_task, 1)
            rows.append((f"{backend}, audit {audit.name}", f"{per_task:,.0f} bytes per task"))
    report(f"Footprint ({n:,} completed tasks per level)", rows, results, json_path)
    return results
