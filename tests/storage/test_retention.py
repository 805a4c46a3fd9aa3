"""Retention cleanup (SQL storages) and its policy and component."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from evertask.ids import uuid7
from evertask.storage import TaskExecutionLog
from evertask_abstractions import AuditLevel, ConfigurationError, QueuedTaskStatus
from evertask_storage_efcore_like import RetentionComponent, RetentionPolicy, SqlTaskStorage

from .conftest import Clock
from .helpers import recurring, row

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
