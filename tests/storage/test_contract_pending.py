"""Contract: recovery pages (keyset on CreatedAtUtc, Id)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from evertask.storage import QueuedTask, TaskStorage
from evertask_abstractions import QueuedTaskStatus

from .conftest import Clock
from .helpers import recurring, row

Q = QueuedTaskStatus


async def _all_pages(storage: TaskStorage, take: int) -> list[QueuedTask]:
    out: list[QueuedTask] = []
    last_created, last_id = None, None
    while True:
        page = await storage.retrieve_pending(last_created, last_id, take)
        assert len(page) <= take
        out.extend(page)
        if len(page) < take:
            return out
        last_created, last_id = page[-1].created_at_utc, page[-1].id


async def test_pages_walk_identical_timestamps_in_id_order(
    storage: TaskStorage, clock: Clock
) -> None:
    same = clock.now
    ids = sorted((uuid.uuid4() for _ in range(23)), key=lambda u: u.int)
    for task_id in reversed(ids):  # inserted out of order
        await storage.persist(row(same, task_id=task_id, status=Q.QUEUED))
    later = row(same + timedelta(microseconds=1), status=Q.QUEUED)
    earlier = row(same - timedelta(microseconds=1), status=Q.QUEUED)
    await storage.persist(later)
    await storage.persist(earlier)
    for take in (1, 5, 10, 25, 100):
        pages = await _all_pages(storage, take)
        assert [t.id for t in pages] == [earlier.id, *ids, later.id], take


async def test_only_recoverable_rows_are_pending(storage: TaskStorage, clock: Clock) -> None:
    now = clock.now
    pending = [
        row(now, status=Q.WAITING_QUEUE),
        row(now + timedelta(seconds=1), status=Q.QUEUED),
        row(now + timedelta(seconds=2), status=Q.IN_PROGRESS),
        row(now + timedelta(seconds=3), status=Q.PENDING),
        row(now + timedelta(seconds=4), status=Q.SERVICE_STOPPED),
        recurring(now + timedelta(seconds=5), now + timedelta(hours=1), status=Q.COMPLETED),
        recurring(now + timedelta(seconds=6), now + timedelta(hours=1), status=Q.FAILED),
        recurring(now + timedelta(seconds=7), now, run_until=now, max_runs=2, current_run_count=1),
    ]
    finished = [
        row(now, status=Q.COMPLETED),
        row(now, status=Q.FAILED),
        row(now, status=Q.CANCELLED),
        recurring(now, now, status=Q.COMPLETED, next_run_utc=None),
        recurring(now, now, status=Q.CANCELLED),
        recurring(now, now, run_until=now - timedelta(seconds=1)),
        recurring(now, now, max_runs=2, current_run_count=2),
    ]
    for task in [*finished, *pending]:
        await storage.persist(task)
    assert [t.id for t in await _all_pages(storage, 3)] == [t.id for t in pending]
    clock.advance(seconds=1)  # the run_until boundary row expires
    assert [t.id for t in await _all_pages(storage, 100)] == [t.id for t in pending[:-1]]


async def test_pending_rows_are_complete(storage: TaskStorage, clock: Clock) -> None:
    task = recurring(
        clock.now,
        clock.now + timedelta(minutes=5),
        status=Q.QUEUED,
        task_key="k",
        trace_context="t",
        max_runs=4,
        current_run_count=1,
    )
    await storage.persist(task)
    assert await storage.retrieve_pending(None, None, 10) == [task]
    assert await storage.retrieve_pending(task.created_at_utc, task.id, 10) == []
