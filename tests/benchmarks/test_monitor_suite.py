"""The monitor suite loads its rows into the current schema and measures both databases.

Its loaders write rows of their own (bulk inserts, PostgreSQL's COPY), so a migration that
adds a column must not break them: a small run of each database's half goes through the
load, the monitoring API's requests and the suite's own check of a task's detail. The load
fires the count triggers, and the suite measures only once those deltas are folded, as a
running host keeps them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks import monitor as bm
from benchmarks.history import postgres_unreachable
from evertask_storage_sqlite import SqliteTaskStorage

ROWS = 400
CASES = ("list", "list_completed", "list_unfiltered", "detail", "overview")


def _check(results: object) -> None:
    assert isinstance(results, dict), results
    assert results["load_s"] >= 0 and results["fold_s"] >= 0
    for case in CASES:
        assert (
            results[f"{case}_p50_ms"] > 0 and results[f"{case}_p95_ms"] >= results[f"{case}_p50_ms"]
        )


async def test_the_suite_measures_with_the_loaded_deltas_folded(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    storage = SqliteTaskStorage(path)
    await storage.open()
    await storage.close()
    await asyncio.to_thread(bm._load_sqlite, path, storage.tables, ROWS, datetime.now(UTC))

    def deltas() -> int:
        with sqlite3.connect(path) as con:
            return int(con.execute('SELECT COUNT(*) FROM "TaskCountDeltas"').fetchone()[0])

    assert deltas() >= ROWS * 0.9  # what the load leaves
    storage = SqliteTaskStorage(path, auto_apply_migrations=False)
    await storage.open()
    try:
        await bm.ready(storage)
        assert deltas() == 0
        counts = await storage.count_by_status()
        assert sum(counts.values()) == ROWS
    finally:
        await storage.close()


async def test_the_sqlite_half_loads_and_measures() -> None:
    _check(await bm._sqlite(ROWS, 2, datetime.now(UTC)))


async def test_the_postgres_half_loads_and_measures() -> None:
    why = await postgres_unreachable(bm._postgres_url())
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    _check(await bm._postgres(ROWS, 2, datetime.now(UTC)))
