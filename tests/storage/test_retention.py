"""Retention cleanup (SQL storages) and its policy and component."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from evertask.ids import uuid7
from evertask.storage import TaskExecutionLog, TaskQuery
from evertask_abstractions import AuditLevel, ConfigurationError, QueuedTaskStatus
from evertask_storage_efcore_like import RetentionComponent, RetentionPolicy, SqlTaskStorage
from evertask_storage_efcore_like.retention import apply_retention
from evertask_storage_efcore_like.retention_ops import (
    AuditBatchOp,
    Batch,
    DeleteBatchOp,
    TaskBatchOp,
)
from evertask_storage_efcore_like.storage import RETENTION_LEASE
from evertask_storage_sqlite import SqliteTaskStorage

from .conftest import Clock
from .helpers import count_mismatches, recurring, row

Q = QueuedTaskStatus
A = AuditLevel


async def _history(storage: SqlTaskStorage, clock: Clock) -> dict[str, Any]:
    """Day 0: a completed task, a failed task, a recurring task with runs; day 30: more."""
    done = row(clock.now, status=Q.QUEUED)
    failed = row(clock.now, status=Q.QUEUED)
    series = recurring(clock.now, clock.now, status=Q.QUEUED)
    for task in (done, failed, series):
        await storage.persist(task)
    await storage.set_in_progress(done.id, A.FULL)
    await storage.set_completed(done.id, 1.0, A.FULL)
    await storage.set_in_progress(failed.id, A.FULL)
    await storage.set_status(failed.id, Q.FAILED, "boom", A.FULL, 1.0)
    await storage.complete_recurring_run(series.id, 1.0, clock.now, A.FULL)
    await storage.set_status(series.id, Q.FAILED, "bad run", A.FULL)
    await storage.update_current_run(series.id, 1.0, clock.now, A.FULL)
    await storage.save_execution_logs(
        done.id,
        [
            TaskExecutionLog(
                id=uuid7(),
                task_id=done.id,
                timestamp_utc=clock.now,
                level="Information",
                message=f"l{i}",
                sequence_number=i,
            )
            for i in range(5)
        ],
    )
    clock.advance(days=30)
    fresh = row(clock.now, status=Q.QUEUED)
    await storage.persist(fresh)
    await storage.set_completed(fresh.id, 1.0, A.FULL)
    await storage.save_execution_logs(
        fresh.id,
        [
            TaskExecutionLog(
                id=uuid7(),
                task_id=fresh.id,
                timestamp_utc=clock.now,
                level="Information",
                message=f"n{i}",
                sequence_number=i,
            )
            for i in range(5)
        ],
    )
    return {"done": done, "failed": failed, "series": series, "fresh": fresh}


async def test_cleanup_with_error_priority(sql_storage: SqlTaskStorage, clock: Clock) -> None:
    rows = await _history(sql_storage, clock)
    policy = RetentionPolicy(
        status_audit_retention_days=7,
        runs_audit_retention_days=7,
        error_audit_retention_days=60,
        batch_size=2,
    )
    result = await sql_storage.cleanup(policy)
    # done: Queued, InProgress, Completed go; failed: Queued, InProgress go, Failed stays
    # series: Queued, Completed go, Failed stays; runs: Completed goes, Failed stays
    assert (result.status_audits, result.runs_audits, result.execution_logs, result.tasks) == (
        7,
        1,
        0,
        0,
    )
    assert await sql_storage.get_status_audits(rows["done"].id) == []
    assert [a.new_status for a in await sql_storage.get_status_audits(rows["failed"].id)] == [
        Q.FAILED
    ]
    assert [r.status for r in await sql_storage.get_runs_audits(rows["series"].id)] == [Q.FAILED]
    assert len(await sql_storage.get_status_audits(rows["fresh"].id)) == 2
    assert (await sql_storage.cleanup(policy)).total == 0  # idempotent

    clock.advance(days=31)  # now the error rows are older than 60 days too
    result = await sql_storage.cleanup(policy)
    assert (result.status_audits, result.runs_audits) == (4, 1)


async def test_cleanup_logs_by_age_and_count(sql_storage: SqlTaskStorage, clock: Clock) -> None:
    rows = await _history(sql_storage, clock)
    result = await sql_storage.cleanup(RetentionPolicy(execution_log_retention_days=10))
    assert result.execution_logs == 5
    assert await sql_storage.count_execution_logs(rows["done"].id) == 0
    assert await sql_storage.count_execution_logs(rows["fresh"].id) == 5
    result = await sql_storage.cleanup(RetentionPolicy(max_execution_logs_per_task=2, batch_size=2))
    assert result.execution_logs == 3
    kept = await sql_storage.get_execution_logs(rows["fresh"].id)
    assert [log.message for log in kept] == ["n3", "n4"]  # the newest


async def test_cleanup_deletes_finished_one_shots_without_history(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    rows = await _history(sql_storage, clock)
    policy = RetentionPolicy.with_uniform_retention(7, delete_completed_tasks=True)
    result = await sql_storage.cleanup(policy)
    assert result.tasks == 1  # done: audits and logs gone, completed 30 days ago
    assert await sql_storage.get(rows["done"].id) is None
    assert await sql_storage.get(rows["failed"].id) is not None  # not Completed
    assert await sql_storage.get(rows["series"].id) is not None  # recurring
    assert await sql_storage.get(rows["fresh"].id) is not None  # recent


async def test_cleanup_deletes_batch_records_finished_before_the_task_window(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    from evertask.storage import TaskBatch
    from evertask_abstractions import BatchKind, BatchStatus

    def record(status: BatchStatus, finished_days_ago: float | None) -> TaskBatch:
        finished = (
            None if finished_days_ago is None else clock.now - timedelta(days=finished_days_ago)
        )
        return TaskBatch(
            id=uuid7(),
            kind=BatchKind.BATCH,
            status=status,
            created_at_utc=clock.now - timedelta(days=40),
            total=1,
            finished_at_utc=finished,
        )

    old = record(BatchStatus.COMPLETED, 30)
    recent = record(BatchStatus.FAILED, 1)
    running = record(BatchStatus.RUNNING, None)
    await sql_storage.persist_unit([old, recent, running], [])
    policy = RetentionPolicy.with_uniform_retention(7, delete_completed_tasks=True)
    result = await sql_storage.cleanup(policy)
    assert result.batches == 1
    assert await sql_storage.get_batch(old.id) is None
    assert await sql_storage.get_batch(recent.id) is not None
    assert await sql_storage.get_batch(running.id) is not None
    # without task deletion, records are kept
    assert (await sql_storage.cleanup(RetentionPolicy.with_uniform_retention(0.5))).batches == 0


async def test_cleanup_keeps_completed_tasks_that_still_own_logs(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    rows = await _history(sql_storage, clock)
    policy = RetentionPolicy(
        status_audit_retention_days=7, delete_completed_tasks_after_retention=True
    )
    result = await sql_storage.cleanup(policy)
    assert result.tasks == 0  # its logs are retained (no log retention configured)
    assert await sql_storage.get(rows["done"].id) is not None


async def test_cleanup_runs_between_writes(sql_storage: SqlTaskStorage, clock: Clock) -> None:
    for _ in range(30):
        task = row(clock.now, status=Q.QUEUED)
        await sql_storage.persist(task)
        await sql_storage.set_completed(task.id, 1.0, A.FULL)
    clock.advance(days=2)
    cleanup = asyncio.ensure_future(
        sql_storage.cleanup(RetentionPolicy(status_audit_retention_days=1, batch_size=7))
    )
    await asyncio.gather(*(sql_storage.persist(row(clock.now, status=Q.QUEUED)) for _ in range(20)))
    assert (await cleanup).status_audits == 60
    assert (await sql_storage.count_by_status())[Q.QUEUED] == 20


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status_audit_retention_days": 0},
        {"runs_audit_retention_days": -1},
        {"error_audit_retention_days": float("nan")},
        {"execution_log_retention_days": 0},
        {"max_execution_logs_per_task": 0},
        {"max_execution_logs_per_task": 2.5},
        {"batch_size": 0},
        {"delete_completed_tasks_after_retention": True},
        {"status_audit_retention_days": "7"},
    ],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetentionPolicy(**kwargs)


def test_policy_factories() -> None:
    uniform = RetentionPolicy.with_uniform_retention(14)
    assert (
        uniform.status_audit_retention_days,
        uniform.runs_audit_retention_days,
        uniform.execution_log_retention_days,
    ) == (14, 14, 14)
    priority = RetentionPolicy.with_error_priority(7, 90)
    assert priority.longest_audit_window_days() == 90
    assert RetentionPolicy().longest_audit_window_days() is None


class _Host:
    def __init__(self, storage: object) -> None:
        self.storage = storage


async def test_retention_component_runs_periodically(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    await _history(sql_storage, clock)
    component = RetentionComponent(
        None,
        RetentionPolicy(status_audit_retention_days=7),
        timedelta(milliseconds=20),
        initial_delay=timedelta(0),
    )
    await component.start(_Host(sql_storage))  # type: ignore[arg-type]
    for _ in range(100):
        if component.runs >= 2:
            break
        await asyncio.sleep(0.01)
    await component.stop()
    assert component.runs >= 2
    assert component.last_result is not None


async def test_retention_component_needs_a_sql_storage() -> None:
    from evertask.storage import MemoryTaskStorage

    component = RetentionComponent(None, RetentionPolicy(status_audit_retention_days=1))
    with pytest.raises(ConfigurationError, match="SQL storage"):
        await component.start(_Host(MemoryTaskStorage()))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RetentionComponent(None, RetentionPolicy(), timedelta(0))


async def test_one_host_cleans_at_a_time(sql_storage: SqlTaskStorage, clock: Clock) -> None:
    await _history(sql_storage, clock)
    policy = RetentionPolicy(status_audit_retention_days=7)
    other = uuid.uuid4()  # another host holding the lease
    until = clock.now + timedelta(seconds=60)
    assert await sql_storage.try_lease(RETENTION_LEASE, other, clock.now, until)
    assert await sql_storage.try_lease(RETENTION_LEASE, other, clock.now, until)  # renewal
    assert (await sql_storage.cleanup(policy)).skipped
    clock.advance(seconds=61)  # the other host died: its lease lapsed
    result = await sql_storage.cleanup(policy)
    assert not result.skipped and result.status_audits > 0
    # a cleanup gives its lease back when done; a valid lease keeps others out
    valid = clock.now + timedelta(seconds=60)
    assert await sql_storage.try_lease(RETENTION_LEASE, other, clock.now, valid)
    assert not await sql_storage.try_lease(RETENTION_LEASE, uuid.uuid4(), clock.now, valid)
    await sql_storage.release_lease(RETENTION_LEASE, other)
    assert await sql_storage.try_lease(RETENTION_LEASE, uuid.uuid4(), clock.now, valid)


async def test_every_walk_reads_each_key_once(sql_storage: SqlTaskStorage, clock: Clock) -> None:
    old = [row(clock.now - timedelta(minutes=i), status=Q.QUEUED) for i in range(40)]
    for task in old:
        await sql_storage.persist(task)
        await sql_storage.set_completed(task.id, 1.0, A.FULL)
    for task in old[::5]:  # kept: failed ones interleave with the deleted rows
        await sql_storage.set_status(task.id, Q.FAILED, "x", A.FULL)
    clock.advance(days=10)
    seen: list[Any] = []
    run = sql_storage._maintain

    async def recording(op: Any) -> Any:
        outcome = await run(op)
        seen.append((op, outcome))
        return outcome

    sql_storage._maintain = recording  # type: ignore[method-assign]
    policy = RetentionPolicy(
        status_audit_retention_days=5,
        error_audit_retention_days=8,
        delete_completed_tasks_after_retention=True,
        execution_log_retention_days=5,
        batch_size=3,
    )
    result = await sql_storage.cleanup(policy)
    assert result.tasks == 32
    for walk in ("tasks", "status_audits", "runs_audits"):
        walks = [
            (op, outcome)
            for op, outcome in seen
            if (isinstance(op, TaskBatchOp) and walk == "tasks")
            or (isinstance(op, AuditBatchOp) and op.table == walk)
        ]
        assert walks, walk
        for (_, before), (op, _) in itertools.pairwise(walks):
            assert op.after == before.cursor  # each batch starts where the last one ended
        assert sum(outcome.walked for _, outcome in walks) <= 40 * 4
    remaining = await sql_storage.query_tasks(TaskQuery())
    assert remaining.total_count == 8  # the failed ones
    assert await count_mismatches(sql_storage) == {}


async def test_batches_size_themselves_and_rest() -> None:
    """The pacer: a batch slower than batch_seconds shrinks the next one, a fast one
    grows it; the cleanup rests as long as each batch took, and no faster than the rate."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [0.0]
    sleeps: list[float] = []
    takes: list[int] = []

    async def run(op: Any) -> Batch | int:
        if isinstance(op, DeleteBatchOp):
            return 0  # (the finished batch records: none)
        if not isinstance(op, TaskBatchOp):
            return Batch(0, 0, op.after, True)  # (the audit walk: nothing to do)
        takes.append(op.take)
        # 1 ms a row at first, then 0.8 ms (on target), then 0.1 ms (fast)
        cost = 0.001 if len(takes) == 1 else 0.0008 if len(takes) <= 3 else 0.0001
        clock[0] += op.take * cost
        done = len(takes) >= 12
        return Batch(op.take, op.take, (now, uuid.UUID(int=len(takes))), done)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    async def over_limit(keep: int, after: uuid.UUID, batch: int) -> list[uuid.UUID]:
        return []

    policy = RetentionPolicy(
        status_audit_retention_days=1,
        delete_completed_tasks_after_retention=True,
        batch_size=400,
        batch_seconds=0.01,
        max_rows_per_second=50_000,
    )
    result = await apply_retention(
        policy, now, run, over_limit, sleep=sleep, monotonic=lambda: clock[0]
    )
    assert takes[0] == 100  # 0.1 s: ten times too slow
    assert takes[1] == 10 and takes[2] == 10
    assert takes[4] > takes[3] and max(takes) <= 400  # fast again: grows, up to batch_size
    assert len(sleeps) == 11 and all(s > 0 for s in sleeps)
    assert result.tasks == sum(takes)
    assert clock[0] >= sum(takes) / 50_000  # the rate bound


async def test_sqlite_cleanup_never_runs_on_the_event_loop(
    sql_storage: SqlTaskStorage, clock: Clock
) -> None:
    if not isinstance(sql_storage, SqliteTaskStorage):
        pytest.skip("SQLite's executor")
    await _history(sql_storage, clock)
    writer = sql_storage.writer
    assert writer is not None
    executor: Any = writer._executors[0]  # type: ignore[attr-defined]
    inline = executor.inline_batches
    result = await sql_storage.cleanup(RetentionPolicy.with_uniform_retention(7))
    assert result.total > 0
    assert executor.inline_batches == inline


async def test_sqlite_gives_freed_pages_back(tmp_path: Any, clock: Clock) -> None:
    storage = SqliteTaskStorage(tmp_path / "space.db", now=clock)
    await storage.open()
    try:
        big = "x" * 2000
        for _ in range(10):
            tasks = [row(clock.now, status=Q.QUEUED, request=big) for _ in range(200)]
            await asyncio.gather(*(storage.persist(t) for t in tasks))
            await asyncio.gather(*(storage.set_completed(t.id, 1.0, A.FULL) for t in tasks))
        before = (tmp_path / "space.db").stat().st_size + _wal(tmp_path)
        clock.advance(days=10)
        policy = RetentionPolicy.with_uniform_retention(1, delete_completed_tasks=True)
        assert (await storage.cleanup(policy)).tasks == 2000
        (pages,) = (await storage._rows(text("PRAGMA freelist_count")))[0]
        assert pages == 0
    finally:
        await storage.close()
    after = (tmp_path / "space.db").stat().st_size
    assert after < before / 3, (before, after)


def _wal(directory: Any) -> int:
    wal = directory / "space.db-wal"
    return wal.stat().st_size if wal.exists() else 0
