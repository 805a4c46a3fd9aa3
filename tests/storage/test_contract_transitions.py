"""Contract: status transitions, audit levels, compare-and-set, recurring accounting."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from evertask.ids import uuid7
from evertask.storage import TaskStorage
from evertask.storage.models import wants_runs_audit, wants_status_audit
from evertask_abstractions import AuditLevel, QueuedTaskStatus

from .conftest import Clock
from .helpers import recurring, row

Q = QueuedTaskStatus
A = AuditLevel
LEVELS = list(AuditLevel)


async def test_lifecycle_stamps_last_execution_only_when_finishing(
    storage: TaskStorage, clock: Clock
) -> None:
    task = row(clock.now, status=Q.QUEUED)
    await storage.persist(task)
    clock.advance(seconds=1)
    await storage.set_in_progress(task.id, A.FULL)
    loaded = await storage.get(task.id)
    assert loaded is not None and loaded.status is Q.IN_PROGRESS
    assert loaded.last_execution_utc is None
    clock.advance(seconds=1)
    await storage.set_completed(task.id, 42.5, A.FULL)
    loaded = await storage.get(task.id)
    assert loaded is not None
    assert (loaded.status, loaded.execution_time_ms) == (Q.COMPLETED, 42.5)
    assert loaded.last_execution_utc == clock.now
    finished_at = clock.now
    clock.advance(seconds=1)
    await storage.set_queued(task.id, A.FULL)  # not a finishing status: keeps the stamp
    loaded = await storage.get(task.id)
    assert loaded is not None and loaded.last_execution_utc == finished_at


@pytest.mark.parametrize("status", [Q.COMPLETED, Q.FAILED, Q.SERVICE_STOPPED])
async def test_set_status_stamps_finishing_statuses(
    storage: TaskStorage, clock: Clock, status: QueuedTaskStatus
) -> None:
    task = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(task)
    clock.advance(minutes=1)
    await storage.set_status(task.id, status, "err", A.NONE, 7.0)
    loaded = await storage.get(task.id)
    assert loaded is not None
    assert (loaded.status, loaded.exception, loaded.execution_time_ms) == (status, "err", 7.0)
    assert loaded.last_execution_utc == clock.now


async def test_set_status_exception_none_clears_and_ms_none_keeps(
    storage: TaskStorage, clock: Clock
) -> None:
    task = row(clock.now, status=Q.FAILED, exception="old", execution_time_ms=3.0)
    await storage.persist(task)
    await storage.set_status(task.id, Q.QUEUED, None, A.NONE)
    loaded = await storage.get(task.id)
    assert loaded is not None
    assert (loaded.status, loaded.exception, loaded.execution_time_ms) == (Q.QUEUED, None, 3.0)
    assert loaded.last_execution_utc is None


async def test_cancellations(storage: TaskStorage, clock: Clock) -> None:
    a = row(clock.now, status=Q.QUEUED)
    b = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(a)
    await storage.persist(b)
    await storage.set_cancelled_by_user(a.id, A.FULL)
    await storage.set_cancelled_by_service(b.id, "host stopping", A.FULL)
    la, lb = await storage.get(a.id), await storage.get(b.id)
    assert la is not None and lb is not None
    assert (la.status, la.exception, la.last_execution_utc) == (Q.CANCELLED, None, None)
    assert (lb.status, lb.exception, lb.last_execution_utc) == (
        Q.SERVICE_STOPPED,
        "host stopping",
        clock.now,
    )


async def test_transitions_of_missing_rows_are_no_ops(storage: TaskStorage) -> None:
    missing = uuid7()
    await storage.set_queued(missing, A.FULL)
    await storage.set_in_progress(missing, A.FULL)
    await storage.set_completed(missing, 1.0, A.FULL)
    await storage.set_status(missing, Q.FAILED, "x", A.FULL)
    await storage.set_cancelled_by_user(missing, A.FULL)
    await storage.set_cancelled_by_service(missing, None, A.FULL)
    await storage.set_recurring_task_poisoned(missing, "bad", A.FULL)
    assert await storage.get_status_audits(missing) == []
    assert await storage.get_current_run_count(missing) == 0


# -- audit policy ---------------------------------------------------------------------------
_SCRIPT: list[tuple[QueuedTaskStatus, str | None]] = [
    (Q.QUEUED, None),
    (Q.IN_PROGRESS, None),
    (Q.QUEUED, "retrying after a transient error"),
    (Q.FAILED, "boom"),
    (Q.SERVICE_STOPPED, "stopped"),
    (Q.CANCELLED, None),
    (Q.COMPLETED, None),
]


@pytest.mark.parametrize("level", LEVELS)
async def test_status_audits_follow_the_audit_level(
    storage: TaskStorage, clock: Clock, level: AuditLevel
) -> None:
    task = row(clock.now, status=Q.QUEUED, audit_level=level)
    await storage.persist(task)
    expected: list[tuple[QueuedTaskStatus, str | None, datetime]] = []
    if wants_status_audit(level, Q.QUEUED, None):
        expected.append((Q.QUEUED, None, clock.now))
    for status, exception in _SCRIPT:
        clock.advance(seconds=1)
        await storage.set_status(task.id, status, exception, level)
        if wants_status_audit(level, status, exception):
            expected.append((status, exception, clock.now))
    audits = await storage.get_status_audits(task.id)
    assert [(a.new_status, a.exception, a.updated_at_utc) for a in audits] == expected
    assert all(a.task_id == task.id for a in audits)
    assert [a.id for a in audits] == sorted(a.id for a in audits)


@pytest.mark.parametrize("level", LEVELS)
async def test_persist_writes_an_audit_unless_waiting(
    storage: TaskStorage, clock: Clock, level: AuditLevel
) -> None:
    waiting = row(clock.now, audit_level=level)
    queued = row(clock.now, status=Q.QUEUED, audit_level=level)
    failed = row(clock.now, status=Q.FAILED, exception="x", audit_level=level)
    for task in (waiting, queued, failed):
        await storage.persist(task)
    assert await storage.get_status_audits(waiting.id) == []
    assert len(await storage.get_status_audits(queued.id)) == int(
        wants_status_audit(level, Q.QUEUED, None)
    )
    audits = await storage.get_status_audits(failed.id)
    assert [(a.new_status, a.exception) for a in audits] == (
        [(Q.FAILED, "x")] if wants_status_audit(level, Q.FAILED, "x") else []
    )


@pytest.mark.parametrize("level", LEVELS)
async def test_recurring_runs_follow_the_audit_level(
    storage: TaskStorage, clock: Clock, level: AuditLevel
) -> None:
    task = recurring(clock.now, clock.now, status=Q.QUEUED, audit_level=level)
    await storage.persist(task)
    first_next = clock.now + timedelta(minutes=1)
    await storage.set_in_progress(task.id, level)
    await storage.complete_recurring_run(task.id, 5.0, first_next, level)
    # a failed run: the status is written first, then the run is counted from the row
    await storage.set_in_progress(task.id, level)
    await storage.set_status(task.id, Q.FAILED, "boom", level, 6.0)
    second_next = clock.now + timedelta(minutes=2)
    await storage.update_current_run(task.id, 6.0, second_next, level)

    loaded = await storage.get(task.id)
    assert loaded is not None
    assert loaded.current_run_count == 2
    assert loaded.next_run_utc == second_next
    assert loaded.execution_time_ms == 6.0
    # the series waits for its next run; the failed run's error stays visible
    assert (loaded.status, loaded.exception) == (Q.WAITING_QUEUE, "boom")
    assert loaded.scheduled_execution_utc == second_next
    runs = await storage.get_runs_audits(task.id)
    expected: list[tuple[QueuedTaskStatus, str | None, float]] = []
    if wants_runs_audit(level, Q.COMPLETED, None):
        expected.append((Q.COMPLETED, None, 5.0))
    if wants_runs_audit(level, Q.FAILED, "boom"):
        expected.append((Q.FAILED, "boom", 6.0))
    assert [(r.status, r.exception, r.execution_time_ms) for r in runs] == expected
    assert all(r.executed_at == clock.now and r.task_id == task.id for r in runs)


async def test_complete_recurring_run_is_one_atomic_transition(
    storage: TaskStorage, clock: Clock
) -> None:
    task = recurring(clock.now, clock.now, status=Q.IN_PROGRESS, exception="earlier")
    await storage.persist(task)
    clock.advance(seconds=30)
    nxt = clock.now + timedelta(minutes=1)
    await storage.complete_recurring_run(task.id, 9.0, nxt, A.FULL)
    loaded = await storage.get(task.id)
    assert loaded is not None
    assert (loaded.status, loaded.exception, loaded.current_run_count) == (
        Q.WAITING_QUEUE,
        None,
        1,
    )
    assert (loaded.next_run_utc, loaded.scheduled_execution_utc) == (nxt, nxt)
    assert loaded.execution_time_ms == 9.0
    assert loaded.last_execution_utc == clock.now
    audits = await storage.get_status_audits(task.id)
    assert [a.new_status for a in audits] == [Q.IN_PROGRESS, Q.COMPLETED]  # persist, run
    assert await storage.get_current_run_count(task.id) == 1


async def test_run_counter_saturates(storage: TaskStorage, clock: Clock) -> None:
    task = recurring(clock.now, clock.now, current_run_count=2**31 - 1)
    await storage.persist(task)
    await storage.update_current_run(task.id, 1.0, clock.now, A.NONE)
    assert await storage.get_current_run_count(task.id) == 2**31 - 1


async def test_recurring_accounting_on_missing_rows_raises(storage: TaskStorage) -> None:
    missing = uuid7()
    with pytest.raises(KeyError):
        await storage.update_current_run(missing, 1.0, None, A.FULL)
    with pytest.raises(KeyError):
        await storage.complete_recurring_run(missing, 1.0, None, A.FULL)
    with pytest.raises(KeyError):
        await storage.set_recurring_series_completed(missing, 1.0, A.FULL)


async def test_series_completed_and_poisoned_end_the_series(
    storage: TaskStorage, clock: Clock
) -> None:
    done = recurring(clock.now, clock.now + timedelta(minutes=1), current_run_count=3)
    poisoned = recurring(clock.now, clock.now + timedelta(minutes=1))
    await storage.persist(done)
    await storage.persist(poisoned)
    await storage.set_recurring_series_completed(done.id, 2.0, A.FULL)
    await storage.set_recurring_task_poisoned(poisoned.id, "corrupt schedule", A.FULL)
    ld, lp = await storage.get(done.id), await storage.get(poisoned.id)
    assert ld is not None and lp is not None
    assert (ld.status, ld.next_run_utc, ld.current_run_count, ld.execution_time_ms) == (
        Q.COMPLETED,
        None,
        3,
        2.0,
    )
    assert (lp.status, lp.next_run_utc, lp.exception) == (Q.FAILED, None, "corrupt schedule")
    assert lp.last_execution_utc == clock.now
    assert await storage.get_runs_audits(done.id) == []
    assert not await storage.try_set_queued_if_recoverable(done.id, A.FULL)
    assert not await storage.try_set_queued_if_recoverable(poisoned.id, A.FULL)


# -- compare-and-set ------------------------------------------------------------------------
@pytest.mark.parametrize("status", [Q.COMPLETED, Q.CANCELLED, Q.FAILED])
async def test_cas_never_revives_a_finished_one_shot(
    storage: TaskStorage, clock: Clock, status: QueuedTaskStatus
) -> None:
    task = row(clock.now, status=status, exception="x" if status is Q.FAILED else None)
    await storage.persist(task)
    assert await storage.try_set_queued_if_recoverable(task.id, A.FULL) is False
    loaded = await storage.get(task.id)
    assert loaded is not None and loaded.status is status


@pytest.mark.parametrize(
    "status", [Q.WAITING_QUEUE, Q.QUEUED, Q.IN_PROGRESS, Q.PENDING, Q.SERVICE_STOPPED]
)
async def test_cas_queues_recoverable_rows(
    storage: TaskStorage, clock: Clock, status: QueuedTaskStatus
) -> None:
    task = row(clock.now, status=status, exception="was interrupted")
    await storage.persist(task)
    assert await storage.try_set_queued_if_recoverable(task.id, A.FULL) is True
    loaded = await storage.get(task.id)
    assert loaded is not None and (loaded.status, loaded.exception) == (Q.QUEUED, None)
    assert (await storage.get_status_audits(task.id))[-1].new_status is Q.QUEUED


@pytest.mark.parametrize("status", [Q.COMPLETED, Q.FAILED])
async def test_cas_queues_a_recurring_row_with_a_next_run(
    storage: TaskStorage, clock: Clock, status: QueuedTaskStatus
) -> None:
    task = recurring(clock.now, clock.now + timedelta(minutes=1), status=status, audit_level=A.NONE)
    await storage.persist(task)
    assert await storage.try_set_queued_if_recoverable(task.id, A.NONE) is True
    assert await storage.get_status_audits(task.id) == []
    loaded = await storage.get(task.id)
    assert loaded is not None and loaded.status is Q.QUEUED


async def test_cas_refuses_a_recurring_row_without_next_run(
    storage: TaskStorage, clock: Clock
) -> None:
    task = recurring(clock.now, clock.now, status=Q.COMPLETED, next_run_utc=None)
    await storage.persist(task)
    assert await storage.try_set_queued_if_recoverable(task.id, A.FULL) is False


async def test_cas_refuses_past_run_until_and_reached_max_runs(
    storage: TaskStorage, clock: Clock
) -> None:
    expired = recurring(
        clock.now, clock.now, status=Q.WAITING_QUEUE, run_until=clock.now - timedelta(seconds=1)
    )
    exhausted = recurring(
        clock.now, clock.now, status=Q.WAITING_QUEUE, max_runs=3, current_run_count=3
    )
    boundary = recurring(
        clock.now,
        clock.now,
        status=Q.WAITING_QUEUE,
        run_until=clock.now,
        max_runs=3,
        current_run_count=2,
    )
    for task in (expired, exhausted, boundary):
        await storage.persist(task)
    assert await storage.try_set_queued_if_recoverable(expired.id, A.FULL) is False
    assert await storage.try_set_queued_if_recoverable(exhausted.id, A.FULL) is False
    assert await storage.try_set_queued_if_recoverable(boundary.id, A.FULL) is True
    assert await storage.try_set_queued_if_recoverable(uuid7(), A.FULL) is False


async def test_recovery_failure_counter(storage: TaskStorage, clock: Clock) -> None:
    task = row(clock.now)
    await storage.persist(task)
    assert await storage.increment_recovery_failure(task.id) == 1
    assert await storage.increment_recovery_failure(task.id) == 2
    loaded = await storage.get(task.id)
    assert loaded is not None and loaded.recovery_dispatch_failure_count == 2
    await storage.clear_recovery_failure(task.id)
    loaded = await storage.get(task.id)
    assert loaded is not None and loaded.recovery_dispatch_failure_count == 0
    assert await storage.increment_recovery_failure(uuid7()) == 0
    await storage.clear_recovery_failure(uuid7())
