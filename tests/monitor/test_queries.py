"""The bounded dashboard queries: storage extensions give the same figures as the fallbacks."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from evertask.storage.memory import MemoryTaskStorage
from evertask.storage.models import QueuedTask, TaskQuery
from evertask_abstractions import QueuedTaskStatus
from evertask_monitor_api import MonitorQueries
from evertask_monitor_api.queries import (
    ExecutionTimeQueries,
    TimeBucketQueries,
    TypeCountQueries,
    success_rate,
)
from evertask_monitor_api.schemas import Range, SuccessRatePeriod, short_type_name

S = QueuedTaskStatus
NOW = datetime(2030, 5, 17, 15, 30, tzinfo=UTC)


class CountingStorage(MemoryTaskStorage):
    """Memory storage that counts the rows each call hands back (to prove boundedness)."""

    def __init__(self) -> None:
        super().__init__(lambda: NOW)
        self.rows_returned = 0
        self.calls = 0

    async def query_tasks(self, query: TaskQuery) -> Any:
        page = await super().query_tasks(query)
        self.rows_returned += len(page.items)
        self.calls += 1
        return page


class ExtendedStorage(CountingStorage):
    """Adds the server-side methods the monitor asks storages for (computed naively here)."""

    async def _all(self) -> list[QueuedTask]:
        page = await MemoryTaskStorage.query_tasks(self, TaskQuery(page_size=10**6))
        return page.items

    async def count_by_time_bucket(
        self, start: datetime, width: timedelta, buckets: int
    ) -> list[dict[QueuedTaskStatus, int]]:
        out: list[dict[QueuedTaskStatus, int]] = [{} for _ in range(buckets)]
        for row in await self._all():
            i = int((row.created_at_utc - start) / width)
            if 0 <= i < buckets and row.created_at_utc >= start:
                out[i][row.status] = out[i].get(row.status, 0) + 1
        return out

    async def average_execution_time(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        queue_name: str | None = None,
    ) -> tuple[int, float | None]:
        times = [
            r.execution_time_ms
            for r in await self._all()
            if r.status is S.COMPLETED
            and (created_after is None or r.created_at_utc >= created_after)
            and (created_before is None or r.created_at_utc < created_before)
            and (queue_name is None or r.queue_name == queue_name)
        ]
        return len(times), (round(sum(times) / len(times), 2) if times else None)

    async def count_by_type(
        self, created_since: datetime | None = None, limit: int = 50
    ) -> dict[str, int]:
        counted = Counter(
            r.type
            for r in await self._all()
            if created_since is None or r.created_at_utc >= created_since
        )
        return dict(counted.most_common(limit))


async def _fill(storage: MemoryTaskStorage) -> None:
    statuses = [S.COMPLETED, S.COMPLETED, S.FAILED, S.QUEUED, S.WAITING_QUEUE, S.CANCELLED]
    for i in range(120):
        status = statuses[i % len(statuses)]
        created = NOW - timedelta(minutes=37 * i)
        await storage.persist(
            QueuedTask(
                id=uuid.uuid4(),
                type=f"app.tasks:Type{i % 3}",
                request="{}",
                handler="app.tasks:Handler",
                status=status,
                created_at_utc=created,
                queue_name=("default", "mail")[i % 2],
                execution_time_ms=10.0 * (i % 5),
            )
        )


async def test_extensions_and_fallbacks_agree() -> None:
    plain, extended = CountingStorage(), ExtendedStorage()
    assert isinstance(extended, TimeBucketQueries)
    assert isinstance(extended, ExecutionTimeQueries) and isinstance(extended, TypeCountQueries)
    assert not isinstance(plain, TimeBucketQueries)
    for storage in (plain, extended):
        await _fill(storage)
    a, b = MonitorQueries(plain, lambda: NOW), MonitorQueries(extended, lambda: NOW)
    for span in Range:
        overview_a = await a.overview(span, ["default"])
        overview_b = await b.overview(span, ["default"])
        assert overview_a.tasks_over_time == overview_b.tasks_over_time
        assert overview_a.status_distribution == overview_b.status_distribution
        assert overview_a.queue_summaries == overview_b.queue_summaries
    for period in SuccessRatePeriod:
        assert await a.success_rate_trend(period) == await b.success_rate_trend(period)
    types_a, types_b = await a.task_types(Range.ALL), await b.task_types(Range.ALL)
    assert types_a.types == types_b.types and types_a.exact and types_b.exact
    assert sum(t.count for t in types_a.types) == 120
    # the fallback averages a sample; with few rows it is exact and equals the AVG
    assert [p.avg_execution_time_ms for p in await a.execution_times(Range.WEEK)] == [
        p.avg_execution_time_ms for p in await b.execution_times(Range.WEEK)
    ]
    assert (await a.queue_metrics(["default"])) == (await b.queue_metrics(["default"]))


async def test_fallbacks_never_read_more_than_bounded_pages() -> None:
    storage = CountingStorage()
    for i in range(3000):
        await storage.persist(
            QueuedTask(
                id=uuid.uuid4(),
                type="t:T",
                request="{}",
                handler="t:H",
                status=S.COMPLETED,
                created_at_utc=NOW - timedelta(seconds=i),
            )
        )
    queries = MonitorQueries(storage, lambda: NOW)
    await queries.overview(Range.ALL, ["default"])
    await queries.success_rate_trend(SuccessRatePeriod.LAST_90_DAYS)
    await queries.counts()
    assert storage.rows_returned <= 24 * 3 + 30 + 200 + 10  # counts return one row each
    types = await queries.task_types(Range.ALL)
    assert types.exact is False and types.sample_size == 1000
    assert storage.rows_returned <= 24 * 3 + 30 + 200 + 10 + 1000


def test_helpers() -> None:
    assert success_rate(3, 1) == 75.0
    assert success_rate(0, 0) is None  # nothing finished: no rate (the dashboard shows "—")
    assert short_type_name("pkg.mod:SendEmail") == "SendEmail"
    assert short_type_name("Ns.Sub.SendEmail, Assembly") == "SendEmail"
