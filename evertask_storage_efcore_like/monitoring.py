"""Server-side monitoring queries: filtered, sorted, paged task lists and counts.

Every query is an indexed filter plus ``LIMIT``/``OFFSET`` or a count; rows never travel
to Python to be filtered, sorted or counted. Counts by status, queue and time come from
:mod:`.counts`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select

from evertask.storage.models import SortField, TaskQuery

from .schema import TaskTables
from .statements import TASK_COLUMNS

__all__ = [
    "count_logs_statement",
    "logs_statement",
    "page_bounds",
    "task_count_statement",
    "task_page_statement",
]

_SORT_COLUMNS: dict[SortField, str] = {
    SortField.CREATED_AT: "CreatedAtUtc",
    SortField.LAST_EXECUTION: "LastExecutionUtc",
    SortField.SCHEDULED_EXECUTION: "ScheduledExecutionUtc",
    SortField.STATUS: "Status",
    SortField.TYPE: "Type",
    SortField.QUEUE_NAME: "QueueName",
}


def page_bounds(query: TaskQuery) -> tuple[int, int]:
    """``(page, page_size)`` clamped to at least 1, like the memory storage."""
    return max(1, query.page), max(1, query.page_size)


def _filters(tables: TaskTables, query: TaskQuery) -> list[ColumnElement[bool]]:
    c = tables.tasks.c
    out: list[ColumnElement[bool]] = []
    if query.statuses is not None:
        out.append(c.Status.in_(sorted(s.value for s in query.statuses)))
    if query.task_type_contains:
        out.append(c.Type.icontains(query.task_type_contains, autoescape=True))
    if query.queue_name is not None:
        out.append(c.QueueName == query.queue_name)
    if query.is_recurring is not None:
        out.append(c.IsRecurring == query.is_recurring)
    if query.created_after is not None:
        out.append(c.CreatedAtUtc >= query.created_after)
    if query.created_before is not None:
        out.append(c.CreatedAtUtc < query.created_before)
    if query.search:
        needle = query.search
        out.append(
            or_(
                c.Type.icontains(needle, autoescape=True),
                c.Handler.icontains(needle, autoescape=True),
                c.TaskKey.icontains(needle, autoescape=True),
            )
        )
    return out


def task_count_statement(tables: TaskTables, query: TaskQuery) -> Select[Any]:
    """``SELECT count(*)`` of the tasks matching ``query``."""
    return select(func.count()).select_from(tables.tasks).where(*_filters(tables, query))


def task_page_statement(tables: TaskTables, query: TaskQuery) -> Select[Any]:
    """One sorted page of the tasks matching ``query``.

    Order: the sort column (rows without a value last, in either direction), then
    ``CreatedAtUtc`` and ``Id`` in the same direction, so pages never overlap.
    """
    t = tables.tasks
    c = t.c
    page, size = page_bounds(query)
    column = c[_SORT_COLUMNS[query.sort_by]]
    order: list[Any] = []
    if column.nullable:
        order.append(case((column.is_(None), 1), else_=0))
    for col in (column, c.CreatedAtUtc, c.Id) if column is not c.CreatedAtUtc else (column, c.Id):
        order.append(col.desc() if query.descending else col.asc())
    return (
        select(*[c[name] for name in TASK_COLUMNS])
        .where(*_filters(tables, query))
        .order_by(*order)
        .limit(size)
        .offset((page - 1) * size)
    )


def _log_filter(tables: TaskTables, task_id: Any, level: str | None) -> ColumnElement[bool]:
    lg = tables.logs.c
    of_task: ColumnElement[bool] = lg.TaskId == task_id
    if level is None:
        return of_task
    return and_(of_task, func.lower(lg.Level) == level.lower())


def logs_statement(
    tables: TaskTables, task_id: Any, skip: int, take: int | None, level: str | None
) -> Select[Any]:
    """A task's captured logs in capture order (timestamp, then sequence number)."""
    lg = tables.logs.c
    stmt = (
        select(
            lg.Id,
            lg.TaskId,
            lg.TimestampUtc,
            lg.Level,
            lg.Message,
            lg.SequenceNumber,
            lg.ExceptionDetails,
        )
        .where(_log_filter(tables, task_id, level))
        .order_by(lg.TimestampUtc, lg.SequenceNumber, lg.Id)
    )
    if take is not None:
        stmt = stmt.limit(max(0, take))
    if skip > 0:
        stmt = stmt.offset(skip)
    return stmt


def count_logs_statement(tables: TaskTables, task_id: Any, level: str | None) -> Select[Any]:
    """How many logs a task has (optionally of one level)."""
    return select(func.count()).select_from(tables.logs).where(_log_filter(tables, task_id, level))
