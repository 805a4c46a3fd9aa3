"""PostgreSQL: the storage's statements keep index plans on a schema nobody analyzes.

A prepared statement keeps its generic plan until the statistics of its tables change.
Without autovacuum, a fresh schema is never analyzed: the writer's statements, prepared
while ``QueuedTasks`` was empty, would read the whole table at every batch however large
it grew. The storage analyzes its own tables while their statistics are missing or
outgrown (``evertask_storage_postgres.statistics``), which also makes the cached plans
again. Each test works in a fresh schema, dropped at the end.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from evertask.storage import TaskExecutionLog
from evertask_abstractions import AuditLevel
from evertask_storage_postgres import PostgresTaskStorage
from evertask_storage_postgres.statistics import MIN_PAGES, TableState, stale

from .conftest import PG_URL, _pg_execute, require_postgres, run_blocking
from .helpers import row

BIG_TABLES = ("QueuedTasks", "StatusAudit", "RunsAudit", "TaskExecutionLogs")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def fresh_schema() -> Iterator[str]:
    """A schema name nobody has used (the storage creates it; dropped afterwards)."""
    require_postgres()
    schema = f"evertask_test_plans_{uuid.uuid4().hex[:8]}"
    try:
        yield schema
    finally:
        run_blocking(_pg_execute(PG_URL, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def _sql(statement: str, *args: Any) -> Any:
    connection = await asyncpg.connect(PG_URL)
    try:
        return await connection.fetch(statement, *args)
    finally:
        await connection.close()


async def _pages(schema: str, table: str) -> int:
    rows = await _sql(
        "SELECT pg_relation_size(format('%I.%I', $1::text, $2::text)::regclass) / 8192",
        schema,
        table,
    )
    return int(rows[0][0])


async def _reltuples(schema: str, table: str) -> float:
    rows = await _sql(
        "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        schema,
        table,
    )
    return float(rows[0][0])


async def _insert_rows(schema: str, count: int) -> None:
    """``count`` waiting rows written behind the storage's back (as another node would)."""
    await _sql(
        f'INSERT INTO "{schema}"."QueuedTasks" ("Id", "CreatedAtUtc", "ExecutionTimeMs", '
        '"Type", "Request", "Handler", "IsRecurring", "QueueName", "Status", "AuditLevel") '
        "SELECT gen_random_uuid(), now(), 1, 'tests.Ping', '{\"n\": 1}', 'tests.PingHandler', "
        "false, 'default', 'WaitingQueue', 3 FROM generate_series(1, $1)",
        count,
    )


async def _grow_to_pages(schema: str, pages: int) -> None:
    while await _pages(schema, "QueuedTasks") < pages:
        await _insert_rows(schema, 500)


async def _writer_plans(storage: PostgresTaskStorage) -> dict[str, str]:
    """The plan of every batch statement the writer has prepared, as it would run it now
    (EXPLAIN EXECUTE on the writer's own connection, where plans are generic)."""
    (executor,) = storage._executors  # one writer connection
    pg: Any = executor._pg  # type: ignore[attr-defined]
    prepared = await pg.fetch(
        "SELECT name, statement, cardinality(parameter_types) FROM pg_prepared_statements"
    )
    plans: dict[str, str] = {}
    for name, statement, count in prepared:
        if not (statement.startswith("WITH ") and '"QueuedTasks"' in statement):
            continue  # (asyncpg's own queries; the migrations ran on this connection)
        args = ", ".join(["NULL"] * count)
        lines = await pg.fetch(f'EXPLAIN EXECUTE "{name}"' + (f"({args})" if count else ""))
        plans[statement] = "\n".join(line[0] for line in lines)
    return plans


async def test_writer_plans_are_index_lookups_once_a_fresh_table_has_grown(
    fresh_schema: str,
) -> None:
    storage = PostgresTaskStorage(PG_URL, schema=fresh_schema, writer_connections=1)
    await storage.open()
    try:
        # the first writes prepare the writer's statements while QueuedTasks is empty
        first = [row(START + timedelta(milliseconds=i)) for i in range(8)]
        await asyncio.gather(*(storage.persist(r) for r in first))
        await asyncio.gather(
            *(storage.try_set_queued_if_recoverable(r.id, AuditLevel.FULL) for r in first[:4])
        )
        await asyncio.gather(*(storage.set_completed(r.id, 1.0, AuditLevel.FULL) for r in first))
        log = TaskExecutionLog(
            id=uuid.uuid4(),
            task_id=first[0].id,
            timestamp_utc=START,
            level="Information",
            message="hello",
            sequence_number=0,
        )
        await storage.save_execution_logs(first[0].id, [log])
        early = await _writer_plans(storage)
        assert any("Seq Scan" in plan for plan in early.values())  # (what a tiny table gets)

        # the table grows to 30,000 rows through the same storage
        for chunk in range(30):
            rows = [row(START + timedelta(seconds=chunk, microseconds=i)) for i in range(1000)]
            await asyncio.gather(*(storage.persist(r) for r in rows))
        await asyncio.wait_for(storage.statistics.idle(), 60)

        assert "QueuedTasks" in storage.statistics.analyzed
        plans = await _writer_plans(storage)
        assert len(plans) >= 4  # persist, compare-and-set, transition, logs
        scans = {s[:120]: p for s, p in plans.items() if "Seq Scan" in p}
        assert not scans, scans
        assert any('Index Scan using "PK_QueuedTasks"' in p for p in plans.values())
    finally:
        await storage.close()


async def test_a_table_is_analyzed_once_it_matters_and_again_when_it_doubled(
    fresh_schema: str,
) -> None:
    storage = PostgresTaskStorage(PG_URL, schema=fresh_schema)
    await storage.open()
    try:
        await asyncio.wait_for(storage.statistics.idle(), 30)
        assert await storage.statistics.check() == []  # empty: nothing to plan for
        assert await _reltuples(fresh_schema, "QueuedTasks") < 0  # never analyzed

        await _grow_to_pages(fresh_schema, MIN_PAGES)
        assert await storage.statistics.check() == ["QueuedTasks"]
        analyzed_at = await _pages(fresh_schema, "QueuedTasks")
        assert await _reltuples(fresh_schema, "QueuedTasks") > 0
        assert await storage.statistics.check() == []  # fresh: left alone

        await _grow_to_pages(fresh_schema, analyzed_at + 1)
        assert await storage.statistics.check() == []  # grown a little: still left alone
        await _grow_to_pages(fresh_schema, 2 * analyzed_at)
        assert await storage.statistics.check() == ["QueuedTasks"]
    finally:
        await storage.close()


async def test_a_table_analyzed_while_empty_is_analyzed_again_once_it_has_grown(
    fresh_schema: str,
) -> None:
    storage = PostgresTaskStorage(PG_URL, schema=fresh_schema)
    await storage.open()
    try:
        await asyncio.wait_for(storage.statistics.idle(), 30)
        tables = ", ".join(f'"{fresh_schema}"."{t}"' for t in BIG_TABLES)
        await _sql(f"ANALYZE {tables}")  # e.g. a VACUUM ANALYZE right after the migrations
        assert await _reltuples(fresh_schema, "QueuedTasks") == 0
        await _grow_to_pages(fresh_schema, MIN_PAGES)
        assert await storage.statistics.check() == ["QueuedTasks"]
        assert await _reltuples(fresh_schema, "QueuedTasks") > 0
    finally:
        await storage.close()


async def test_the_storage_looks_by_itself_as_it_writes(fresh_schema: str) -> None:
    storage = PostgresTaskStorage(PG_URL, schema=fresh_schema)
    await storage.open()
    try:
        rows = [row(START + timedelta(microseconds=i)) for i in range(3000)]
        await asyncio.gather(*(storage.persist(r) for r in rows))
        await asyncio.wait_for(storage.statistics.idle(), 30)
        assert storage.statistics.analyzed.count("QueuedTasks") >= 1
        assert await _reltuples(fresh_schema, "QueuedTasks") > 0
    finally:
        await storage.close()


async def test_a_storage_closed_during_its_first_look_says_nothing(
    fresh_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = PostgresTaskStorage(PG_URL, schema=fresh_schema)
    await storage.open()  # applies the migrations: the tables exist, empty
    await storage.close()
    await _insert_rows(fresh_schema, 2000)  # a table worth analyzing at the next open
    caplog.set_level(logging.DEBUG, logger="evertask.storage.statistics")
    for _ in range(3):
        await storage.open()  # the look starts in the background ...
        await storage.close()  # ... and is stopped, wherever it is
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize(
    ("reltuples", "relpages", "pages", "expected"),
    [
        (-1, 0, MIN_PAGES - 1, False),  # never analyzed, still tiny
        (-1, 0, MIN_PAGES, True),  # never analyzed, worth it now
        (0, 0, MIN_PAGES, True),  # analyzed while empty
        (500, 10, 19, False),  # grown less than twice
        (500, 10, 20, True),  # doubled
        (1e6, 20_000, 25_000, False),
    ],
)
def test_when_a_table_is_stale(reltuples: float, relpages: int, pages: int, expected: bool) -> None:
    assert stale(TableState("QueuedTasks", reltuples, relpages, pages)) is expected


async def test_a_count_is_not_jit_compiled_when_the_deltas_statistics_are_stale(
    fresh_schema: str,
) -> None:
    """Deltas analyzed in bulk and then folded away leave statistics that count hundreds of
    thousands of rows in an empty table. A default session then JIT-compiles the count
    (177 ms for a 20 ms statement at a million tasks); the storage's sessions run with
    ``jit`` off, reader and writer alike."""
    import json

    from sqlalchemy.dialects import postgresql

    from evertask_storage_efcore_like.counts import CountFilter, counts_statement

    storage = PostgresTaskStorage(PG_URL, schema=fresh_schema)
    await storage.open()
    try:
        deltas = f'"{fresh_schema}"."TaskCountDeltas"'
        await _sql(
            f'INSERT INTO {deltas} ("CreatedAtUtc", "QueueName", "IsRecurring", "Status", '
            "\"Delta\") SELECT now(), 'default', false, 'Completed', 1 "
            "FROM generate_series(1, 400000)"
        )
        await _sql(f"ANALYZE {deltas}")
        await _sql(f"DELETE FROM {deltas}")
        statement = counts_statement(storage.tables, CountFilter())
        assert statement is not None
        sql = "EXPLAIN (FORMAT JSON) " + str(
            statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )
        (jit_available,) = (await _sql("SELECT pg_jit_available()"))[0]
        if jit_available:  # the stale estimate is what makes a default session compile
            (plan,) = (await _sql(sql))[0]
            assert "JIT" in json.loads(plan)[0], "the estimate no longer calls for JIT"
        async with storage._reader_engine().connect() as connection:
            plan = (await connection.exec_driver_sql(sql)).scalar()
            setting = (await connection.exec_driver_sql("SHOW jit")).scalar()
        assert setting == "off"
        assert "JIT" not in (json.loads(plan) if isinstance(plan, str) else plan)[0]
        await storage.persist(row(START))
        for executor in storage._executors:  # (each connects at its first batch)
            pg: Any = executor._pg  # type: ignore[attr-defined]
            if pg is not None:
                assert await pg.fetchval("SHOW jit") == "off"
        assert any(e._pg is not None for e in storage._executors)  # type: ignore[attr-defined]
    finally:
        await storage.close()
