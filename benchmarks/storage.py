"""The storage suite: end-to-end throughput on SQLite and PostgreSQL, and recovery time.

- throughput: 20,000 no-op tasks dispatched by 1,000 concurrent producers and executed,
  timed until every row is ``Completed`` and committed, at audit levels None and Full;
  ``max_degree_of_parallelism(128)`` (no-op tasks are I/O-bound: each waits for commits).
- the SQL floor (SQLite, :mod:`.sql_floor`): after each SQLite run, the same number of
  tasks' statements with their arguments ready, on one ``sqlite3`` connection, in
  transactions of the run's mean size: the database's own cost, in the same run.
- the bound (SQLite): the same engine and workload with no storage (its CPU time per task)
  plus the SQL floor's time per task: what this engine would reach on a storage whose
  Python cost nothing, the statements run on the same core (with the GIL, a SQLite
  thread adds no core: docs/benchmarks.md).
- recovery: 100,000 pending rows (delayed by an hour, so nothing executes) in a SQLite
  file; the time of the startup recovery pass that reads, loads and schedules all of them.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from evertask import add_evertask
from evertask.cli.run import tune_gc, untune_gc
from evertask_abstractions import AuditLevel

from .common import GcClock, Results, report
from .engine import Container, Noop, NoopHandler
from .sql_floor import sql_floor

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


@dataclass(frozen=True)
class Run:
    """One throughput run: its rate, its batches and where its CPU time went."""

    tasks_per_s: float
    writes_per_batch: float
    cpu_us_per_task: float
    """The whole process (every thread) per task."""
    loop_cpu_us_per_task: float
    """The event loop's thread per task; the rest ran on the driver's threads (aiosqlite
    runs a connection's statements on a thread of its own, asyncpg has none)."""
    gc_us_per_task: float
    """Of the CPU time, the garbage collector's (collections run in any thread)."""
    full_collections: int
    """Collections of the oldest generation (each walks every tracked object)."""


async def throughput(backend: str, audit: AuditLevel, n: int, *, tuned_gc: bool = False) -> Run:
    """Tasks per second from the first dispatch until the last row is Completed, the mean
    number of writes per committed batch and the CPU time per task.

    ``backend``: ``"sqlite"``, ``"postgres"`` or ``"none"`` (the same engine and workload
    with no storage: until the last task has run).

    Every run starts from a collected heap (``gc.collect()`` once the host has started).

    ``tuned_gc``: with the collector settings of ``evertask run --tune-gc``, applied once
    the host has started, as the command does, and undone after the run."""
    container = Container()
    builder = _builder(container, audit)
    threshold = gc.get_threshold()
    directory = tempfile.mkdtemp(prefix="evertask-bench-")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        builder.add_sqlite_storage(os.path.join(directory, "bench.db"))
    elif backend == "postgres":
        builder.add_postgres_storage(PG_URL, schema=schema)
    elif backend != "none":
        raise ValueError(f"Unknown backend {backend!r}: sqlite, postgres or none.")
    host = builder.build()
    recorder = container.recorder()
    try:
        async with host:
            if tuned_gc:
                tune_gc()  # collects first, as the command does
            else:
                # from a collected heap, the collector's counters at zero, as the other
                # suites' runs start: not halfway to a full collection because of the run
                # before it in this process (docs/benchmarks.md, "The garbage collector")
                gc.collect()
            recorder.reset(n)
            numbers = iter(range(n))
            dispatch = host.dispatcher.dispatch

            async def producer() -> None:
                for i in numbers:
                    await dispatch(Noop(n=i))

            start = time.perf_counter()
            cpu, loop_cpu = time.process_time(), time.thread_time()
            with GcClock() as collector:
                await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
                await recorder.done.wait()
                storage = host.storage
                while storage is not None:
                    counts = await storage.count_by_status()
                    if sum(v for k, v in counts.items() if k.value == "Completed") >= n:
                        break
                    await asyncio.sleep(0.002)
            elapsed = time.perf_counter() - start
            cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
            writer = getattr(storage, "writer", None)
            per_batch = writer.operations / max(1, writer.batches) if writer else 0.0
    finally:
        if tuned_gc:
            untune_gc(threshold)
        if backend == "postgres":
            await _drop_schema(schema)
    return Run(
        n / elapsed,
        per_batch,
        cpu / n * 1e6,
        loop_cpu / n * 1e6,
        collector.seconds / n * 1e6,
        collector.collections[2],
    )


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


def bound_tasks_per_s(engine_cpu_us_per_task: float, sql_floor_tasks_per_s: float) -> float:
    """The rate of this engine on a storage whose own Python cost nothing: its CPU time per
    task with no storage plus the statements' own time per task, one after the other."""
    return 1e6 / (engine_cpu_us_per_task + 1e6 / sql_floor_tasks_per_s)


def _waiting() -> Any:
    from evertask_abstractions import QueuedTaskStatus

    return QueuedTaskStatus.WAITING_QUEUE


def _floor_text(results: Results, prefix: str) -> str:
    return (
        f"{results[prefix + '_sql_floor_tasks_per_s']:,.0f} tasks/s, "
        f"{results[prefix + '_ratio_to_sql_floor']:.1%} "
        f"({results[prefix + '_writes_per_batch']:.0f} writes per batch)"
    )


def _bound_text(results: Results, prefix: str) -> str:
    return (
        f"{results[prefix + '_bound_tasks_per_s']:,.0f} tasks/s, "
        f"{results[prefix + '_ratio_to_bound']:.1%}"
    )


def _cpu_text(results: Results, prefix: str) -> str:
    text = (
        f"{results[prefix + '_cpu_us_per_task']:,.0f} us, "
        f"{results[prefix + '_loop_cpu_us_per_task']:,.0f} us, "
        f"{results[prefix + '_gc_us_per_task']:,.1f} us "
        f"({results[prefix + '_full_collections']:.0f} full)"
    )
    floor = results.get(prefix + "_sql_floor_us_per_task")
    return text if floor is None else f"{text}, {floor:,.0f} us"


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it."""
    n = 5_000 if quick else 20_000
    rows = 20_000 if quick else 100_000
    results: Results = {
        "tasks": float(n),
        "parallelism": float(PARALLELISM),
        "recovery_rows": float(rows),
    }
    # the engine's own share: the same workload with no storage (see the module's doc)
    bare = asyncio.run(throughput("none", AuditLevel.NONE, n))
    results["no_storage_tasks_per_s"] = round(bare.tasks_per_s, 1)
    results["no_storage_cpu_us_per_task"] = round(bare.cpu_us_per_task, 1)
    for backend in ("sqlite", "postgres"):
        for audit in (AuditLevel.NONE, AuditLevel.FULL):
            prefix = f"{backend}_{audit.name.lower()}"
            one = asyncio.run(throughput(backend, audit, n))
            results[f"{prefix}_tasks_per_s"] = round(one.tasks_per_s, 1)
            results[f"{prefix}_writes_per_batch"] = round(one.writes_per_batch, 1)
            results[f"{prefix}_cpu_us_per_task"] = round(one.cpu_us_per_task, 1)
            results[f"{prefix}_loop_cpu_us_per_task"] = round(one.loop_cpu_us_per_task, 1)
            results[f"{prefix}_gc_us_per_task"] = round(one.gc_us_per_task, 1)
            results[f"{prefix}_full_collections"] = float(one.full_collections)
            if backend == "sqlite":
                floor = sql_floor(audit, n, one.writes_per_batch)
                results[f"{prefix}_sql_floor_tasks_per_s"] = round(floor, 1)
                results[f"{prefix}_sql_floor_us_per_task"] = round(1e6 / floor, 1)
                results[f"{prefix}_ratio_to_sql_floor"] = round(one.tasks_per_s / floor, 3)
                bound = bound_tasks_per_s(bare.cpu_us_per_task, floor)
                results[f"{prefix}_bound_tasks_per_s"] = round(bound, 1)
                results[f"{prefix}_ratio_to_bound"] = round(one.tasks_per_s / bound, 3)
            if backend == "sqlite" and audit is AuditLevel.NONE:
                tuned = asyncio.run(throughput(backend, audit, n, tuned_gc=True))
                results["sqlite_none_tuned_gc_tasks_per_s"] = round(tuned.tasks_per_s, 1)
                results["sqlite_none_tuned_gc_gc_us_per_task"] = round(tuned.gc_us_per_task, 1)
                results["sqlite_none_tuned_gc_ratio"] = round(
                    tuned.tasks_per_s / one.tasks_per_s, 3
                )
    seconds = asyncio.run(recovery(rows))
    results["sqlite_recovery_100k_s" if rows == 100_000 else "sqlite_recovery_s"] = round(
        seconds, 3
    )
    rows_out = [
        ("tasks per run / parallelism / producers", f"{n:,} / {PARALLELISM} / {PRODUCERS}"),
        (
            "the same engine and workload with no storage: tasks/s, CPU per task",
            f"{results['no_storage_tasks_per_s']:,.0f}, "
            f"{results['no_storage_cpu_us_per_task']:,.1f} us",
        ),
        (
            "SQLite, audit None (bar >= 5,000/s)",
            f"{results['sqlite_none_tasks_per_s']:,.0f} tasks/s",
        ),
        (
            "  its SQL floor, EverTask's share of it",
            _floor_text(results, "sqlite_none"),
        ),
        (
            "  this engine with no storage + SQL floor, EverTask's share",
            _bound_text(results, "sqlite_none"),
        ),
        (
            "  CPU per task: all, event loop, collector, SQL floor",
            _cpu_text(results, "sqlite_none"),
        ),
        (
            "  the same with `evertask run --tune-gc`'s collector",
            f"{results['sqlite_none_tuned_gc_tasks_per_s']:,.0f} tasks/s "
            f"(x{results['sqlite_none_tuned_gc_ratio']:.2f}; collector "
            f"{results['sqlite_none_tuned_gc_gc_us_per_task']:,.1f} us per task)",
        ),
        (
            "SQLite, audit Full (bar >= 2,000/s)",
            f"{results['sqlite_full_tasks_per_s']:,.0f} tasks/s",
        ),
        (
            "  its SQL floor, EverTask's share of it",
            _floor_text(results, "sqlite_full"),
        ),
        (
            "  this engine with no storage + SQL floor, EverTask's share",
            _bound_text(results, "sqlite_full"),
        ),
        (
            "  CPU per task: all, event loop, collector, SQL floor",
            _cpu_text(results, "sqlite_full"),
        ),
        (
            "PostgreSQL, audit None (bar >= 5,000/s)",
            f"{results['postgres_none_tasks_per_s']:,.0f} tasks/s",
        ),
        ("  CPU per task: all, event loop, collector", _cpu_text(results, "postgres_none")),
        ("PostgreSQL, audit Full", f"{results['postgres_full_tasks_per_s']:,.0f} tasks/s"),
        ("  CPU per task: all, event loop, collector", _cpu_text(results, "postgres_full")),
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
