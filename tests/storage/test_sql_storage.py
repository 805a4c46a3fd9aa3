"""Behaviour specific to the SQL storages: durability, group commit, errors, options."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import create_async_engine

from evertask.storage import TaskStorage
from evertask_abstractions import AuditLevel, ConfigurationError, QueuedTaskStatus
from evertask_storage_efcore_like import (
    SqlTaskStorage,
    StorageClosedError,
    StorageConnectionError,
    StorageSchemaError,
)
from evertask_storage_efcore_like.migrate import apply_migrations, downgrade_migrations
from evertask_storage_postgres import PostgresTaskStorage, asyncpg_url
from evertask_storage_sqlite import SqliteTaskStorage
from evertask_storage_sqlite.executor import SqliteExecutor

from .conftest import Clock, StorageFactory, require_postgres
from .helpers import row

Q = QueuedTaskStatus


async def test_rows_survive_close_and_reopen(
    sql_storage: SqlTaskStorage,
    make_storage: StorageFactory,
    clock: Clock,
    request: pytest.FixtureRequest,
) -> None:
    task = row(clock.now, status=Q.QUEUED, task_key="durable")
    await sql_storage.persist(task)
    await sql_storage.set_queue_paused("reports", True)
    await sql_storage.close()
    reopened = make_storage(request.node.callspec.params["sql_storage"])
    await reopened.open()
    try:
        assert await reopened.get(task.id) == task
        assert await reopened.get_paused_queues() == {"reports"}
    finally:
        await reopened.close()


async def test_closed_storage_says_how_to_fix(make_storage: StorageFactory, clock: Clock) -> None:
    storage = make_storage("sqlite")
    with pytest.raises(StorageClosedError, match="start the host"):
        await storage.persist(row(clock.now))
    with pytest.raises(StorageClosedError):
        await storage.get(row(clock.now).id)
    await storage.open()
    await storage.open()  # idempotent
    await storage.close()
    await storage.close()  # idempotent
    with pytest.raises(StorageClosedError):
        await storage.set_queued(row(clock.now).id, AuditLevel.FULL)


async def test_concurrent_writes_share_transactions(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    rows = [row(clock.now, status=Q.QUEUED) for _ in range(300)]
    writer = sql_storage.writer
    assert writer is not None
    before = writer.batches
    await asyncio.gather(*(sql_storage.persist(r) for r in rows))
    assert writer.batches - before < 30
    await asyncio.gather(*(sql_storage.set_in_progress(r.id, AuditLevel.FULL) for r in rows))
    assert (await sql_storage.count_by_status()) == {Q.IN_PROGRESS: 300}
    assert writer.operations >= 600


async def test_a_queued_in_progress_write_is_withdrawn(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    task = row(clock.now, status=Q.QUEUED, audit_level=AuditLevel.NONE)
    await sql_storage.persist(task)
    writer = sql_storage.writer
    assert writer is not None
    before = writer.operations
    pending = sql_storage.begin_in_progress(task.id, AuditLevel.NONE)
    assert sql_storage.withdraw_in_progress(pending, AuditLevel.NONE)
    await pending  # resolved, nothing written
    assert not sql_storage.withdraw_in_progress(pending, AuditLevel.NONE)  # only once
    stored = await sql_storage.get(task.id)
    assert stored is not None and stored.status is Q.QUEUED
    await sql_storage.set_completed(task.id, 1.5, AuditLevel.NONE)
    stored = await sql_storage.get(task.id)
    assert stored is not None and stored.status is Q.COMPLETED
    assert writer.operations - before == 1  # the Completed write alone
    assert await sql_storage.get_status_audits(task.id) == []


async def test_a_withdrawn_in_progress_audit_row_is_written_with_the_outcome(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    tasks = [row(clock.now, status=Q.QUEUED) for _ in range(20)]
    await asyncio.gather(*(sql_storage.persist(t) for t in tasks))
    pending = [sql_storage.begin_in_progress(t.id, AuditLevel.FULL) for t in tasks]
    assert all(sql_storage.withdraw_in_progress(p, AuditLevel.FULL) for p in pending)
    # the outcomes commit in one batch, each carrying its InProgress audit row
    await asyncio.gather(
        *(sql_storage.set_completed(t.id, 2.0, AuditLevel.FULL) for t in tasks[:10]),
        *(sql_storage.set_status(t.id, Q.FAILED, "boom", AuditLevel.FULL, 3.0) for t in tasks[10:]),
    )
    for i, t in enumerate(tasks):
        audits = await sql_storage.get_status_audits(t.id)
        final = Q.COMPLETED if i < 10 else Q.FAILED
        assert [a.new_status for a in audits] == [Q.QUEUED, Q.IN_PROGRESS, final]
        assert audits[1].exception is None
        assert audits[0].updated_at_utc <= audits[1].updated_at_utc <= audits[2].updated_at_utc
        stored = await sql_storage.get(t.id)
        assert stored is not None and stored.status is final


async def test_a_carried_audit_row_survives_a_failed_outcome_write(
    sql_storage: SqlTaskStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = row(clock.now, status=Q.QUEUED)
    await sql_storage.persist(task)
    pending = sql_storage.begin_in_progress(task.id, AuditLevel.FULL)
    assert sql_storage.withdraw_in_progress(pending, AuditLevel.FULL)
    writer = sql_storage.writer
    assert writer is not None
    executor = writer._executors[0]
    real = executor.execute
    calls = 0

    async def fail_once(ops: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the database went away")
        return await real(ops)

    monkeypatch.setattr(executor, "execute", fail_once)
    with pytest.raises(ConnectionError):
        await sql_storage.set_completed(task.id, 1.0, AuditLevel.FULL)
    await sql_storage.set_completed(task.id, 1.0, AuditLevel.FULL)  # the engine's retry
    audits = await sql_storage.get_status_audits(task.id)
    assert [a.new_status for a in audits] == [Q.QUEUED, Q.IN_PROGRESS, Q.COMPLETED]


async def test_an_in_progress_write_already_taken_is_not_withdrawn(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    task = row(clock.now, status=Q.QUEUED)
    await sql_storage.persist(task)
    pending = sql_storage.begin_in_progress(task.id, AuditLevel.FULL)
    await pending  # committed: too late to take back
    assert not sql_storage.withdraw_in_progress(pending, AuditLevel.FULL)
    stored = await sql_storage.get(task.id)
    assert stored is not None and stored.status is Q.IN_PROGRESS
    await sql_storage.set_completed(task.id, 1.0, AuditLevel.FULL)
    audits = await sql_storage.get_status_audits(task.id)
    assert [a.new_status for a in audits] == [Q.QUEUED, Q.IN_PROGRESS, Q.COMPLETED]


async def test_a_bad_write_fails_alone(sql_storage: SqlTaskStorage, clock: Clock) -> None:
    good = [row(clock.now) for _ in range(10)]
    bad = row(datetime(2026, 1, 1))  # naive: refused
    results = await asyncio.gather(
        *(sql_storage.persist(r) for r in [*good[:5], bad, *good[5:]]), return_exceptions=True
    )
    assert [type(r) for r in results] == [type(None)] * 5 + [ValueError] + [type(None)] * 5
    assert (await sql_storage.count_by_status()) == {Q.WAITING_QUEUE: 10}


async def test_auto_apply_off_on_an_empty_database_names_the_fix(tmp_path: Path) -> None:
    storage = SqliteTaskStorage(tmp_path / "empty.db", auto_apply_migrations=False)
    with pytest.raises(StorageSchemaError, match="python -m evertask_storage_efcore_like sql"):
        await storage.open()
    assert not storage.is_open


# -- SQLite ---------------------------------------------------------------------------------
def test_sqlite_options_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="in-memory"):
        SqliteTaskStorage(":memory:")
    with pytest.raises(ConfigurationError, match="synchronous"):
        SqliteTaskStorage(tmp_path / "x.db", synchronous="OFF")
    with pytest.raises(ConfigurationError):
        SqliteTaskStorage(tmp_path / "x.db", busy_timeout=-1)
    with pytest.raises(ConfigurationError):
        SqliteTaskStorage(tmp_path / "x.db", readers=0)


async def test_sqlite_missing_directory_is_reported(tmp_path: Path) -> None:
    storage = SqliteTaskStorage(tmp_path / "missing" / "evertask.db")
    with pytest.raises(ConfigurationError, match="does not exist"):
        await storage.open()


async def test_sqlite_runs_in_wal_mode(tmp_path: Path, clock: Clock) -> None:
    storage = SqliteTaskStorage(tmp_path / "wal.db", now=clock, synchronous="FULL")
    await storage.open()
    try:
        await storage.persist(row(clock.now))
        executor = storage._executors[0]
        assert isinstance(executor, SqliteExecutor)
        assert executor.inline_batches == 0  # FULL syncs every commit: always off the loop
    finally:
        await storage.close()
    with sqlite3.connect(tmp_path / "wal.db") as cx:
        assert cx.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_waits_for_a_lock_held_elsewhere_off_the_loop(
    tmp_path: Path, clock: Clock
) -> None:
    storage = SqliteTaskStorage(tmp_path / "locked.db", now=clock, busy_timeout=5)
    await storage.open()
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None, check_same_thread=False)
    try:
        await storage.persist(row(clock.now))
        executor = storage._executors[0]
        assert isinstance(executor, SqliteExecutor)
        assert executor.inline_batches == 1
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.ensure_future(storage.persist(row(clock.now)))
        ticks = 0
        while not pending.done() and ticks < 10:  # the loop keeps running meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10 and not pending.done()
        other.execute("COMMIT")
        await asyncio.wait_for(pending, 5)
        assert executor.thread_batches >= 1
        # after a batch that waited, a small batch still never waits on the loop
        other.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        began = loop.time()
        pending = asyncio.ensure_future(storage.persist(row(clock.now)))
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert loop.time() - began < 2 and not pending.done()  # (the busy timeout is 5 s)
        other.execute("COMMIT")
        await asyncio.wait_for(pending, 5)
        assert (await storage.count_by_status()) == {Q.WAITING_QUEUE: 3}
    finally:
        other.close()
        await storage.close()


async def test_sqlite_lock_timeout_reaches_the_caller(tmp_path: Path, clock: Clock) -> None:
    storage = SqliteTaskStorage(tmp_path / "busy.db", now=clock, busy_timeout=0.05)
    await storage.open()
    other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await storage.persist(row(clock.now))
        other.execute("ROLLBACK")
        await storage.persist(row(clock.now))  # the writer recovered
    finally:
        other.close()
        await storage.close()


async def test_sqlite_public_api_fallback(tmp_path: Path, clock: Clock) -> None:
    storage = SqliteTaskStorage(tmp_path / "fallback.db", now=clock)
    await storage.open()
    try:
        first = row(clock.now, status=Q.QUEUED, task_key="k")
        await storage.persist(first)
        executor = storage._executors[0]
        assert isinstance(executor, SqliteExecutor)
        executor._direct = False  # as if aiosqlite had no _execute/_conn
        second = row(clock.now, status=Q.QUEUED)
        results = await asyncio.gather(
            storage.persist(second),
            storage.persist(row(clock.now, task_key="k")),
            storage.set_completed(first.id, 1.0, AuditLevel.FULL),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] == []  # no continuation released
        assert type(results[1]).__name__ == "TaskKeyConflictError"
        assert await storage.increment_recovery_failure(second.id) == 1
        loaded = await storage.get(first.id)
        assert loaded is not None and loaded.status is Q.COMPLETED
    finally:
        await storage.close()


async def test_sqlite_claims_seek_the_partial_claim_index(tmp_path: Path, clock: Clock) -> None:
    storage = SqliteTaskStorage(tmp_path / "plan.db", now=clock)
    await storage.open()
    await storage.close()
    dialect = SQLiteDialect_pysqlite(paramstyle="qmark")
    with sqlite3.connect(tmp_path / "plan.db") as cx:
        for due, later in ((False, False), (True, False), (False, True)):
            statement = storage.statements.claim_candidates(False, due, later)
            sql = str(statement.compile(dialect=dialect))
            plan = " ".join(
                r[3] for r in cx.execute("EXPLAIN QUERY PLAN " + sql, [None] * sql.count("?"))
            )
            assert "USING INDEX IX_QueuedTasks_Claim (OwnerNode=?)" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # oldest first without a sort


def _temporary_indexes(path: Path, storage: SqliteTaskStorage) -> dict[str, int]:
    """How many temporary indexes SQLite's program for a new row and for a status write
    opens (``OpenEphemeral``), per statement, on the database at ``path``."""
    dialect = SQLiteDialect_pysqlite(paramstyle="qmark")
    out: dict[str, int] = {}
    with sqlite3.connect(path) as cx:
        for name in ("insert_task", "update_status"):
            sql = str(getattr(storage.statements, name).compile(dialect=dialect))
            program = cx.execute("EXPLAIN " + sql, [None] * sql.count("?"))
            out[name] = sum(1 for r in program if r[1] == "OpenEphemeral")
    return out


async def test_sqlite_status_writes_build_no_temporary_index(tmp_path: Path, clock: Clock) -> None:
    # SQLite evaluates the claim index's WHERE for every row written, and builds a small
    # index for an IN list of more than two constants each time (migration 0008)
    path = tmp_path / "ephemeral.db"
    storage = SqliteTaskStorage(path, now=clock)
    await storage.open()
    await storage.close()
    assert _temporary_indexes(path, storage) == {"insert_task": 0, "update_status": 0}
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            await downgrade_migrations(conn, None, "0007")
            assert _temporary_indexes(path, storage) == {"insert_task": 1, "update_status": 2}
            assert await apply_migrations(conn) == ["0008"]
    finally:
        await engine.dispose()
    assert _temporary_indexes(path, storage) == {"insert_task": 0, "update_status": 0}


async def test_sqlite_writer_keeps_temporary_tables_in_memory_once_migrated(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the grouped statements' small temporary tables in memory; the migrations, which may
    # build an index over every row, still sort in temporary files
    from evertask_storage_efcore_like import storage as base

    during: list[int] = []
    migrate = base.apply_migrations

    async def spy(connection: Any, schema: str | None = None) -> list[str]:
        during.append((await connection.exec_driver_sql("PRAGMA temp_store")).scalar())
        return await migrate(connection, schema)

    monkeypatch.setattr(base, "apply_migrations", spy)
    storage = SqliteTaskStorage(tmp_path / "temp.db", now=clock)
    await storage.open()
    try:
        await storage.persist(row(clock.now))  # the writer's first batch
        driver = storage._executors[0]._driver  # type: ignore[attr-defined]
        cursor = await driver.execute("PRAGMA temp_store")
        assert (await cursor.fetchone())[0] == 2  # MEMORY
    finally:
        await storage.close()
    assert during == [0]  # the default: files


# -- PostgreSQL -----------------------------------------------------------------------------
def test_postgres_urls() -> None:
    assert asyncpg_url("postgresql://u:p@h:5/db").drivername == "postgresql+asyncpg"
    assert asyncpg_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    with pytest.raises(ConfigurationError, match="postgresql://"):
        asyncpg_url("mysql://u@h/db")
    with pytest.raises(ConfigurationError, match="schema"):
        PostgresTaskStorage("postgresql://u@h/db", schema="bad-name;")


async def test_postgres_unreachable_server_is_reported() -> None:
    storage = PostgresTaskStorage(
        "postgresql://evertask:secret@127.0.0.1:1/nowhere", connect_timeout=2
    )
    with pytest.raises(StorageConnectionError) as caught:
        await storage.open()
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "secret" not in message
    assert "Check that PostgreSQL is running" in message


async def test_postgres_schema_is_created(make_storage: StorageFactory) -> None:
    require_postgres()
    storage: TaskStorage = make_storage("postgres")
    await storage.open()
    await storage.close()


async def test_auto_apply_off_on_a_migrated_database_opens(make_storage: StorageFactory) -> None:
    storage = make_storage("sqlite", auto_apply_migrations=False)
    await storage.open()
    await storage.close()
