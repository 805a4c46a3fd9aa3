"""Contract: server-side task lists (filters, sorts, pages) and counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from evertask.storage import QueuedTask, SortField, TaskQuery, TaskStorage
from evertask_abstractions import QueuedTaskStatus

from .conftest import Clock
from .helpers import recurring, row

Q = QueuedTaskStatus

_SORT_ATTR = {
    SortField.CREATED_AT: "created_at_utc",
    SortField.LAST_EXECUTION: "last_execution_utc",
    SortField.SCHEDULED_EXECUTION: "scheduled_execution_utc",
    SortField.STATUS: "status",
    SortField.TYPE: "type",
    SortField.QUEUE_NAME: "queue_name",
}


def _dataset(now: datetime) -> list[QueuedTask]:
    t = now
    return [
        row(
            t,
            type="app.tasks.SendEmail",
            handler="app.handlers.SendEmailHandler",
            status=Q.COMPLETED,
            last_execution_utc=t + timedelta(seconds=5),
            task_key="mail-1",
        ),
        row(
            t,
            type="app.tasks.SendEmail",
            handler="app.handlers.SendEmailHandler",
            status=Q.FAILED,
            exception="smtp down",
            last_execution_utc=t + timedelta(seconds=9),
        ),
        row(
            t + timedelta(seconds=1),
            type="app.tasks.BuildReport",
            handler="app.handlers.ReportHandler",
            status=Q.QUEUED,
            queue_name="reports",
        ),
        row(
            t + timedelta(seconds=2),
            type="app.tasks.BuildReport",
            handler="app.handlers.ReportHandler",
            status=Q.WAITING_QUEUE,
            queue_name="reports",
            scheduled_execution_utc=t + timedelta(hours=1),
        ),
        recurring(
            t + timedelta(seconds=3),
            t + timedelta(minutes=1),
            type="ops.Cleanup_100%",
            handler="ops.CleanupHandler",
            status=Q.COMPLETED,
            task_key="daily-cleanup",
            last_execution_utc=t + timedelta(seconds=4),
            scheduled_execution_utc=t + timedelta(minutes=1),
        ),
        recurring(
            t + timedelta(seconds=4),
            t + timedelta(minutes=2),
            type="ops.Rotate",
            handler="ops.RotateHandler",
            status=Q.IN_PROGRESS,
        ),
        row(
            t + timedelta(seconds=5),
            type="app.tasks.Notify",
            handler="app.handlers.Notify",
            status=Q.CANCELLED,
            queue_name="critical",
        ),
        row(
            t + timedelta(seconds=5),
            type="app.tasks.Notify",
            handler="app.handlers.Notify",
            status=Q.SERVICE_STOPPED,
            queue_name="critical",
            last_execution_utc=t + timedelta(seconds=6),
        ),
        row(
            t + timedelta(seconds=6),
            type="APP.TASKS.SHOUT",
            handler="app.handlers.Shout",
            status=Q.QUEUED,
            task_key="Shout-Key",
        ),
        row(
            t + timedelta(seconds=7),
            type="app.tasks.SendEmail",
            handler="app.handlers.SendEmailHandler",
            status=Q.QUEUED,
            scheduled_execution_utc=t + timedelta(seconds=30),
        ),
    ]


def _matches(task: QueuedTask, q: TaskQuery) -> bool:
    if q.statuses is not None and task.status not in q.statuses:
        return False
    if q.task_type_contains and q.task_type_contains.lower() not in task.type.lower():
        return False
    if q.queue_name is not None and task.queue_name != q.queue_name:
        return False
    if q.is_recurring is not None and task.is_recurring != q.is_recurring:
        return False
    if q.created_after is not None and task.created_at_utc < q.created_after:
        return False
    if q.created_before is not None and task.created_at_utc >= q.created_before:
        return False
    if q.search:
        needle = q.search.lower()
        return any(needle in h.lower() for h in (task.type, task.handler, task.task_key or ""))
    return True


def _expected(rows: list[QueuedTask], q: TaskQuery) -> list[QueuedTask]:
    attr = _SORT_ATTR[q.sort_by]

    def value(task: QueuedTask) -> Any:
        v = getattr(task, attr)
        return v.value if isinstance(v, QueuedTaskStatus) else v

    matched = [t for t in rows if _matches(t, q)]
    present = sorted(
        (t for t in matched if value(t) is not None),
        key=lambda t: (value(t), t.created_at_utc, t.id.int),
        reverse=q.descending,
    )
    absent = sorted(
        (t for t in matched if value(t) is None),
        key=lambda t: (t.created_at_utc, t.id.int),
        reverse=q.descending,
    )
    return present + absent


@pytest.fixture
async def seeded(storage: TaskStorage, clock: Clock) -> tuple[TaskStorage, list[QueuedTask]]:
    rows = _dataset(clock.now)
    for task in rows:
        await storage.persist(task)
    return storage, rows


def _filters(now: datetime) -> list[Callable[[], TaskQuery]]:
    return [
        lambda: TaskQuery(page_size=100),
        lambda: TaskQuery(statuses=frozenset({Q.QUEUED}), page_size=100),
        lambda: TaskQuery(statuses=frozenset({Q.COMPLETED, Q.FAILED}), page_size=100),
        lambda: TaskQuery(statuses=frozenset(), page_size=100),
        lambda: TaskQuery(task_type_contains="sendemail", page_size=100),
        lambda: TaskQuery(task_type_contains="TASKS.S", page_size=100),
        lambda: TaskQuery(task_type_contains="100%", page_size=100),
        lambda: TaskQuery(task_type_contains="_", page_size=100),
        lambda: TaskQuery(queue_name="reports", page_size=100),
        lambda: TaskQuery(queue_name="nowhere", page_size=100),
        lambda: TaskQuery(is_recurring=True, page_size=100),
        lambda: TaskQuery(is_recurring=False, page_size=100),
        lambda: TaskQuery(created_after=now + timedelta(seconds=4), page_size=100),
        lambda: TaskQuery(created_before=now + timedelta(seconds=4), page_size=100),
        lambda: TaskQuery(
            created_after=now + timedelta(seconds=1),
            created_before=now + timedelta(seconds=5),
            page_size=100,
        ),
        lambda: TaskQuery(search="cleanup", page_size=100),
        lambda: TaskQuery(search="reporthandler", page_size=100),
        lambda: TaskQuery(search="shout-key", page_size=100),
        lambda: TaskQuery(
            search="app",
            statuses=frozenset({Q.QUEUED}),
            queue_name="default",
            is_recurring=False,
            page_size=100,
        ),
    ]


async def test_query_filters(seeded: tuple[TaskStorage, list[QueuedTask]], clock: Clock) -> None:
    storage, rows = seeded
    for make in _filters(clock.now):
        query = make()
        page = await storage.query_tasks(query)
        expected = _expected(rows, query)
        assert [t.id for t in page.items] == [t.id for t in expected], query
        assert page.total_count == len(expected), query
        assert page.items == expected, query  # full rows


@pytest.mark.parametrize("sort_by", list(SortField))
async def test_query_sorts_with_nulls_last(
    seeded: tuple[TaskStorage, list[QueuedTask]], sort_by: SortField
) -> None:
    storage, rows = seeded
    for descending in (False, True):
        query = TaskQuery(sort_by=sort_by, descending=descending, page_size=100)
        page = await storage.query_tasks(query)
        assert [t.id for t in page.items] == [t.id for t in _expected(rows, query)], query


@pytest.mark.parametrize("sort_by", [SortField.LAST_EXECUTION, SortField.TYPE])
async def test_query_pages_partition_the_result(
    seeded: tuple[TaskStorage, list[QueuedTask]], sort_by: SortField
) -> None:
    storage, rows = seeded
    full = _expected(rows, TaskQuery(sort_by=sort_by, page_size=100))
    for size in (1, 3, 4):
        collected = []
        page_number = 1
        while True:
            page = await storage.query_tasks(
                TaskQuery(sort_by=sort_by, page=page_number, page_size=size)
            )
            assert (page.page, page.page_size, page.total_count) == (page_number, size, len(rows))
            if not page.items:
                break
            assert len(page.items) <= size
            collected.extend(page.items)
            page_number += 1
        assert [t.id for t in collected] == [t.id for t in full]


async def test_query_page_edges(seeded: tuple[TaskStorage, list[QueuedTask]]) -> None:
    storage, rows = seeded
    first = await storage.query_tasks(TaskQuery(page=1, page_size=3))
    clamped = await storage.query_tasks(TaskQuery(page=0, page_size=3))
    assert [t.id for t in clamped.items] == [t.id for t in first.items]
    assert clamped.page == 1
    beyond = await storage.query_tasks(TaskQuery(page=50, page_size=3))
    assert beyond.items == [] and beyond.total_count == len(rows)
    tiny = await storage.query_tasks(TaskQuery(page=2, page_size=0))
    assert tiny.page_size == 1 and len(tiny.items) == 1
    last = await storage.query_tasks(TaskQuery(page=4, page_size=3))
    assert len(last.items) == 1
    default = await storage.query_tasks(TaskQuery())
    assert (default.page, default.page_size, len(default.items)) == (1, 20, len(rows))


async def test_counts(seeded: tuple[TaskStorage, list[QueuedTask]], clock: Clock) -> None:
    storage, rows = seeded
    by_status: dict[QueuedTaskStatus, int] = {}
    by_queue: dict[tuple[str, QueuedTaskStatus], int] = {}
    for t in rows:
        by_status[t.status] = by_status.get(t.status, 0) + 1
        by_queue[(t.queue_name, t.status)] = by_queue.get((t.queue_name, t.status), 0) + 1
    assert await storage.count_by_status() == by_status
    assert await storage.count_by_queue_and_status() == by_queue
    since = clock.now + timedelta(seconds=5)
    recent = [t for t in rows if t.created_at_utc >= since]
    assert await storage.count_by_status(since) == {
        s: sum(1 for t in recent if t.status is s) for s in {t.status for t in recent}
    }
    assert await storage.count_by_queue_and_status(since) == {
        k: sum(1 for t in recent if (t.queue_name, t.status) == k)
        for k in {(t.queue_name, t.status) for t in recent}
    }
    assert await storage.count_by_status(clock.now + timedelta(days=1)) == {}
