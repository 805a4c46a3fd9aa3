"""Contract: persist, lookups, task keys, update_task, remove (every backend)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from evertask.ids import uuid7
from evertask.storage import TaskExecutionLog, TaskStorage
from evertask_abstractions import AuditLevel, QueuedTaskStatus, TaskKeyConflictError

from .conftest import Clock
from .helpers import recurring, row

Q = QueuedTaskStatus


async def test_persist_and_get_round_trip_every_field(storage: TaskStorage, clock: Clock) -> None:
    now = clock.now
    original = recurring(
        now,
        now + timedelta(minutes=5),
        status=Q.QUEUED,
        queue_name="critical",
        audit_level=AuditLevel.MINIMAL,
        scheduled_execution_utc=now + timedelta(minutes=5),
        last_execution_utc=now - timedelta(days=1),
        execution_time_ms=12.5,
        exception="boom",
        current_run_count=3,
        max_runs=10,
        run_until=now + timedelta(days=30),
        task_key="nightly",
        recovery_dispatch_failure_count=2,
        trace_context="00-abc-def-01",
        retried_from=uuid7(),
        request='{"text": "ciao è €"}',
    )
    await storage.persist(original)
    loaded = await storage.get(original.id)
    assert loaded == original
    assert loaded is not original
    assert loaded.created_at_utc.tzinfo is not None
    assert loaded.created_at_utc.utcoffset() == timedelta(0)


async def test_datetimes_keep_their_instant(storage: TaskStorage) -> None:
    rome = timezone(timedelta(hours=2))
    created = datetime(2026, 6, 1, 14, 30, 15, 123456, tzinfo=rome)
    task = row(created)
    await storage.persist(task)
    loaded = await storage.get(task.id)
    assert loaded is not None
    assert loaded.created_at_utc == created
    assert loaded.created_at_utc.tzinfo is not None


async def test_sql_storages_return_aware_utc(sql_storage: TaskStorage) -> None:
    created = datetime(2026, 6, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    task = row(created, run_until=created + timedelta(days=1))
    await sql_storage.persist(task)
    loaded = await sql_storage.get(task.id)
    assert loaded is not None
    for value in (loaded.created_at_utc, loaded.run_until):
        assert value is not None and value.utcoffset() == timedelta(0)
    assert loaded.created_at_utc.hour == 12
    with pytest.raises(ValueError, match="Naive datetime"):
        await sql_storage.persist(row(datetime(2026, 1, 1)))


async def test_naive_times_are_refused_before_anything_is_stored(storage: TaskStorage) -> None:
    task = row(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="Naive datetime"):
        await storage.persist(task)
    assert await storage.get(task.id) is None


async def test_get_missing_returns_none(storage: TaskStorage) -> None:
    assert await storage.get(uuid7()) is None
    assert await storage.get_by_task_key("nope") is None


async def test_get_by_task_key_is_exact_and_case_sensitive(
    storage: TaskStorage, clock: Clock
) -> None:
    task = row(clock.now, task_key="Daily-Cleanup")
    await storage.persist(task)
    found = await storage.get_by_task_key("Daily-Cleanup")
    assert found is not None and found.id == task.id
    assert await storage.get_by_task_key("daily-cleanup") is None
    assert await storage.get_by_task_key("Daily") is None


async def test_persist_duplicate_key_raises_conflict(storage: TaskStorage, clock: Clock) -> None:
    await storage.persist(row(clock.now, task_key="k"))
    with pytest.raises(TaskKeyConflictError) as caught:
        await storage.persist(row(clock.now, task_key="k"))
    assert caught.value.task_key == "k"


async def test_persist_duplicate_id_raises_value_error(storage: TaskStorage, clock: Clock) -> None:
    task = row(clock.now)
    await storage.persist(task)
    with pytest.raises(ValueError, match=str(task.id)):
        await storage.persist(row(clock.now, task_id=task.id))


async def test_rows_without_key_never_conflict(storage: TaskStorage, clock: Clock) -> None:
    await asyncio.gather(*(storage.persist(row(clock.now)) for _ in range(20)))
    counts = await storage.count_by_status()
    assert counts == {Q.WAITING_QUEUE: 20}


async def test_concurrent_persists_of_one_key_exactly_one_wins(
    storage: TaskStorage, clock: Clock
) -> None:
    rows = [row(clock.now, task_key="race") for _ in range(25)]
    others = [row(clock.now, task_key=f"other-{i}") for i in range(10)]
    results = await asyncio.gather(
        *(storage.persist(r) for r in [*rows, *others]), return_exceptions=True
    )
    outcomes = results[: len(rows)]
    winners = [r for r, outcome in zip(rows, outcomes, strict=True) if outcome is None]
    assert len(winners) == 1
    assert all(isinstance(o, TaskKeyConflictError) for o in outcomes if o is not None)
    assert all(o is None for o in results[len(rows) :])  # the rest of the batch committed
    stored = await storage.get_by_task_key("race")
    assert stored is not None and stored.id == winners[0].id


async def test_update_task_overwrites_definition_but_keeps_state(
    storage: TaskStorage, clock: Clock
) -> None:
    now = clock.now
    task = recurring(
        now,
        now + timedelta(minutes=1),
        status=Q.QUEUED,
        task_key="k",
        current_run_count=4,
        trace_context="trace",
        exception="old error",
    )
    await storage.persist(task)
    changed = recurring(
        now + timedelta(hours=1),  # created_at is not a definition column
        now + timedelta(minutes=10),
        task_id=task.id,
        status=Q.COMPLETED,  # ignored
        type="tests.Other",
        request='{"n": 2}',
        handler="tests.OtherHandler",
        queue_name="critical",
        audit_level=AuditLevel.NONE,
        scheduled_execution_utc=now + timedelta(minutes=10),
        recurring_task='{"every": "10m"}',
        recurring_info="every 10 minutes",
        max_runs=7,
        run_until=now + timedelta(days=2),
        task_key="k2",
        current_run_count=0,  # ignored
        trace_context="new trace",  # ignored
    )
    await storage.update_task(changed)
    loaded = await storage.get(task.id)
    assert loaded is not None
    assert (loaded.type, loaded.request, loaded.handler) == (
        "tests.Other",
        '{"n": 2}',
        "tests.OtherHandler",
    )
    assert loaded.queue_name == "critical"
    assert loaded.audit_level is AuditLevel.NONE
    assert loaded.scheduled_execution_utc == now + timedelta(minutes=10)
    assert loaded.next_run_utc == now + timedelta(minutes=10)
    assert (loaded.recurring_task, loaded.recurring_info) == (
        '{"every": "10m"}',
        "every 10 minutes",
    )
    assert (loaded.max_runs, loaded.run_until) == (7, now + timedelta(days=2))
    assert loaded.task_key == "k2"
    # kept
    assert loaded.status is Q.QUEUED
    assert loaded.current_run_count == 4
    assert loaded.created_at_utc == now
    assert loaded.trace_context == "trace"
    assert loaded.exception == "old error"
    assert await storage.get_by_task_key("k") is None
    assert (await storage.get_by_task_key("k2")) is not None


async def test_update_task_revive_only_revives_cancelled(
    storage: TaskStorage, clock: Clock
) -> None:
    now = clock.now
    cancelled = recurring(now, now, status=Q.CANCELLED, current_run_count=5, exception="x")
    queued = recurring(now, now, status=Q.QUEUED, current_run_count=5, exception="y")
    await storage.persist(cancelled)
    await storage.persist(queued)
    await storage.update_task(cancelled, revive=True)
    await storage.update_task(queued, revive=True)
    revived = await storage.get(cancelled.id)
    kept = await storage.get(queued.id)
    assert revived is not None and kept is not None
    assert (revived.status, revived.current_run_count, revived.exception) == (
        Q.WAITING_QUEUE,
        0,
        None,
    )
    assert (kept.status, kept.current_run_count, kept.exception) == (Q.QUEUED, 5, "y")


async def test_update_task_without_revive_keeps_cancelled(
    storage: TaskStorage, clock: Clock
) -> None:
    task = recurring(clock.now, clock.now, status=Q.CANCELLED, current_run_count=2)
    await storage.persist(task)
    await storage.update_task(task)
    loaded = await storage.get(task.id)
    assert loaded is not None and loaded.status is Q.CANCELLED and loaded.current_run_count == 2


async def test_update_task_missing_raises_key_error(storage: TaskStorage, clock: Clock) -> None:
    with pytest.raises(KeyError):
        await storage.update_task(row(clock.now))


async def test_update_task_to_a_taken_key_conflicts(storage: TaskStorage, clock: Clock) -> None:
    first = row(clock.now, task_key="a")
    second = row(clock.now, task_key="b")
    await storage.persist(first)
    await storage.persist(second)
    second = second.copy()  # a row handed to persist() belongs to the storage
    second.task_key = "a"
    with pytest.raises(TaskKeyConflictError):
        await storage.update_task(second)
    loaded = await storage.get(second.id)
    assert loaded is not None and loaded.task_key == "b"


async def test_remove_cascades_audits_and_logs_and_frees_key(
    storage: TaskStorage, clock: Clock
) -> None:
    task = recurring(clock.now, clock.now, status=Q.QUEUED, task_key="k")
    other = row(clock.now, status=Q.QUEUED)
    await storage.persist(task)
    await storage.persist(other)
    await storage.set_in_progress(task.id, AuditLevel.FULL)
    await storage.complete_recurring_run(task.id, 1.0, clock.now, AuditLevel.FULL)
    log = TaskExecutionLog(
        id=uuid7(),
        task_id=task.id,
        timestamp_utc=clock.now,
        level="Information",
        message="hello",
        sequence_number=0,
    )
    await storage.save_execution_logs(task.id, [log])
    await storage.save_execution_logs(
        other.id,
        [
            TaskExecutionLog(
                id=uuid7(),
                task_id=other.id,
                timestamp_utc=clock.now,
                level="Information",
                message="keep",
                sequence_number=0,
            )
        ],
    )
    assert await storage.get_status_audits(task.id)
    assert await storage.get_runs_audits(task.id)

    await storage.remove(task.id)
    assert await storage.get(task.id) is None
    assert await storage.get_status_audits(task.id) == []
    assert await storage.get_runs_audits(task.id) == []
    assert await storage.get_execution_logs(task.id) == []
    assert await storage.count_execution_logs(task.id) == 0
    assert await storage.count_execution_logs(other.id) == 1
    assert len(await storage.get_status_audits(other.id)) == 1
    await storage.persist(row(clock.now, task_key="k"))  # the key is free again


async def test_remove_missing_is_a_no_op(storage: TaskStorage) -> None:
    await storage.remove(uuid7())


async def test_paused_queues(storage: TaskStorage) -> None:
    assert await storage.get_paused_queues() == set()
    await storage.set_queue_paused("critical", True)
    await storage.set_queue_paused("critical", True)
    await storage.set_queue_paused("reports", True)
    assert await storage.get_paused_queues() == {"critical", "reports"}
    await storage.set_queue_paused("critical", False)
    await storage.set_queue_paused("unknown", False)
    assert await storage.get_paused_queues() == {"reports"}
