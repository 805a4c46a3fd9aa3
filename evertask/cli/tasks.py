"""``evertask tasks``: list, show, cancel and retry stored tasks (the monitoring API's queries
and management rules, through the storage alone)."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import click

from evertask.storage.models import QueuedTask, SortField, TaskQuery
from evertask_abstractions import QueuedTaskStatus, TaskNotFoundError

from .errors import CliError
from .output import echo_json, format_time, kv_table, print_table
from .storage import open_storage, storage_options

__all__ = ["tasks"]

_STATUSES = {s.value.lower(): s for s in QueuedTaskStatus}
_SORTS = {
    "created": SortField.CREATED_AT,
    "last-run": SortField.LAST_EXECUTION,
    "scheduled": SortField.SCHEDULED_EXECUTION,
    "status": SortField.STATUS,
    "type": SortField.TYPE,
    "queue": SortField.QUEUE_NAME,
}
MAX_PAGE_SIZE = 500
"""The monitoring API's largest page."""


def _status(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> Any:
    found: set[QueuedTaskStatus] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower().replace("_", "").replace("-", "")
            if not name:
                continue
            status = _STATUSES.get(name)
            if status is None:
                known = ", ".join(s.value for s in QueuedTaskStatus)
                raise click.BadParameter(f"{part!r} is not a status; one of: {known}.")
            found.add(status)
    return frozenset(found) or None


def _task_id(_ctx: click.Context, _param: click.Parameter, value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a task id (a UUID).") from None


@click.group()
def tasks() -> None:
    """List, inspect, cancel and retry the stored tasks."""


@tasks.command("list")
@storage_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    callback=_status,
    metavar="STATUS[,STATUS]",
    help="Only these statuses (repeatable): WaitingQueue, Queued, InProgress, Completed, "
    "Failed, Cancelled, ServiceStopped.",
)
@click.option("--queue", default=None, help="Only this queue (exact name).")
@click.option("--type", "task_type", default=None, help="Task type contains (case-insensitive).")
@click.option("--search", default=None, help="Type, handler or task key contains.")
@click.option(
    "--recurring/--one-shot", "recurring", default=None, help="Only recurring / one-shot tasks."
)
@click.option(
    "--sort",
    type=click.Choice(list(_SORTS)),
    default="created",
    show_default=True,
    help="Sort column.",
)
@click.option("--ascending", is_flag=True, help="Oldest (smallest) first.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE_SIZE),
    default=20,
    show_default=True,
    help="Tasks per page.",
)
@click.option("--page", type=click.IntRange(1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_tasks(
    url: str,
    schema: str | None,
    statuses: frozenset[QueuedTaskStatus] | None,
    queue: str | None,
    task_type: str | None,
    search: str | None,
    recurring: bool | None,
    sort: str,
    ascending: bool,
    limit: int,
    page: int,
    as_json: bool,
) -> None:
    """List tasks, newest first, one page at a time (filtered and sorted by the database)."""
    query = TaskQuery(
        statuses=statuses,
        task_type_contains=task_type or None,
        queue_name=queue or None,
        is_recurring=recurring,
        search=search or None,
        sort_by=_SORTS[sort],
        descending=not ascending,
        page=page,
        page_size=limit,
    )

    async def go() -> Any:
        async with open_storage(url, schema) as storage:
            return await storage.query_tasks(query)

    result = asyncio.run(go())
    pages = max(1, math.ceil(result.total_count / result.page_size)) if result.page_size else 1
    if as_json:
        echo_json(
            {
                "items": result.items,
                "total_count": result.total_count,
                "page": result.page,
                "page_size": result.page_size,
                "total_pages": pages,
            }
        )
        return
    print_table(
        None,
        ["ID", "Status", "Type", "Queue", "Created (UTC)", "Last run (UTC)", "Key"],
        (
            [
                row.id,
                row.status.value,
                row.type,
                row.queue_name,
                format_time(row.created_at_utc),
                format_time(row.last_execution_utc),
                row.task_key,
            ]
            for row in result.items
        ),
        caption=f"page {result.page} of {pages}, {result.total_count} task(s)",
    )


def _fields(row: QueuedTask) -> list[tuple[str, object]]:
    return [
        ("Id", row.id),
        ("Status", row.status.value),
        ("Type", row.type),
        ("Handler", row.handler),
        ("Queue", row.queue_name),
        ("Task key", row.task_key),
        ("Created (UTC)", format_time(row.created_at_utc)),
        ("Scheduled (UTC)", format_time(row.scheduled_execution_utc)),
        ("Last run (UTC)", format_time(row.last_execution_utc)),
        ("Execution time", f"{row.execution_time_ms:.1f} ms"),
        ("Recurring", row.recurring_info if row.is_recurring else "no"),
        ("Runs", f"{row.current_run_count or 0}" + (f" of {row.max_runs}" if row.max_runs else "")),
        ("Next run (UTC)", format_time(row.next_run_utc)),
        ("Audit level", row.audit_level.value),
        ("Owner node", row.owner_node or "(none: any worker node may claim it)"),
        ("Retried from", row.retried_from),
        ("Payload", row.request),
        ("Exception", row.exception),
    ]


@tasks.command()
@storage_options
@click.argument("task_id", metavar="ID", callback=_task_id)
@click.option(
    "--logs",
    "log_count",
    type=click.IntRange(0, 1000),
    default=20,
    show_default=True,
    help="Captured log records to show (the last ones).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(url: str, schema: str | None, task_id: uuid.UUID, log_count: int, as_json: bool) -> None:
    """Show a task: every column, its status history, its runs and its captured logs."""
    from evertask.management import can_cancel, can_retry

    async def go() -> tuple[Any, ...]:
        async with open_storage(url, schema) as storage:
            row = await storage.get(task_id)
            if row is None:
                raise CliError(f"No task with id {task_id}.")
            audits, runs, total = await asyncio.gather(
                storage.get_status_audits(task_id),
                storage.get_runs_audits(task_id),
                storage.count_execution_logs(task_id),
            )
            skip = max(0, total - log_count)
            logs = await storage.get_execution_logs(task_id, skip, log_count) if log_count else []
            return row, audits, runs, total, logs

    row, audits, runs, total, logs = asyncio.run(go())
    if as_json:
        echo_json(
            {
                "task": row,
                "status_audits": audits,
                "runs_audits": runs,
                "execution_log_count": total,
                "execution_logs": logs,
                "can_cancel": can_cancel(row),
                "can_retry": can_retry(row),
            }
        )
        return
    kv_table(f"Task {row.id}", _fields(row))
    if audits:
        print_table(
            "Status history",
            ["Time (UTC)", "Status", "Exception"],
            (
                [format_time(a.updated_at_utc), a.new_status.value, _first_line(a.exception)]
                for a in audits
            ),
        )
    if runs:
        print_table(
            "Runs",
            ["Executed (UTC)", "Status", "Time (ms)", "Exception"],
            (
                [
                    format_time(r.executed_at),
                    r.status.value,
                    f"{r.execution_time_ms:.1f}",
                    _first_line(r.exception),
                ]
                for r in runs
            ),
        )
    if logs:
        print_table(
            f"Logs (last {len(logs)} of {total})",
            ["Time (UTC)", "Level", "Message"],
            ([format_time(e.timestamp_utc), e.level, e.message] for e in logs),
        )
    elif total:
        click.echo(f"{total} captured log record(s); --logs N shows them.")


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


@tasks.command()
@storage_options
@click.argument("task_id", metavar="ID", callback=_task_id)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cancel(url: str, schema: str | None, task_id: uuid.UUID, as_json: bool) -> None:
    """Cancel a pending, scheduled, running or recurring task.

    The row becomes Cancelled at once; the node running or holding it stops it at its
    next cluster poll (at once on PostgreSQL). Exit code 1 when the task does not exist
    or already ended.
    """
    from evertask.management import TaskStateError, cancel_stored_task

    async def go() -> QueuedTask:
        async with open_storage(url, schema) as storage:
            try:
                return await cancel_stored_task(storage, task_id)
            except (TaskNotFoundError, TaskStateError) as error:
                raise CliError(str(error)) from None

    row = asyncio.run(go())
    if as_json:
        echo_json({"task_id": task_id, "status": row.status})
    else:
        click.echo(f"Task {task_id} is {row.status.value}.")


@tasks.command()
@storage_options
@click.argument("task_id", metavar="ID", callback=_task_id)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def retry(url: str, schema: str | None, task_id: uuid.UUID, as_json: bool) -> None:
    """Run a Failed or Cancelled task again, as a new task.

    Its payload is stored again as a new Queued task that no node owns; the next worker
    node that polls the database claims and runs it (at once on PostgreSQL; within a
    heartbeat otherwise). Exit code 1 when the task does not exist or is not Failed or
    Cancelled.
    """
    from evertask.management import TaskStateError, retry_stored_task

    async def go() -> uuid.UUID:
        async with open_storage(url, schema) as storage:
            try:
                return await retry_stored_task(storage, task_id)
            except (TaskNotFoundError, TaskStateError) as error:
                raise CliError(str(error)) from None

    new_id = asyncio.run(go())
    if as_json:
        echo_json({"task_id": new_id, "retried_from": task_id, "status": "Queued"})
    else:
        click.echo(f"Task {task_id} is retried as {new_id} (Queued; a worker node runs it).")
