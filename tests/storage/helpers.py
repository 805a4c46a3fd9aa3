"""Row builders and stand-ins for the storage tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from evertask.ids import uuid7
from evertask.storage import QueuedTask
from evertask_abstractions import AuditLevel, QueuedTaskStatus
from evertask_storage_efcore_like.ops import Op


def row(
    created: datetime,
    *,
    status: QueuedTaskStatus = QueuedTaskStatus.WAITING_QUEUE,
    task_id: uuid.UUID | None = None,
    **fields: Any,
) -> QueuedTask:
    """A task row with sensible defaults (WaitingQueue, audit Full)."""
    values: dict[str, Any] = {
        "id": task_id or uuid7(),
        "type": "tests.Ping",
        "request": '{"n": 1}',
        "handler": "tests.PingHandler",
        "status": status,
        "created_at_utc": created,
        "audit_level": AuditLevel.FULL,
    }
    values.update(fields)
    return QueuedTask(**values)


def recurring(created: datetime, next_run: datetime, **fields: Any) -> QueuedTask:
    """A recurring row with a next run."""
    values: dict[str, Any] = {
        "is_recurring": True,
        "recurring_task": '{"every": "1m"}',
        "recurring_info": "every minute",
        "current_run_count": 0,
        "next_run_utc": next_run,
        "queue_name": "recurring",
    }
    values.update(fields)
    return row(created, **values)


async def count_mismatches(storage: Any, *, fold: bool = False) -> dict[str, Any]:
    """Where the storage's counts differ from a ``GROUP BY`` recount of ``QueuedTasks``
    (empty: exact). Checks the all-time counts per (queue, status) and per status, and
    counts since an unaligned time and by hour buckets around the rows' creation times.
    With ``fold``, folds the pending deltas first."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from evertask_storage_efcore_like.counts import floor_hour

    if fold:
        await storage.fold_counts()
    t = storage.tables.tasks
    rows = await storage._rows(
        select(t.c.QueueName, t.c.Status, t.c.CreatedAtUtc, func.count()).group_by(
            t.c.QueueName, t.c.Status, t.c.CreatedAtUtc
        )
    )
    actual = [(q, QueuedTaskStatus(s), _aware(c), int(n)) for q, s, c, n in rows]
    out: dict[str, Any] = {}

    def by(
        key: Any, since: datetime | None = None, until: datetime | None = None
    ) -> dict[Any, int]:
        counted: dict[Any, int] = {}
        for q, s, c, n in actual:
            created = _aware(c)
            if (since is None or created >= since) and (until is None or created < until):
                k = key(q, s)
                counted[k] = counted.get(k, 0) + n
        return counted

    per_queue = await storage.count_by_queue_and_status()
    if per_queue != by(lambda q, s: (q, s)):
        out["count_by_queue_and_status"] = (per_queue, by(lambda q, s: (q, s)))
    if not actual:
        return out
    times = sorted(_aware(c) for _, _, c, _ in actual)
    middle = times[len(times) // 2] + timedelta(minutes=7, seconds=3)
    for since in (None, middle, floor_hour(middle), times[0] - timedelta(days=1)):
        got = await storage.count_by_status(since)
        want = by(lambda q, s: s, since)
        if got != want:
            out[f"count_by_status({since})"] = (got, want)
    start = floor_hour(times[0]) - timedelta(hours=1)
    hours = int((times[-1] - start).total_seconds() // 3600) + 2
    if hours <= 24 * 40:
        buckets = await storage.count_by_time_bucket(start, timedelta(hours=1), hours)
        for i, got_bucket in enumerate(buckets):
            edge = start + timedelta(hours=i)
            want_bucket = by(lambda q, s: s, edge, edge + timedelta(hours=1))
            if {k: v for k, v in got_bucket.items() if v} != want_bucket:
                out[f"bucket {edge}"] = (got_bucket, want_bucket)
    return out


def _aware(value: Any) -> datetime:
    from datetime import UTC

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class NamedOp(Op):
    """A write operation known by its name, for a writer whose fake executor answers it
    (its steps are never driven)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def steps(self) -> Any:
        raise NotImplementedError
