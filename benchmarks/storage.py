"""The storage suite: end-to-end throughput on SQLite and PostgreSQL, and recovery time.

- throughput: 20,000 no-op tasks dispatched by 1,000 concurrent producers and executed,
  timed until every row is ``Completed`` and committed, at audit levels None and Full;
  ``max_degree_of_parallelism(128)`` (no-op tasks are I/O-bound: each waits for commits).
- recovery: 100,000 pending rows (delayed by an hour, so nothing executes) in a SQLite
  file; the time of the startup recovery pass that reads, loads and schedules all of them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from evertask import add_evertask
from evertask_abstractions import AuditLevel

from .common import Results, report
from .engine import Container, Noop, NoopHandler

PG_URL = os.environ.get("EVERTASK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PARALLELISM = 128
PRODUCERS = 1000


def _builder(container: Container, audit: AuditLevel) -> Any:
    return add_evertask(
        container,
        lambda o: (
            o.register_handler(NoopHandler)
            .set_max_degree_of_parallelism(PARALLELISM)
            .set_default_audit_level(audit)
        ),
    )


async def _drop_schema(schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def throughput(backend: str, audit: AuditLevel, n: int) -> float:
    """Tasks per second from the first dispatch until the last row is Completed."""
    container = Container()
    builder = _builder(container, audit)
    directory = tempfile.mkdtemp(prefix="evertask-bench-")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        builder.add_sqlite_storage(os.path.join(directory, "bench.db"))
    else:
        builder.add_postgres_storage(PG_URL, schema=schema)
    host = builder.build()
    recorder = container.recorder()
    try:
        async with host:
            recorder.reset(n)
            numbers = iter(range(n))
            dispatch = host.dispatcher.dispatch

            async def producer() -> None:
                for i in numbers:
                    await dispatch(Noop(n=i))

            start = time.perf_counter()
            await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
            await recorder.done.wait()
            storage = host.storage
            assert storage is not None
            while True:
                counts = await storage.count_by_status()
                if sum(v for k, v in counts.items() if k.value == "Completed") >= n:
                    break
                await asyncio.sleep(0.002)
            elapsed = time.perf_counter() - start
    finally:
        if backend == "postgres":
            await _drop_schema(schema)
    return n / elapsed


async def recovery(rows: int) -> float:
    """Seconds the startup recovery pass takes for ``rows`` pending delayed rows (SQLite)."""
    from evertask import QueuedTask
    from evertask.ids import uuid7
    from evertask_storage_sqlite import SqliteTaskStorage

    path = os.path.join(tempfile.mkdtemp(prefix="evertask-bench-"), "recovery.db")
    storage = SqliteTaskStorage(path)
    await storage.open()
    due = datetime.now(UTC) + timedelta(hours=1)
    name = Noop.evertask_type_name()
    handler = f"{NoopHandler.__module__}:{NoopHandler.__qualname__}"
    batch: list[Any] = []
    for i in range(rows):
        batch.append(
            storage.persist(
                QueuedTask(
                    id=uuid7(),
                    type=name,
                    request=f'{{"n":{i}}}',
                    handler=handler,
                    status=_waiting(),
                    created_at_utc=datetime.now(UTC),
                    scheduled_execution_utc=due,
                    audit_level=AuditLevel.NONE,
                )
            )
        )
        if len(batch) == 2000:
            await asyncio.gather(*batch)
            batch.clear()
    await asyncio.gather(*batch)
    await storage.close()
    container = Container()
    host = _builder(container, AuditLevel.NONE).add_sqlite_storage(path).build()
    async with host:
        report_ = await host.wait_recovered(120)
        assert report_ is not None and report_.scheduled == rows, report_
        seconds: float = report_.seconds
        return seconds


def _waiting() -> Any:
    from evertask_abstractions import QueuedTaskStatus

    return QueuedTaskStatus.WAITING_QUEUE


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it."""
    n = 5_000 if quick else 20_000
    rows = 20_000 if quick else 100_000
    results: Results = {
        "tasks": float(n),
        "parallelism": float(PARALLELISM),
        "recovery_rows": float(rows),
    }
    for backend in ("sqlite", "postgres"):
        for audit in (AuditLevel.NONE, AuditLevel.FULL):
            key = f"{backend}_{audit.name.lower()}_tasks_per_s"
            results[key] = round(asyncio.run(throughput(backend, audit, n)), 1)
    seconds = asyncio.run(recovery(rows))
    results["sqlite_recovery_100k_s" if rows == 100_000 else "sqlite_recovery_s"] = round(
        seconds, 3
    )
    rows_out = [
        ("tasks per run / parallelism / producers", f"{n:,} / {PARALLELISM} / {PRODUCERS}"),
        (
            "SQLite, audit None (bar >= 5,000/s)",
            f"{results['sqlite_none_tasks_per_s']:,.0f} tasks/s",
        ),
        (
            "SQLite, audit Full (bar >= 2,000/s)",
            f"{results['sqlite_full_tasks_per_s']:,.0f} tasks/s",
        ),
        (
            "PostgreSQL, audit None (bar >= 5,000/s)",
            f"{results['postgres_none_tasks_per_s']:,.0f} tasks/s",
        ),
        ("PostgreSQL, audit Full", f"{results['postgres_full_tasks_per_s']:,.0f} tasks/s"),
        (f"SQLite recovery of {rows:,} pending rows (bar < 10 s)", f"{seconds:.2f} s"),
        (
            "EverTask .NET published (same workloads)",
            "SQLite ~222 / ~50 tasks/s, PostgreSQL ~2,500",
        ),
    ]
    report(
        "python -m benchmarks storage" + (" --quick" if quick else ""), rows_out, results, json_path
    )
    return results
