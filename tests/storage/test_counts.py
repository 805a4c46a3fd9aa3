"""The SQL storages' counts (hourly rollup of finished rows + live rows by index) equal a
recount of ``QueuedTasks`` through every kind of write: transitions, retries, recurring
runs, removals, retention, plain SQL, concurrent writers and folders."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import sqlite

from evertask.storage import TaskQuery
from evertask_abstractions import AuditLevel, QueuedTaskStatus
from evertask_storage_efcore_like import RetentionPolicy, SqlTaskStorage
from evertask_storage_efcore_like.counts import CountFilter, counts_statement
from evertask_storage_efcore_like.schema import STATUS_INDEX
from evertask_storage_sqlite import SqliteTaskStorage

from .conftest import PG_URL, Clock, StorageFactory
from .helpers import count_mismatches, recurring, row

Q = QueuedTaskStatus
A = AuditLevel
QUEUES = ("default", "mail", "reports")


async def _check(storage: SqlTaskStorage) -> None:
    assert await count_mismatches(storage) == {}
    assert await count_mismatches(storage, fold=True) == {}
    assert await count_mismatches(storage) == {}  # after the fold


async def _spread(storage: SqlTaskStorage, clock: Clock, n: int, seed: int = 1) -> list:
    """``n`` tasks created over three days (minutes apart), in three queues, finished
    one way or another."""
    rng = random.Random(seed)
    start = clock.now
    tasks = []
    for i in range(n):
        created = start - timedelta(minutes=rng.randrange(3 * 24 * 60), seconds=rng.random())
        task = row(created, status=Q.QUEUED, queue_name=QUEUES[i % 3])
        await storage.persist(task)
        tasks.append(task)
    for i, task in enumerate(tasks):
        kind = i % 6
        if kind == 0:
            continue  # still queued
        await storage.set_in_progress(task.id, A.FULL)
        if kind in (1, 2, 3):
            await storage.set_completed(task.id, 1.0, A.FULL)
        elif kind == 4:
            await storage.set_status(task.id, Q.FAILED, "boom", A.FULL, 1.0)
        else:
            await storage.set_cancelled_by_user(task.id, A.FULL)
    return tasks


async def test_counts_follow_transitions_retries_removals_and_recurring_runs(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    storage = sql_storage
    tasks = await _spread(storage, clock, 60)
    await _check(storage)
    # retries revive finished rows; a failed row is re-run; a row changes queue
    for task in tasks[1:20:6]:
        await storage.set_status(task.id, Q.QUEUED, None, A.FULL)
    failed = tasks[4]
    await storage.update_task(dataclasses.replace(failed, queue_name="moved"), revive=True)
    await storage.set_status(failed.id, Q.QUEUED, None, A.FULL)
    await _check(storage)
    for task in tasks[:12]:
        await storage.remove(task.id)
    await _check(storage)
    # a recurring series: each run goes Completed and back
    series = recurring(clock.now, clock.now, status=Q.QUEUED)
    await storage.persist(series)
    for _ in range(3):
        await storage.set_in_progress(series.id, A.FULL)
        await storage.complete_recurring_run(series.id, 1.0, clock.now, A.FULL)
        await storage.set_queued(series.id, A.FULL)
    await storage.complete_recurring_run(series.id, 1.0, None, A.FULL)
    await _check(storage)
    assert (await storage.count_by_status())[Q.COMPLETED] >= 1


async def test_task_list_totals_come_from_the_counts(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    storage = sql_storage
    await _spread(storage, clock, 48)
    await storage.fold_counts()
    t = storage.tables.tasks
    edge = clock.now - timedelta(days=1, minutes=17)
    queries = [
        TaskQuery(),
        TaskQuery(statuses=frozenset({Q.COMPLETED})),
        TaskQuery(statuses=frozenset({Q.COMPLETED, Q.QUEUED}), queue_name="mail"),
        TaskQuery(created_after=edge),
        TaskQuery(created_before=edge, statuses=frozenset({Q.FAILED, Q.CANCELLED})),
        TaskQuery(is_recurring=False, created_after=edge - timedelta(hours=5)),
        TaskQuery(search="Ping"),
    ]
    for query in queries:
        page = await storage.query_tasks(query)
        where = []
        if query.statuses is not None:
            where.append(t.c.Status.in_([s.value for s in query.statuses]))
        if query.queue_name is not None:
            where.append(t.c.QueueName == query.queue_name)
        if query.created_after is not None:
            where.append(t.c.CreatedAtUtc >= query.created_after)
        if query.created_before is not None:
            where.append(t.c.CreatedAtUtc < query.created_before)
        if query.is_recurring is not None:
            where.append(t.c.IsRecurring == query.is_recurring)
        (expected,) = (await storage._rows(select(func.count()).select_from(t).where(*where)))[0]
        assert page.total_count == expected, query


async def test_counts_follow_retention_and_plain_sql(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    storage = sql_storage
    await _spread(storage, clock, 60)
    clock.advance(days=4)
    result = await storage.cleanup(
        RetentionPolicy.with_uniform_retention(3.5, delete_completed_tasks=True)
    )
    assert result.tasks == 30  # every Completed one (finished 4 days ago)
    await _check(storage)
    # an operator's own SQL is counted too (the triggers see every write)
    t = storage.tables.tasks
    async with storage._cluster_engine().connect() as connection:  # writable, autocommit
        await connection.execute(
            update(t).where(t.c.Status == Q.FAILED.value).values(Status=Q.COMPLETED.value)
        )
    await _check(storage)


async def test_counts_stay_exact_under_concurrent_writers_and_folders(
    sql_storage: SqlTaskStorage, make_storage: StorageFactory, clock: Clock, request: object
) -> None:
    storage = sql_storage
    backend = request.node.callspec.params["sql_storage"]  # type: ignore[attr-defined]
    # a second host on the same database
    sqlite = backend == "sqlite"
    other = SqliteTaskStorage(storage.path, now=clock) if sqlite else make_storage(backend)  # type: ignore[attr-defined]
    await other.open()
    try:
        tasks = [row(clock.now - timedelta(minutes=i), status=Q.QUEUED) for i in range(200)]
        await asyncio.gather(*(storage.persist(t) for t in tasks[:100]))
        await asyncio.gather(*(other.persist(t) for t in tasks[100:]))
        stop = asyncio.Event()

        async def fold(store: SqlTaskStorage) -> int:
            rounds = 0
            while not stop.is_set():
                await store.fold_counts()
                rounds += 1
                await asyncio.sleep(0)
            return rounds

        async def work(store: SqlTaskStorage, part: list) -> None:
            for i, task in enumerate(part):
                await store.set_in_progress(task.id, A.FULL)
                if i % 4 == 0:
                    await store.set_status(task.id, Q.FAILED, "x", A.FULL, 1.0)
                    await store.set_status(task.id, Q.QUEUED, None, A.FULL)  # a retry
                    await store.set_in_progress(task.id, A.FULL)
                await store.set_completed(task.id, 1.0, A.FULL)

        folders = [asyncio.ensure_future(fold(s)) for s in (storage, other)]
        await asyncio.gather(
            *(work(storage, tasks[i:200:4]) for i in (0, 1)),
            *(work(other, tasks[i:200:4]) for i in (2, 3)),
        )
        stop.set()
        assert all(n > 0 for n in await asyncio.gather(*folders))
        await _check(storage)
        assert (await storage.count_by_status()) == {Q.COMPLETED: 200}
    finally:
        await other.close()


async def _complete(storage: SqlTaskStorage, clock: Clock, n: int) -> None:
    """``n`` tasks persisted and completed: ``n`` count deltas to fold."""
    tasks = [row(clock.now, status=Q.QUEUED) for _ in range(n)]
    await asyncio.gather(*(storage.persist(t) for t in tasks))
    await asyncio.gather(*(storage.set_completed(t.id, 1.0, A.FULL) for t in tasks))


async def _deltas_upkeep(storage: SqlTaskStorage) -> tuple[int, int]:
    """PostgreSQL's ``(n_dead_tup, vacuum_count)`` of the deltas table."""
    query = text(
        "SELECT n_dead_tup, vacuum_count FROM pg_stat_user_tables "
        "WHERE schemaname = :schema AND relname = :name"
    )
    params = {"schema": storage.schema or "public", "name": storage.tables.count_deltas.name}
    (dead, vacuums), *_ = await storage._rows(query, params)
    return int(dead), int(vacuums)


async def test_postgres_vacuums_the_folded_deltas(
    sql_storage: SqlTaskStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deltas live for a second: without autovacuum their dead versions would pile up
    and every count would read them, so the storage vacuums their table itself."""
    from evertask_storage_postgres import PostgresTaskStorage
    from evertask_storage_postgres import storage as pg_storage

    if not isinstance(sql_storage, PostgresTaskStorage):
        pytest.skip("PostgreSQL's own upkeep")
    monkeypatch.setattr(pg_storage, "DELTAS_VACUUM_EVERY", 50)
    await _complete(sql_storage, clock, 60)
    assert await sql_storage.fold_counts() == 60
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the statistics collector reports with a delay
        dead, vacuums = await _deltas_upkeep(sql_storage)
        if (vacuums >= 1 and dead == 0) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert vacuums >= 1
    if dead:  # a vacuum removes only what no open snapshot may still see
        older = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()"
        )
        assert (await sql_storage._rows(older))[0][0] > 0, f"{dead} dead deltas, no snapshot"


async def test_postgres_vacuums_the_deltas_once_another_sessions_lock_is_gone(
    sql_storage: SqlTaskStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vacuum that finds the table held (another session's ANALYZE or VACUUM) is not
    counted as done: the next fold vacuums, instead of leaving the dead deltas to the next
    50,000 (with a million of them a count read 8,000 pages: 220 ms)."""
    import asyncpg  # type: ignore[import-untyped]

    from evertask_storage_postgres import PostgresTaskStorage
    from evertask_storage_postgres import storage as pg_storage

    if not isinstance(sql_storage, PostgresTaskStorage):
        pytest.skip("PostgreSQL's own upkeep")
    monkeypatch.setattr(pg_storage, "DELTAS_VACUUM_EVERY", 20)
    monkeypatch.setattr(pg_storage, "VACUUM_LOCK_WAIT_MS", 200)
    name = sql_storage.tables.count_deltas.name
    table = f'"{sql_storage.schema}"."{name}"' if sql_storage.schema else f'"{name}"'

    async def vacuums() -> int:
        return (await _deltas_upkeep(sql_storage))[1]

    before = await vacuums()
    await _complete(sql_storage, clock, 25)
    holder = await asyncpg.connect(PG_URL)
    try:
        async with holder.transaction():  # what an ANALYZE of the table holds
            await holder.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
            assert await sql_storage.fold_counts() == 25
    finally:
        await holder.close()
    assert await sql_storage.fold_counts() == 0  # nothing new to fold: it vacuums now
    deadline = asyncio.get_running_loop().time() + 10
    while await vacuums() == before and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)  # the statistics collector reports with a delay
    assert await vacuums() == before + 1


async def test_a_fold_chosen_as_a_deadlocks_victim_runs_again(
    sql_storage: SqlTaskStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database rolls a deadlock's victim back whole; the fold then takes the same
    deltas again, and no count is lost or doubled."""
    import pymysql
    from sqlalchemy import exc as sa_exc

    tasks = [row(clock.now, status=Q.QUEUED) for _ in range(5)]
    await asyncio.gather(*(sql_storage.persist(t) for t in tasks))
    await asyncio.gather(*(sql_storage.set_completed(t.id, 1.0, A.FULL) for t in tasks))
    real, losses = sql_storage._maintain, []

    async def losing_once(op: object) -> object:
        if not losses:
            losses.append(op)
            deadlock = pymysql.err.OperationalError(1213, "Deadlock found")
            raise sa_exc.OperationalError("DELETE ...", {}, deadlock)
        return await real(op)  # type: ignore[arg-type]

    monkeypatch.setattr(sql_storage, "_maintain", losing_once)
    assert await sql_storage.fold_counts() == 5
    assert len(losses) == 1
    await _check(sql_storage)
    assert await sql_storage.count_by_status() == {Q.COMPLETED: 5}


async def test_sqlite_counts_the_live_rows_by_index_once_analyzed(
    tmp_path: Path, clock: Clock
) -> None:
    """ANALYZE gives the status index one equal share per status, so SQLite's planner
    would scan the whole table for the live statuses; the statement tells it they are
    rare, and the count seeks them (a million rows: 170 ms scanning, under 80 seeking)."""
    path = tmp_path / "analyzed.db"
    storage = SqliteTaskStorage(path, now=clock)
    await storage.open()
    try:
        await _spread(storage, clock, 24)
        statement = counts_statement(storage.tables, CountFilter())
        assert statement is not None
    finally:
        await storage.close()
    sql = str(statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite3.connect(path) as con:  # the statistics of a million rows, eight statuses
        con.execute("ANALYZE")
        con.execute(
            "UPDATE sqlite_stat1 SET stat = CASE WHEN idx = ? THEN '1000000 125000 1' "
            "WHEN idx LIKE 'IX_QueuedTasks_%' THEN '1000000 333334 1' ELSE '1000000 1' END "
            "WHERE tbl = 'QueuedTasks'",
            (STATUS_INDEX,),
        )
    with sqlite3.connect(path) as con:
        plan = [r[3] for r in con.execute(f"EXPLAIN QUERY PLAN {sql}")]
    tasks = [step for step in plan if "QueuedTasks" in step]
    assert tasks == [f"SEARCH QueuedTasks USING INDEX {STATUS_INDEX} (Status=?)"], plan
