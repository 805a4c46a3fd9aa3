"""Dashboard figures computed through the storage protocol with bounded queries only.

Every figure is a handful of counts (``query_tasks`` with ``page_size=1`` returns a
count), a grouped count (``count_by_status``, ``count_by_queue_and_status``) or a small
page of rows; nothing here ever reads a whole table. The SQL storages answer counts of
finished tasks from their hourly counts, so they cost the same with a long history.
Where a storage offers a server-side method for a figure (see :class:`TimeBucketQueries`,
:class:`ExecutionTimeQueries`, :class:`TypeCountQueries`), it is used instead of the
portable fallback.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

from evertask.storage.models import QueuedTask, SortField, TaskQuery
from evertask.storage.protocol import TaskStorage
from evertask_abstractions import QueuedTaskStatus

from .schemas import (
    CountsResponse,
    ExecutionTimePoint,
    OverviewResponse,
    QueueMetricsDto,
    QueueSummaryDto,
    Range,
    RecentActivityDto,
    SuccessRatePeriod,
    SuccessRateTrendResponse,
    TaskTypeCount,
    TaskTypesResponse,
    TimeBucketDto,
    short_type_name,
)

__all__ = [
    "FINISHED_STATUSES",
    "PENDING_STATUSES",
    "BucketCounts",
    "ExecutionTimeQueries",
    "MonitorQueries",
    "TaskCountQueries",
    "TimeBucketQueries",
    "TypeCountQueries",
    "success_rate",
]

S = QueuedTaskStatus
PENDING_STATUSES = frozenset({S.WAITING_QUEUE, S.QUEUED, S.PENDING})
FINISHED_STATUSES = frozenset({S.COMPLETED, S.FAILED})

SAMPLE_ROWS = 200
"""Completed rows averaged for an execution time when the storage has no AVG query."""
TYPE_SAMPLE_ROWS = 1000
"""Newest rows counted per type when the storage has no GROUP BY type query."""
QUEUE_TIME_WINDOW = timedelta(hours=24)
"""Window of the per-queue average execution time fallback."""
QUEUE_NAMES_TTL = 60.0
"""Seconds the queue names found in storage are reused (standalone mode only)."""

T = TypeVar("T")


@runtime_checkable
class TimeBucketQueries(Protocol):
    """Optional storage method: task counts per status in consecutive time buckets."""

    async def count_by_time_bucket(
        self, start: datetime, width: timedelta, buckets: int
    ) -> list[dict[QueuedTaskStatus, int]]:
        """For each bucket ``[start + i*width, start + (i+1)*width)`` (by creation time):
        tasks per status."""
        ...


@runtime_checkable
class TaskCountQueries(Protocol):
    """Optional storage method: the number of tasks matching a query, without a page."""

    async def count_tasks(self, query: TaskQuery) -> int:
        """How many tasks match ``query`` (its page and sort ignored)."""
        ...


@runtime_checkable
class ExecutionTimeQueries(Protocol):
    """Optional storage method: server-side average execution time."""

    async def average_execution_time(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        queue_name: str | None = None,
    ) -> tuple[int, float | None]:
        """``(count, AVG(execution_time_ms))`` of the Completed tasks matching the filters."""
        ...


@runtime_checkable
class TypeCountQueries(Protocol):
    """Optional storage method: tasks per type."""

    async def count_by_type(
        self, created_since: datetime | None = None, limit: int = 50
    ) -> dict[str, int]:
        """The ``limit`` most frequent task types (created since a time) with their counts."""
        ...


@dataclass(frozen=True, slots=True)
class BucketCounts:
    """Completed, failed and all tasks created in one bucket."""

    start: datetime
    completed: int
    failed: int
    total: int


def success_rate(completed: int, failed: int) -> float | None:
    """Completed / (Completed + Failed) in percent, 2 decimals (``None`` when nothing finished)."""
    finished = completed + failed
    return round(completed * 100.0 / finished, 2) if finished else None


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


_ACTIVITY = {
    S.WAITING_QUEUE: "Scheduled; waiting for its time",
    S.QUEUED: "Queued for execution",
    S.PENDING: "Pending",
    S.IN_PROGRESS: "Running",
    S.COMPLETED: "Completed",
    S.FAILED: "Failed",
    S.CANCELLED: "Cancelled",
    S.SERVICE_STOPPED: "Interrupted by a shutdown; resumes at the next start",
}


class MonitorQueries:
    """The figures behind the dashboard's overview, queue and statistics pages."""

    def __init__(
        self,
        storage: TaskStorage,
        now: Callable[[], datetime],
        *,
        concurrency: int = 4,
    ) -> None:
        self.storage = storage
        self.now = now
        self._limit = asyncio.Semaphore(concurrency)
        self._queue_names: tuple[float, set[str]] | None = None

    # -- primitives ----------------------------------------------------------------------
    async def _bounded(self, work: Awaitable[T]) -> T:
        async with self._limit:
            return await work

    async def _all(self, works: Iterable[Awaitable[T]]) -> list[T]:
        return list(await asyncio.gather(*(self._bounded(w) for w in works)))

    async def count(self, **filters: Any) -> int:
        """How many tasks match ``TaskQuery(**filters)`` (``count_tasks`` where the storage
        has it, else the total of a one-row page)."""
        query = TaskQuery(page=1, page_size=1, **filters)
        if isinstance(self.storage, TaskCountQueries):
            return await self.storage.count_tasks(query)
        return (await self.storage.query_tasks(query)).total_count

    async def _finished_sample(self, **filters: Any) -> tuple[int, float | None]:
        storage = self.storage
        if isinstance(storage, ExecutionTimeQueries):
            return await storage.average_execution_time(**filters)
        page = await storage.query_tasks(
            TaskQuery(
                statuses=frozenset({S.COMPLETED}),
                page=1,
                page_size=SAMPLE_ROWS,
                **filters,
            )
        )
        if not page.items:
            return 0, None
        times = [row.execution_time_ms for row in page.items]
        return page.total_count, round(sum(times) / len(times), 2)

    def range_start(self, span: Range) -> datetime | None:
        """Where a range begins: midnight UTC, the hour 7 or 30 days ago, or the beginning
        of time (whole hours: the SQL storages count them from their hourly counts
        without reading any task row)."""
        now = self.now()
        if span is Range.TODAY:
            return _midnight(now)
        if span is Range.WEEK:
            return _floor_hour(now - timedelta(days=7))
        if span is Range.MONTH:
            return _floor_hour(now - timedelta(days=30))
        return None

    async def buckets(
        self,
        start: datetime,
        width: timedelta,
        count: int,
        *,
        total: bool = True,
        open_ended: bool = False,
    ) -> list[BucketCounts]:
        """Completed/failed/all tasks created in each of ``count`` buckets from ``start``.

        Without a server-side bucket query, each bucket is counted by its own indexed
        COUNTs; with ``open_ended`` (the last bucket reaches now) it is instead the
        difference of ``count_by_status(created_since=edge)`` at consecutive edges: one
        GROUP BY per edge, cheaper for a short window such as the last 24 hours.
        """
        edges = [start + width * i for i in range(count + 1)]
        storage = self.storage
        if isinstance(storage, TimeBucketQueries):
            per_bucket = await storage.count_by_time_bucket(start, width, count)
            return [_bucket(edges[i], counts) for i, counts in enumerate(per_bucket)]
        if open_ended:
            since = await self._all(storage.count_by_status(edge) for edge in edges[:count])
            since.append({})
            return [
                _bucket(edges[i], {s: since[i].get(s, 0) - since[i + 1].get(s, 0) for s in S})
                for i in range(count)
            ]

        def counter(i: int, statuses: frozenset[QueuedTaskStatus] | None) -> Awaitable[int]:
            return self.count(
                statuses=statuses, created_after=edges[i], created_before=edges[i + 1]
            )

        works: list[Awaitable[int]] = []
        for i in range(count):
            works.append(counter(i, frozenset({S.COMPLETED})))
            works.append(counter(i, frozenset({S.FAILED})))
            if total:
                works.append(counter(i, None))
        values = await self._all(works)
        step = 3 if total else 2
        return [
            BucketCounts(
                edges[i],
                values[i * step],
                values[i * step + 1],
                values[i * step + 2] if total else values[i * step] + values[i * step + 1],
            )
            for i in range(count)
        ]

    # -- endpoints -----------------------------------------------------------------------
    async def counts(self) -> CountsResponse:
        """All, one-shot, recurring and failed tasks."""
        by_status, recurring = await asyncio.gather(
            self.storage.count_by_status(), self.count(is_recurring=True)
        )
        everything = sum(by_status.values())
        return CountsResponse(
            all=everything,
            standard=everything - recurring,
            recurring=recurring,
            failed=by_status.get(S.FAILED, 0),
        )

    async def overview(self, span: Range, queue_names: Sequence[str]) -> OverviewResponse:
        """KPIs and status distribution of a range, tasks per hour over the last 24 hours,
        and every queue at a glance (pending and running now, finished within the range)."""
        now = self.now()
        since = self.range_start(span)
        today = _midnight(now)
        storage = self.storage
        first_hour = _floor_hour(now) - timedelta(hours=23)
        in_range, today_counts, week_total, timing, hours, paused = await asyncio.gather(
            self._bounded(storage.count_by_status(since)),
            self._bounded(storage.count_by_status(today)) if since != today else _none(),
            self._bounded(self.count(created_after=self.range_start(Range.WEEK))),
            self._bounded(self._finished_sample(created_after=since)),
            self.buckets(first_hour, timedelta(hours=1), 24, open_ended=True),
            self._bounded(storage.get_paused_queues()),
        )
        today_counts = in_range if today_counts is None else today_counts
        completed = in_range.get(S.COMPLETED, 0)
        failed = in_range.get(S.FAILED, 0)
        return OverviewResponse(
            range=span,
            total_tasks_today=sum(today_counts.values()),
            total_tasks_week=week_total,
            total_tasks_in_range=sum(in_range.values()),
            success_rate=success_rate(completed, failed),
            failed_count=failed,
            avg_execution_time_ms=timing[1],
            status_distribution={s.value: in_range.get(s, 0) for s in S},
            tasks_over_time=[
                TimeBucketDto(
                    timestamp=b.start, completed=b.completed, failed=b.failed, total=b.total
                )
                for b in hours
            ],
            queue_summaries=await self.queue_summaries(queue_names, since, paused),
        )

    async def queue_summaries(
        self, queue_names: Sequence[str], since: datetime | None, paused: set[str]
    ) -> list[QueueSummaryDto]:
        """Per queue: pending and running now, completed and failed since ``since``.

        Two indexed counts of live rows per queue, and one ``count_by_queue_and_status``
        for the finished ones (the SQL storages answer it from their hourly counts).
        Without configured queues (standalone mode) the queue names come from
        :meth:`stored_queue_names`.
        """
        known = set(queue_names) or await self.stored_queue_names()
        queues = sorted(known | paused)
        works = [
            work
            for q in queues
            for work in (
                self.count(queue_name=q, statuses=PENDING_STATUSES),
                self.count(queue_name=q, statuses=frozenset({S.IN_PROGRESS})),
            )
        ]
        values, finished = await asyncio.gather(
            self._all(works), self._bounded(self.storage.count_by_queue_and_status(since))
        )
        return [
            QueueSummaryDto(
                queue_name=q,
                pending_count=values[2 * i],
                in_progress_count=values[2 * i + 1],
                completed_count=finished.get((q, S.COMPLETED), 0),
                failed_count=finished.get((q, S.FAILED), 0),
                paused=q in paused,
            )
            for i, q in enumerate(queues)
        ]

    async def stored_queue_names(self) -> set[str]:
        """Queue names present in storage (an all-time GROUP BY, reused for a minute)."""
        now = time.monotonic()
        if self._queue_names is None or now - self._queue_names[0] > QUEUE_NAMES_TTL:
            names = {q for q, _ in await self.storage.count_by_queue_and_status()}
            self._queue_names = (now, names)
        return set(self._queue_names[1])

    async def recent_activity(self, limit: int) -> list[RecentActivityDto]:
        """The tasks with the newest activity, newest first by the time each line shows:
        its last run, or its creation when it has not run yet.

        The newest ``limit`` by creation and by last run hold every line of the answer
        (storages sort rows without a last run after the others).
        """
        created, ran = await asyncio.gather(
            self.storage.query_tasks(TaskQuery(page=1, page_size=limit)),
            self.storage.query_tasks(
                TaskQuery(page=1, page_size=limit, sort_by=SortField.LAST_EXECUTION)
            ),
        )
        rows = {row.id: row for row in (*created.items, *ran.items)}
        lines = sorted(
            (_activity(row) for row in rows.values()),
            key=lambda line: (line.timestamp, str(line.task_id)),
            reverse=True,
        )
        return lines[:limit]

    async def queue_metrics(self, queue_names: Sequence[str]) -> list[QueueMetricsDto]:
        """Per-queue counts (all time) and the average execution time of the last 24 hours."""
        per_queue, paused = await asyncio.gather(
            self.storage.count_by_queue_and_status(), self.storage.get_paused_queues()
        )
        queues = sorted({*queue_names, *(q for q, _ in per_queue), *paused})
        since = self.now() - QUEUE_TIME_WINDOW
        timings = await self._all(
            self._finished_sample(queue_name=q, created_after=since) for q in queues
        )
        out: list[QueueMetricsDto] = []
        for q, (_, avg) in zip(queues, timings, strict=True):
            counts = {s: per_queue.get((q, s), 0) for s in S}
            out.append(
                QueueMetricsDto(
                    queue_name=q,
                    total_tasks=sum(counts.values()),
                    pending_tasks=sum(counts[s] for s in PENDING_STATUSES),
                    in_progress_tasks=counts[S.IN_PROGRESS],
                    completed_tasks=counts[S.COMPLETED],
                    failed_tasks=counts[S.FAILED],
                    cancelled_tasks=counts[S.CANCELLED],
                    avg_execution_time_ms=avg,
                    success_rate=success_rate(counts[S.COMPLETED], counts[S.FAILED]),
                    paused=q in paused,
                )
            )
        return out

    async def success_rate_trend(self, period: SuccessRatePeriod) -> SuccessRateTrendResponse:
        """Success rate per day (7 or 30 days) or per week (90 days)."""
        tomorrow = _midnight(self.now()) + timedelta(days=1)
        if period is SuccessRatePeriod.LAST_90_DAYS:
            width, count = timedelta(days=7), 13
        else:
            width = timedelta(days=1)
            count = 7 if period is SuccessRatePeriod.LAST_7_DAYS else 30
        buckets = await self.buckets(tomorrow - width * count, width, count, total=False)
        return SuccessRateTrendResponse(
            period=period,
            timestamps=[b.start for b in buckets],
            success_rates=[success_rate(b.completed, b.failed) for b in buckets],
            completed=[b.completed for b in buckets],
            failed=[b.failed for b in buckets],
        )

    async def task_types(self, span: Range) -> TaskTypesResponse:
        """Tasks per type within a range (exact, or over the newest 1,000 tasks)."""
        since = self.range_start(span)
        storage = self.storage
        if isinstance(storage, TypeCountQueries):
            exact = await storage.count_by_type(since, 50)
            counted: Counter[str] = Counter(exact)
            is_exact, sample = True, sum(exact.values())
        else:
            page = await storage.query_tasks(
                TaskQuery(created_after=since, page=1, page_size=TYPE_SAMPLE_ROWS)
            )
            counted = Counter(row.type for row in page.items)
            is_exact, sample = page.total_count <= len(page.items), len(page.items)
        return TaskTypesResponse(
            range=span,
            exact=is_exact,
            sample_size=sample,
            types=[
                TaskTypeCount(type=name, short_type=short_type_name(name), count=n)
                for name, n in counted.most_common()
            ],
        )

    async def execution_times(self, span: Range) -> list[ExecutionTimePoint]:
        """Average execution time of completed tasks per hour (Today), day (Week, Month)
        or week (All: the last 26 weeks), by creation time."""
        now = self.now()
        if span is Range.TODAY:
            width, count = timedelta(hours=1), 24
            start = _floor_hour(now) - timedelta(hours=23)
        elif span is Range.ALL:
            width, count = timedelta(days=7), 26
            start = _midnight(now) + timedelta(days=1) - width * count
        else:
            width = timedelta(days=1)
            count = 7 if span is Range.WEEK else 30
            start = _midnight(now) + timedelta(days=1) - width * count
        edges = [start + width * i for i in range(count + 1)]
        samples = await self._all(
            self._finished_sample(created_after=edges[i], created_before=edges[i + 1])
            for i in range(count)
        )
        return [
            ExecutionTimePoint(timestamp=edges[i], avg_execution_time_ms=avg, sample_size=n)
            for i, (n, avg) in enumerate(samples)
        ]


async def _none() -> None:
    return None


def _bucket(start: datetime, counts: dict[QueuedTaskStatus, int]) -> BucketCounts:
    clamped = {s: max(0, n) for s, n in counts.items()}  # counts taken moments apart
    return BucketCounts(
        start, clamped.get(S.COMPLETED, 0), clamped.get(S.FAILED, 0), sum(clamped.values())
    )


def _activity(row: QueuedTask) -> RecentActivityDto:
    when = row.last_execution_utc or row.created_at_utc
    message = _ACTIVITY.get(row.status, row.status.value)
    if row.status is S.WAITING_QUEUE and row.scheduled_execution_utc is not None:
        message = f"Scheduled for {row.scheduled_execution_utc.isoformat(timespec='seconds')}"
    if row.is_recurring and row.recurring_info:
        message = f"{message} ({row.recurring_info})"
    return RecentActivityDto(
        task_id=row.id,
        type=row.type,
        short_type=short_type_name(row.type),
        status=row.status,
        queue_name=row.queue_name,
        timestamp=when,
        message=message,
        is_recurring=row.is_recurring,
    )


def total_pages(total: int, page_size: int) -> int:
    """Pages needed for ``total`` rows."""
    return max(1, math.ceil(total / page_size)) if page_size > 0 else 1


__all__ += ["total_pages"]
