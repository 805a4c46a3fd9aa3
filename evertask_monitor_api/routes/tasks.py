"""``/tasks``: filtered, sorted, paged list; detail with histories and logs; cancel; retry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status

from evertask.management import can_cancel, can_retry
from evertask.storage.models import QueuedTask, TaskQuery
from evertask.storage.protocol import BatchStore
from evertask_abstractions import EverTaskError, HostNotRunningError, QueuedTaskStatus

from ..queries import total_pages
from ..schemas import (
    CountsResponse,
    ExecutionLogDto,
    ExecutionLogsResponse,
    RetryResponse,
    RunsAuditDto,
    SortKey,
    StatusAuditDto,
    TaskActionResponse,
    TaskDetailDto,
    TaskListItem,
    TasksPageResponse,
)
from .deps import READ_RESPONSES, WRITE_RESPONSES, Context, require_ready, require_user
from .deps import require_writable as writable
from .params import Page, PageSize, Text, utc

__all__ = ["can_cancel", "can_retry", "list_page", "router"]

S = QueuedTaskStatus
MAX_AUDITS = 500
"""Newest audits returned inside a task detail (the audit routes return them all)."""

router = APIRouter(
    prefix="/tasks",
    tags=["tasks"],
    dependencies=[Depends(require_user), Depends(require_ready)],
    responses=READ_RESPONSES,
)


async def list_page(context: Context, query: TaskQuery) -> TasksPageResponse:
    """Run a task query and shape the page."""
    page = await context.storage.query_tasks(query)
    return TasksPageResponse(
        items=[TaskListItem.of(row) for row in page.items],
        total_count=page.total_count,
        page=page.page,
        page_size=page.page_size,
        total_pages=total_pages(page.total_count, page.page_size),
    )


@router.get("", response_model=TasksPageResponse)
async def list_tasks(
    context: Context,
    statuses: Annotated[list[QueuedTaskStatus] | None, Query(description="Any of")] = None,
    task_type: Annotated[Text, Query(alias="taskType", description="Contains, ci")] = None,
    queue_name: Annotated[Text, Query(alias="queueName", description="Exact")] = None,
    is_recurring: Annotated[bool | None, Query(alias="isRecurring")] = None,
    created_after: Annotated[datetime | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[datetime | None, Query(alias="createdBefore")] = None,
    search_term: Annotated[
        Text, Query(alias="searchTerm", description="Type, handler or task key contains, ci")
    ] = None,
    page: Page = 1,
    page_size: PageSize = 20,
    sort_by: Annotated[SortKey, Query(alias="sortBy")] = SortKey.CREATED_AT,
    sort_descending: Annotated[bool, Query(alias="sortDescending")] = True,
) -> TasksPageResponse:
    """Tasks matching every given filter, one sorted page at a time (server-side)."""
    query = TaskQuery(
        statuses=frozenset(statuses) if statuses else None,
        task_type_contains=task_type or None,
        queue_name=queue_name,
        is_recurring=is_recurring,
        created_after=utc(created_after, "createdAfter"),
        created_before=utc(created_before, "createdBefore"),
        search=search_term or None,
        sort_by=sort_by.field,
        descending=sort_descending,
        page=page,
        page_size=page_size,
    )
    return await list_page(context, query)


@router.get("/counts", response_model=CountsResponse)
async def counts(context: Context) -> CountsResponse:
    """All, one-shot, recurring and failed tasks."""
    return await context.queries.counts()


async def _row(context: Context, task_id: uuid.UUID) -> QueuedTask:
    row = await context.storage.get(task_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No task with id {task_id}.")
    return row


@router.get(
    "/{task_id}",
    response_model=TaskDetailDto,
    responses={404: WRITE_RESPONSES[404]},
)
async def task_detail(context: Context, task_id: uuid.UUID) -> TaskDetailDto:
    """Every column of a task with its status and run histories (newest first)."""
    row = await _row(context, task_id)
    storage = context.storage
    audits, runs, log_count = await asyncio.gather(
        storage.get_status_audits(task_id),
        storage.get_runs_audits(task_id),
        storage.count_execution_logs(task_id),
    )
    writable = not context.read_only
    return TaskDetailDto.build(
        row,
        audits[-MAX_AUDITS:],
        runs[-MAX_AUDITS:],
        log_count,
        writable and can_cancel(row),
        writable and can_retry(row),
        _throttled_until(context, row),
        await _parent_kind(context, row),
    )


async def _parent_kind(context: Context, row: QueuedTask) -> str | None:
    """``Task``, or the kind of the batch record a continuation waits for."""
    if row.parent_task_id is None:
        return None
    storage: object = context.storage
    if isinstance(storage, BatchStore):
        record = await storage.get_batch(row.parent_task_id)
        if record is not None:
            return record.kind.value
    return "Task"


_WAITING = frozenset({S.WAITING_QUEUE, S.QUEUED, S.PENDING, S.IN_PROGRESS})
"""Statuses in which a task may wait for a rate-limit slot (in progress: a retry)."""


def _throttled_until(context: Context, row: QueuedTask) -> datetime | None:
    """The serving host's reserved slot for a task that has not ended (None standalone)."""
    if context.host is None or row.status not in _WAITING:
        return None
    return context.host.rate_limiter.throttled_until(row.id)


@router.get("/{task_id}/status-audit", response_model=list[StatusAuditDto])
async def status_audit(context: Context, task_id: uuid.UUID) -> list[StatusAuditDto]:
    """Status transitions, newest first (empty for an unknown id)."""
    audits = await context.storage.get_status_audits(task_id)
    return [StatusAuditDto.of(a) for a in reversed(audits)]


@router.get("/{task_id}/runs-audit", response_model=list[RunsAuditDto])
async def runs_audit(context: Context, task_id: uuid.UUID) -> list[RunsAuditDto]:
    """Runs of a recurring task, newest first (empty for an unknown id)."""
    audits = await context.storage.get_runs_audits(task_id)
    return [RunsAuditDto.of(a) for a in reversed(audits)]


@router.get("/{task_id}/execution-logs", response_model=ExecutionLogsResponse)
async def execution_logs(
    context: Context,
    task_id: uuid.UUID,
    skip: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    take: Annotated[int, Query(ge=1, le=1000)] = 100,
    level: Annotated[Text, Query(description="Exact level name, ci")] = None,
) -> ExecutionLogsResponse:
    """A page of a task's captured logs in capture order (empty for an unknown id)."""
    level = level or None
    storage = context.storage
    logs, total = await asyncio.gather(
        storage.get_execution_logs(task_id, skip, take, level),
        storage.count_execution_logs(task_id, level),
    )
    return ExecutionLogsResponse(
        logs=[ExecutionLogDto.of(e) for e in logs], total_count=total, skip=skip, take=take
    )


@router.post(
    "/{task_id}/cancel",
    response_model=TaskActionResponse,
    responses=WRITE_RESPONSES,
    dependencies=[Depends(writable)],
)
async def cancel_task(context: Context, task_id: uuid.UUID) -> TaskActionResponse:
    """Cancel a pending, scheduled, running or recurring task (409 if it already ended)."""
    row = await _row(context, task_id)
    if not can_cancel(row):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Task {task_id} is {row.status.value}; only pending, scheduled, running or "
            "recurring tasks can be cancelled.",
        )
    assert context.host is not None
    await context.host.dispatcher.cancel(task_id)
    after = await _row(context, task_id)
    return TaskActionResponse(
        task_id=task_id, status=after.status, message=f"Task {task_id} was cancelled."
    )


@router.post(
    "/{task_id}/retry",
    response_model=RetryResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses=WRITE_RESPONSES,
    dependencies=[Depends(writable)],
)
async def retry_task(context: Context, task_id: uuid.UUID) -> RetryResponse:
    """Dispatch a Failed or Cancelled task's payload again as a new task."""
    row = await _row(context, task_id)
    if not can_retry(row):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Task {task_id} is {row.status.value}; only Failed or Cancelled tasks can be retried.",
        )
    assert context.host is not None
    try:
        new_id = await context.host.dispatcher.retry(task_id)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No task with id {task_id}.") from None
    except HostNotRunningError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    except (ValueError, EverTaskError) as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    return RetryResponse(
        task_id=new_id,
        retried_from=task_id,
        message=f"Task {task_id} is retried as {new_id}.",
    )
