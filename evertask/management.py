"""Task management through the storage alone: what a process without a running host (the
``evertask`` command line) may do to the tasks of a cluster, and the rules the monitoring
API applies too.

- cancel: the row becomes Cancelled; the node holding it stops it at its next cluster poll
  (at once on PostgreSQL, which notifies the nodes); a delayed or recurring one never fires.
- retry: a Failed or Cancelled task's payload is stored again as a new Queued row that no
  node owns (``retried_from`` names the old one), exactly as a dispatch-only node stores a
  dispatch: the next worker node to poll claims and runs it.
"""

from __future__ import annotations

import logging
import uuid

from evertask_abstractions import QueuedTaskStatus, TaskNotFoundError

from .clock import utc_now
from .cluster import NOTICE_CANCEL, NOTICE_WORK
from .ids import uuid7
from .options import DEFAULT_QUEUE, RECURRING_QUEUE
from .storage.models import QueuedTask
from .storage.protocol import BatchStore, NotifyingStorage, TaskStorage

__all__ = [
    "TaskStateError",
    "can_cancel",
    "can_retry",
    "cancel_stored_task",
    "retry_stored_task",
]

S = QueuedTaskStatus
log = logging.getLogger("evertask.management")


class TaskStateError(ValueError):
    """The task's status does not allow the action (e.g. cancelling a Completed task)."""


def can_cancel(row: QueuedTask) -> bool:
    """Pending, scheduled, running and live recurring tasks can be cancelled."""
    if row.status is S.CANCELLED:
        return False
    if row.status in (S.COMPLETED, S.FAILED):
        return row.is_recurring and row.next_run_utc is not None
    return True


def can_retry(row: QueuedTask) -> bool:
    """Failed and Cancelled tasks can be retried (as a new task)."""
    return row.status in (S.FAILED, S.CANCELLED)


def _ignore(_notice: str) -> None:
    """Notices to this process are of no interest."""


async def _notify(storage: TaskStorage, notice: str) -> None:
    """Wake the nodes where the storage can (PostgreSQL); they poll anyway, so a notice that
    cannot be sent costs latency only."""
    if not isinstance(storage, NotifyingStorage):
        return
    try:
        await storage.listen(_ignore)  # (its connection is the one notices are sent on)
        await storage.notify(notice)
    except Exception as exc:
        log.debug("Could not send notice %r (%r); the nodes poll.", notice, exc)


async def cancel_stored_task(storage: TaskStorage, task_id: uuid.UUID) -> QueuedTask:
    """Mark a task Cancelled and tell the nodes; return the row as it is now.

    Raises:
        TaskNotFoundError: no task has that id.
        TaskStateError: the task already ended (see :func:`can_cancel`).
    """
    row = await storage.get(task_id)
    if row is None:
        raise TaskNotFoundError(task_id)
    if not can_cancel(row):
        raise TaskStateError(
            f"Task {task_id} is {row.status.value}; only pending, scheduled, running or "
            "recurring tasks can be cancelled."
        )
    await storage.set_cancelled_by_user(task_id, row.audit_level)
    await _notify(storage, NOTICE_CANCEL + str(task_id))
    after = await storage.get(task_id)
    return after if after is not None else row


async def retry_stored_task(storage: TaskStorage, task_id: uuid.UUID) -> uuid.UUID:
    """Store a Failed or Cancelled task's payload again as a new, unowned Queued task (a
    worker node claims it); return the new id. A member of a batch or workflow is requeued
    in place instead (``BatchStore.retry_member``; the same id is returned).

    The payload is copied as stored: a node that cannot load its type marks the new row
    Failed with the reason (as it does for any stored row).

    Raises:
        TaskNotFoundError: no task has that id.
        TaskStateError: the task is not Failed or Cancelled.
    """
    row = await storage.get(task_id)
    if row is None:
        raise TaskNotFoundError(task_id)
    if not can_retry(row):
        raise TaskStateError(
            f"Task {task_id} is {row.status.value}; only Failed or Cancelled tasks can be retried."
        )
    found: object = storage
    if isinstance(found, BatchStore) and (row.batch_id or row.workflow_id):
        try:
            retried = await found.retry_member(task_id)
        except ValueError as exc:
            raise TaskStateError(str(exc)) from exc
        if retried:  # in place: its batch or workflow goes on
            await _notify(storage, NOTICE_WORK)
            return task_id
    # a retry is one run: a recurring task's occurrence queue becomes the one-shot default
    queue = row.queue_name
    if row.is_recurring and queue == RECURRING_QUEUE:
        queue = DEFAULT_QUEUE
    new_id = uuid7()
    await storage.persist(
        QueuedTask(
            id=new_id,
            type=row.type,
            request=row.request,
            handler=row.handler,
            status=S.QUEUED,
            created_at_utc=utc_now(),
            queue_name=queue,
            audit_level=row.audit_level,
            retried_from=task_id,
            owner_node=None,
        )
    )
    await _notify(storage, NOTICE_WORK)
    return new_id
