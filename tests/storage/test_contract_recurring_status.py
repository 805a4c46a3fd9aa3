"""Contract: an active recurring series waits for its next run (WaitingQueue, scheduled at
the next run) between runs; the run itself stays in the audits; the last run ends it."""

from __future__ import annotations

from datetime import timedelta

from evertask.storage import TaskStorage
from evertask.storage.models import QueuedTask, TaskQuery
from evertask_abstractions import AuditLevel, QueuedTaskStatus

from .conftest import Clock
from .helpers import recurring

Q = QueuedTaskStatus
A = AuditLevel


async def _series(storage: TaskStorage, clock: Clock) -> QueuedTask:
    """A persisted series whose first run is due now, taken and started by the engine."""
    task = recurring(clock.now, clock.now, status=Q.QUEUED, scheduled_execution_utc=clock.now)
    await storage.persist(task)
    await storage.set_in_progress(task.id, A.FULL)
    clock.advance(seconds=2)
    return task


async def _load(storage: TaskStorage, task: QueuedTask) -> QueuedTask:
    loaded = await storage.get(task.id)
    assert loaded is not None
    return loaded


async def test_a_successful_run_leaves_the_series_waiting_for_its_next_run(
    storage: TaskStorage, clock: Clock
) -> None:
    task = await _series(storage, clock)
    nxt = clock.now + timedelta(hours=1)
    await storage.complete_recurring_run(task.id, 12.0, nxt, A.FULL)

    loaded = await _load(storage, task)
    assert loaded.status is Q.WAITING_QUEUE
    assert (loaded.scheduled_execution_utc, loaded.next_run_utc) == (nxt, nxt)
    assert (loaded.last_execution_utc, loaded.execution_time_ms) == (clock.now, 12.0)
    assert (loaded.current_run_count, loaded.exception) == (1, None)
    # the run is recorded as it ended
    statuses = [a.new_status for a in await storage.get_status_audits(task.id)]
    assert statuses == [Q.QUEUED, Q.IN_PROGRESS, Q.COMPLETED]
    runs = await storage.get_runs_audits(task.id)
    assert [(r.status, r.exception, r.execution_time_ms) for r in runs] == [
        (Q.COMPLETED, None, 12.0)
    ]
    # still an active series: recovery resumes it
    assert [t.id for t in await storage.retrieve_pending(None, None, 10)] == [task.id]


async def test_a_failed_run_leaves_the_series_waiting_and_keeps_its_error(
    storage: TaskStorage, clock: Clock
) -> None:
    task = await _series(storage, clock)
    nxt = clock.now + timedelta(hours=1)
    # the engine writes the failure first, then counts the run
    await storage.set_status(task.id, Q.FAILED, "boom", A.FULL, 7.0)
    await storage.update_current_run(task.id, 7.0, nxt, A.FULL)

    loaded = await _load(storage, task)
    assert loaded.status is Q.WAITING_QUEUE
    assert (loaded.scheduled_execution_utc, loaded.next_run_utc) == (nxt, nxt)
    assert (loaded.exception, loaded.last_execution_utc) == ("boom", clock.now)
    assert (loaded.current_run_count, loaded.execution_time_ms) == (1, 7.0)
    audits = await storage.get_status_audits(task.id)
    assert [(a.new_status, a.exception) for a in audits][-1] == (Q.FAILED, "boom")
    runs = await storage.get_runs_audits(task.id)
    assert [(r.status, r.exception) for r in runs] == [(Q.FAILED, "boom")]

    # the next run succeeds: the error is cleared, the series waits again
    clock.advance(hours=1)
    later = clock.now + timedelta(hours=1)
    await storage.set_in_progress(task.id, A.FULL)
    await storage.complete_recurring_run(task.id, 3.0, later, A.FULL)
    loaded = await _load(storage, task)
    assert (loaded.status, loaded.exception) == (Q.WAITING_QUEUE, None)
    assert (loaded.scheduled_execution_utc, loaded.current_run_count) == (later, 2)


async def test_the_last_run_ends_the_series(storage: TaskStorage, clock: Clock) -> None:
    done = await _series(storage, clock)
    failed = await _series(storage, clock)
    await storage.complete_recurring_run(done.id, 1.0, None, A.FULL)
    await storage.set_status(failed.id, Q.FAILED, "boom", A.FULL, 1.0)
    await storage.update_current_run(failed.id, 1.0, None, A.FULL)

    ended = await _load(storage, done)
    assert (ended.status, ended.next_run_utc, ended.current_run_count) == (Q.COMPLETED, None, 1)
    assert ended.scheduled_execution_utc == done.scheduled_execution_utc  # the last occurrence
    ended_failed = await _load(storage, failed)
    assert (ended_failed.status, ended_failed.exception) == (Q.FAILED, "boom")
    assert ended_failed.next_run_utc is None
    assert await storage.retrieve_pending(None, None, 10) == []


async def test_monitoring_counts_and_finds_a_waiting_series(
    storage: TaskStorage, clock: Clock
) -> None:
    ok = await _series(storage, clock)
    failing = await _series(storage, clock)
    nxt = clock.now + timedelta(minutes=5)
    await storage.complete_recurring_run(ok.id, 1.0, nxt, A.FULL)
    await storage.set_status(failing.id, Q.FAILED, "boom", A.FULL, 1.0)
    await storage.update_current_run(failing.id, 1.0, nxt, A.FULL)

    assert await storage.count_by_status() == {Q.WAITING_QUEUE: 2}
    assert await storage.count_by_queue_and_status() == {("recurring", Q.WAITING_QUEUE): 2}
    waiting = await storage.query_tasks(TaskQuery(statuses=frozenset({Q.WAITING_QUEUE})))
    assert {t.id for t in waiting.items} == {ok.id, failing.id}
    assert waiting.total_count == 2
    finished = await storage.query_tasks(TaskQuery(statuses=frozenset({Q.COMPLETED, Q.FAILED})))
    assert (finished.items, finished.total_count) == ([], 0)
