"""In-memory storage: the reference implementation of :class:`~.protocol.TaskStorage`.

Rows are :class:`QueuedTask` objects in a dict by id; audits and logs are kept per task.
Rows are copied on the way in and out, so no caller can change stored state. Every method
runs without awaiting, hence atomically with respect to the event loop: no lock is needed.
Nothing survives the process; use it for development, tests and volatile work.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, overload

from evertask_abstractions import (
    AuditLevel,
    BatchKind,
    BatchStatus,
    ContinueWhen,
    QueuedTaskStatus,
    TaskKeyConflictError,
    TaskNotFoundError,
)

from ..clock import utc_now
from .models import (
    STAMPED_STATUSES,
    ExecutionLogs,
    LogEntry,
    NodeInfo,
    QueuedTask,
    RunsAudit,
    SortField,
    StatusAudit,
    TaskBatch,
    TaskExecutionLog,
    TaskPage,
    TaskQuery,
    batch_outcome,
    is_recoverable,
    member_retry_refusal,
    skip_reason,
    wants_runs_audit,
    wants_status_audit,
)
from .protocol import check_claim_window

__all__ = ["MemoryTaskStorage"]

_RUN_COUNTER_MAX = 2**31 - 1  # the SQL storages' 32-bit column saturates here too
_TIME_FIELDS = (
    "created_at_utc",
    "scheduled_execution_utc",
    "last_execution_utc",
    "run_until",
    "next_run_utc",
)
# what ``update_task`` overwrites (see the protocol)
_DEFINITION_FIELDS = (
    "type",
    "request",
    "handler",
    "scheduled_execution_utc",
    "is_recurring",
    "recurring_task",
    "recurring_info",
    "max_runs",
    "run_until",
    "next_run_utc",
    "queue_name",
    "task_key",
    "audit_level",
)
Q = QueuedTaskStatus


@overload
def _utc(when: datetime) -> datetime: ...
@overload
def _utc(when: None) -> None: ...
@overload
def _utc(when: datetime | None) -> datetime | None: ...
def _utc(when: datetime | None) -> datetime | None:
    """``when`` as an aware UTC datetime; a naive one is refused (it is ambiguous)."""
    if when is None:
        return None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"Naive datetime {when.isoformat()} cannot be stored; pass an aware "
            "datetime, e.g. datetime.now(UTC)."
        )
    return when.astimezone(UTC)


def _stored(task: QueuedTask) -> QueuedTask:
    """A detached copy of ``task`` with every time in UTC (raises on a naive time)."""
    return _in_utc(task.copy())


def _in_utc(row: QueuedTask) -> QueuedTask:
    """``row`` with every time in UTC, converted in place (raises on a naive time)."""
    for name in _TIME_FIELDS:
        value = getattr(row, name)
        if value is not None and value.tzinfo is not UTC:
            setattr(row, name, _utc(value))
    return row


_AuditEntry = tuple[int, datetime, QueuedTaskStatus, str | None]
# one save of captured logs: the engine's records as the plain tuples of its ExecutionLogs
# (rows built when read, as for the status audits), or rows saved as rows (a list)
_SavedLogs = tuple[LogEntry, ...] | list[TaskExecutionLog]


class MemoryTaskStorage:
    """Keeps every row in process memory. Nothing survives the process.

    One instance may be shared by several hosts in one process (tests); rows stay after
    :meth:`close` for a later host.
    """

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now
        self._tasks: dict[uuid.UUID, QueuedTask] = {}
        self._keys: dict[str, uuid.UUID] = {}  # task key -> id
        # status audits as (id, time, status, exception) tuples, StatusAudit records when
        # read: building a frozen StatusAudit per transition cost the engine suite about a
        # quarter of its time, and most audits are never read
        self._status_audits: dict[uuid.UUID, list[_AuditEntry]] = {}
        self._runs_audits: dict[uuid.UUID, list[RunsAudit]] = {}
        # captured logs: per task, what each save brought (see _SavedLogs)
        self._logs: dict[uuid.UUID, list[_SavedLogs]] = {}
        self._paused: set[str] = set()
        self._nodes: dict[uuid.UUID, NodeInfo] = {}
        self._audit_ids = itertools.count(1)  # audit ids, shared by both audit tables
        # workflows: WaitingParent children by parent (task or batch), batch records, the
        # rows counting in each record, and the rows already counted
        self._waiting: dict[uuid.UUID, list[uuid.UUID]] = {}
        self._children: dict[uuid.UUID, list[uuid.UUID]] = {}  # every continuation by parent
        self._batches: dict[uuid.UUID, TaskBatch] = {}
        self._members: dict[uuid.UUID, list[uuid.UUID]] = {}
        self._counted: set[uuid.UUID] = set()

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; the rows stay for a later host in the same process."""

    def __len__(self) -> int:
        return len(self._tasks)

    # -- helpers ---------------------------------------------------------------------------
    def _existing(self, task_id: uuid.UUID) -> QueuedTask:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    def _audit(
        self, task_id: uuid.UUID, at: datetime, status: QueuedTaskStatus, exception: str | None
    ) -> None:
        entry = (next(self._audit_ids), at, status, exception)
        self._status_audits.setdefault(task_id, []).append(entry)

    def _transition(
        self,
        task_id: uuid.UUID,
        status: QueuedTaskStatus,
        exception: str | None,
        level: AuditLevel,
        execution_time_ms: float | None = None,
        clear_next_run: bool = False,
    ) -> QueuedTask | None:
        """Change a row's status (``None``: no such row). ``exception=None`` clears it."""
        task = self._tasks.get(task_id)
        if task is None:
            return None
        now = self._now()
        task.status = status
        task.exception = exception
        if execution_time_ms is not None:
            task.execution_time_ms = execution_time_ms
        if clear_next_run:
            task.next_run_utc = None
        if status in STAMPED_STATUSES:
            task.last_execution_utc = now
        if wants_status_audit(level, status, exception):
            self._audit(task_id, now, status, exception)
        return task

    def _release(
        self, parent_id: uuid.UUID, status: QueuedTaskStatus | str, owner: uuid.UUID | None = None
    ) -> list[QueuedTask]:
        """Release the WaitingParent children of a task or batch that has just finished
        with ``status`` (terminal), handing them to ``owner`` (``None``: no owner): matching
        ones become Queued, the others Cancelled with the reason (and finished, see
        :meth:`_finished`). Returns the rows that became Queued (this parent's oldest
        first)."""
        queued: list[QueuedTask] = []
        later: list[QueuedTask] = []  # (made Queued by the cancelled ones' batches)
        parent_status = Q(str(status))
        for child_id in self._waiting.pop(parent_id, ()):
            child = self._tasks.get(child_id)
            if child is None or child.status is not Q.WAITING_PARENT:
                continue
            child.owner_node = owner
            if _condition(child).matches(parent_status):
                child.status, child.exception = Q.QUEUED, None
                queued.append(child)
            else:
                child.status = Q.CANCELLED
                child.exception = skip_reason(parent_id, parent_status)
            if wants_status_audit(child.audit_level, child.status, child.exception):
                self._audit(child.id, self._now(), child.status, child.exception)
            if child.status is Q.CANCELLED:  # counts in its batch; cancels its own children
                later += self._finished(child, owner)
        queued.sort(key=lambda t: (t.created_at_utc, t.id.int))
        return queued + later

    def _finished(self, task: QueuedTask, owner: uuid.UUID | None = None) -> list[QueuedTask]:
        """A row has just been written with ``task.status``: if terminal, count it once in
        its batch and workflow and release its continuations, handed to ``owner`` (see
        the protocol). Returns the rows that became Queued."""
        status = task.status
        if not status.is_terminal:
            return []
        released: list[QueuedTask] = []
        if (task.batch_id or task.workflow_id) and task.id not in self._counted:
            self._counted.add(task.id)
            for record_id in (task.batch_id, task.workflow_id):
                if record_id is not None:
                    released += self._count_member(record_id, status, owner)
        if task.id in self._waiting:
            released += self._release(task.id, status, owner)
        return released

    def _count_member(
        self, record_id: uuid.UUID, status: QueuedTaskStatus, owner: uuid.UUID | None
    ) -> list[QueuedTask]:
        batch = self._batches.get(record_id)
        if batch is None:
            return []
        if status is Q.COMPLETED:
            batch.succeeded += 1
        elif status is Q.FAILED:
            batch.failed += 1
        else:
            batch.cancelled += 1
        outcome = batch_outcome(batch) if batch.status is BatchStatus.RUNNING else None
        if outcome is None:
            return []
        batch.status, batch.finished_at_utc = outcome, self._now()
        return self._release(record_id, outcome.value, owner)

    def _count_run(
        self,
        task: QueuedTask,
        execution_time_ms: float,
        next_run: datetime | None,
        level: AuditLevel,
    ) -> None:
        """Count a recurring run and write its runs audit (status and error from the row).

        With a next run the series waits for it: WaitingQueue, scheduled at ``next_run``
        (the status audit keeps the run's own Completed or Failed row).
        """
        task.execution_time_ms = execution_time_ms
        task.current_run_count = min((task.current_run_count or 0) + 1, _RUN_COUNTER_MAX)
        task.next_run_utc = next_run
        if wants_runs_audit(level, task.status, task.exception):
            audit = RunsAudit(
                id=next(self._audit_ids),
                task_id=task.id,
                executed_at=self._now(),
                execution_time_ms=execution_time_ms,
                status=task.status,
                exception=task.exception,
            )
            self._runs_audits.setdefault(task.id, []).append(audit)
        if next_run is not None:
            task.status = Q.WAITING_QUEUE
            task.scheduled_execution_utc = next_run

    # -- dispatch and lookup ---------------------------------------------------------------
    async def persist(self, task: QueuedTask) -> None:
        """Insert a row (and its status audit unless it is WaitingQueue).

        The row object is kept (the caller hands it over: see ``TaskStorage.persist``).
        """
        if task.task_key is not None and task.task_key in self._keys:
            raise TaskKeyConflictError(task.task_key)
        if task.id in self._tasks:
            raise ValueError(f"A task with id {task.id} already exists.")
        row = _in_utc(task)
        self._tasks[row.id] = row
        if row.task_key is not None:
            self._keys[row.task_key] = row.id
        if row.parent_task_id is not None:
            self._children.setdefault(row.parent_task_id, []).append(row.id)
            if row.status is Q.WAITING_PARENT:
                self._waiting.setdefault(row.parent_task_id, []).append(row.id)
        if row.batch_id is not None or row.workflow_id is not None:
            for record_id in (row.batch_id, row.workflow_id):
                if record_id is not None:
                    self._members.setdefault(record_id, []).append(row.id)
        if row.status is not Q.WAITING_QUEUE and wants_status_audit(
            row.audit_level, row.status, row.exception
        ):
            self._audit(row.id, self._now(), row.status, row.exception)

    async def get(self, task_id: uuid.UUID) -> QueuedTask | None:
        """The row, or ``None``."""
        task = self._tasks.get(task_id)
        return None if task is None else task.copy()

    async def get_by_task_key(self, task_key: str) -> QueuedTask | None:
        """The row holding ``task_key``, or ``None``."""
        task_id = self._keys.get(task_key)
        return None if task_id is None else await self.get(task_id)

    async def update_task(self, task: QueuedTask, *, revive: bool = False) -> None:
        """Overwrite the definition columns (see the protocol)."""
        row = self._tasks.get(task.id)
        if row is None:
            raise TaskNotFoundError(task.id, "It cannot be updated.")
        new = _stored(task)
        if new.task_key != row.task_key:
            if new.task_key is not None:
                owner = self._keys.get(new.task_key)
                if owner is not None and owner != row.id:
                    raise TaskKeyConflictError(new.task_key)
                self._keys[new.task_key] = row.id
            if row.task_key is not None:
                self._keys.pop(row.task_key, None)
        for name in _DEFINITION_FIELDS:
            setattr(row, name, getattr(new, name))
        if revive and row.status is Q.CANCELLED:
            row.status = Q.WAITING_QUEUE
            row.current_run_count = 0
            row.exception = None

    async def remove(self, task_id: uuid.UUID) -> None:
        """Delete the row, its audits and logs."""
        task = self._tasks.pop(task_id, None)
        if task is None:
            return
        if task.task_key is not None and self._keys.get(task.task_key) == task_id:
            del self._keys[task.task_key]
        parent = task.parent_task_id
        siblings = None if parent is None else self._children.get(parent)
        if parent is not None and siblings is not None and task_id in siblings:
            siblings.remove(task_id)
            if not siblings:
                del self._children[parent]
        self._status_audits.pop(task_id, None)
        self._runs_audits.pop(task_id, None)
        self._logs.pop(task_id, None)

    async def retrieve_pending(
        self, last_created_at: datetime | None, last_id: uuid.UUID | None, take: int
    ) -> list[QueuedTask]:
        """Recoverable rows after the keyset ``(created_at_utc, id)``, ascending."""
        now = self._now()

        def keyset(task: QueuedTask) -> tuple[datetime, int]:
            return task.created_at_utc, task.id.int

        after = None
        if last_created_at is not None and last_id is not None:
            after = (_utc(last_created_at), last_id.int)
        candidates = (
            t
            for t in self._tasks.values()
            if (after is None or keyset(t) > after) and is_recoverable(t, now)
        )
        return [t.copy() for t in heapq.nsmallest(max(take, 0), candidates, key=keyset)]

    # -- status transitions ----------------------------------------------------------------
    async def set_queued(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark Queued."""
        self._transition(task_id, Q.QUEUED, None, audit_level)

    async def try_set_queued_if_recoverable(
        self, task_id: uuid.UUID, audit_level: AuditLevel, owner: uuid.UUID | None = None
    ) -> bool:
        """Compare-and-set to Queued; never revives a finished row (nor one of another
        owner, with ``owner``)."""
        task = self._tasks.get(task_id)
        if task is None or not is_recoverable(task, self._now()):
            return False
        if owner is not None and task.owner_node != owner:
            return False
        self._transition(task_id, Q.QUEUED, None, audit_level)
        return True

    async def set_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark InProgress."""
        self._transition(task_id, Q.IN_PROGRESS, None, audit_level)

    async def set_completed(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        audit_level: AuditLevel,
        result: str | None = None,
        *,
        owner: uuid.UUID | None = None,
        room: int | None = None,
    ) -> list[QueuedTask]:
        """Mark Completed with its duration and result; release its continuations,
        ``room`` of them handed to ``owner``."""
        task = self._transition(task_id, Q.COMPLETED, None, audit_level, execution_time_ms)
        if task is None:
            return []
        task.result = result
        return _handed(self._finished(task, owner), room)

    async def set_cancelled_by_user(self, task_id: uuid.UUID, audit_level: AuditLevel) -> int:
        """Mark Cancelled; its waiting continuations are cancelled."""
        task = self._transition(task_id, Q.CANCELLED, None, audit_level)
        return 0 if task is None else len(self._finished(task))

    async def set_cancelled_by_service(
        self, task_id: uuid.UUID, exception: str | None, audit_level: AuditLevel
    ) -> None:
        """Mark ServiceStopped."""
        self._transition(task_id, Q.SERVICE_STOPPED, exception, audit_level)

    async def set_status(
        self,
        task_id: uuid.UUID,
        status: QueuedTaskStatus,
        exception: str | None,
        audit_level: AuditLevel,
        execution_time_ms: float | None = None,
        *,
        owner: uuid.UUID | None = None,
        room: int | None = None,
    ) -> list[QueuedTask]:
        """Generic transition; a terminal status releases the continuations, ``room`` of
        them handed to ``owner``."""
        task = self._transition(task_id, status, exception, audit_level, execution_time_ms)
        return [] if task is None else _handed(self._finished(task, owner), room)

    # -- continuations ---------------------------------------------------------------------
    async def persist_continuation(self, task: QueuedTask) -> QueuedTaskStatus:
        """Insert a continuation, released or cancelled at once if its parent (a task or
        a batch) finished."""
        parent_id = task.parent_task_id
        if parent_id is None:
            raise ValueError("A continuation needs a parent_task_id.")
        parent = self._tasks.get(parent_id)
        batch = self._batches.get(parent_id)
        if parent is None and batch is None:
            raise TaskNotFoundError(parent_id, "A continuation needs its parent.")
        task.status = Q.WAITING_PARENT
        await self.persist(task)
        if parent is not None and parent.status.is_terminal:
            self._release(parent_id, parent.status)
        elif batch is not None and batch.status is not BatchStatus.RUNNING:
            self._release(parent_id, batch.status.value)
        return self._tasks[task.id].status

    async def released_children(self, parent_id: uuid.UUID) -> list[QueuedTask]:
        """Queued unowned continuations of ``parent_id``, oldest first."""
        rows = [
            t
            for t in self._tasks.values()
            if t.parent_task_id == parent_id and t.status is Q.QUEUED and t.owner_node is None
        ]
        rows.sort(key=lambda t: (t.created_at_utc, t.id.int))
        return [t.copy() for t in rows]

    # -- batches (BatchStore) --------------------------------------------------------------
    async def persist_unit(self, batches: Sequence[TaskBatch], tasks: Sequence[QueuedTask]) -> None:
        """Insert records and rows together: all or none."""
        ids = {t.id for t in tasks} | {b.id for b in batches}
        keys = [t.task_key for t in tasks if t.task_key is not None]
        if len(ids) < len(tasks) + len(batches) or any(i in self._tasks for i in ids):
            raise ValueError("A unit holds a task or batch id that already exists.")
        if any(b.id in self._batches for b in batches):
            raise ValueError("A unit holds a batch id that already exists.")
        for key in keys:
            if key in self._keys or keys.count(key) > 1:
                raise TaskKeyConflictError(key)
        for task in tasks:
            _utc(task.created_at_utc)  # refuse a naive time before changing anything
        for batch in batches:
            self._batches[batch.id] = dataclasses.replace(batch)
        for task in tasks:
            await self.persist(task)

    async def get_batch(self, batch_id: uuid.UUID) -> TaskBatch | None:
        """One record, or ``None``."""
        batch = self._batches.get(batch_id)
        return None if batch is None else dataclasses.replace(batch)

    async def list_batches(
        self,
        *,
        kinds: Sequence[str] = (),
        workflow_id: uuid.UUID | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[TaskBatch]:
        """Records newest first, of ``kinds`` (all when empty) or of one workflow."""
        wanted = {BatchKind(k) for k in kinds}
        found = [
            b
            for b in self._batches.values()
            if (not wanted or b.kind in wanted)
            and (workflow_id is None or b.workflow_id == workflow_id)
        ]
        found.sort(key=lambda b: (b.created_at_utc, b.id.int), reverse=True)
        return [dataclasses.replace(b) for b in found[offset : offset + max(limit, 0)]]

    async def batch_members(self, batch_id: uuid.UUID) -> list[QueuedTask]:
        """The rows counting in a record, in dispatch order."""
        rows = [self._tasks[i] for i in self._members.get(batch_id, ()) if i in self._tasks]
        rows.sort(key=lambda t: (t.created_at_utc, t.id.int))
        return [t.copy() for t in rows]

    async def continuations(self, parent_id: uuid.UUID, *, limit: int = 100) -> list[QueuedTask]:
        """The continuations of a task or a record in any status, oldest first."""
        rows = [self._tasks[i] for i in self._children.get(parent_id, ()) if i in self._tasks]
        rows.sort(key=lambda t: (t.created_at_utc, t.id.int))
        return [t.copy() for t in rows[: max(limit, 0)]]

    async def cancel_batch(self, batch_id: uuid.UUID) -> list[uuid.UUID] | None:
        """Cancel a Running record, its unfinished members and its waiting continuations;
        return the ids of the members it cancelled (see the protocol)."""
        batch = self._batches.get(batch_id)
        if batch is None:
            return None
        if batch.status is not BatchStatus.RUNNING:
            return []
        now = self._now()
        records = [batch]
        if batch.kind is BatchKind.WORKFLOW:
            records += [
                b
                for b in self._batches.values()
                if b.workflow_id == batch_id
                and b.status is BatchStatus.RUNNING
                and b.kind is BatchKind.GROUP
            ]
        for record in records:
            record.status, record.finished_at_utc = BatchStatus.CANCELLED, now
        cancelled: list[uuid.UUID] = []
        for member_id in list(self._members.get(batch_id, ())):
            member = self._tasks.get(member_id)
            if member is None or member.status.is_terminal:
                continue  # (a cancelled member's continuations may have been cancelled)
            cancelled.append(member_id)
            self._transition(member_id, Q.CANCELLED, None, member.audit_level)
            self._finished(member)
        for record in records:
            self._release(record.id, Q.CANCELLED)
        return cancelled

    async def retry_member(self, task_id: uuid.UUID) -> bool:
        """Requeue a Failed or Cancelled member in place (see the protocol)."""
        task = self._tasks.get(task_id)
        if task is None or (task.batch_id is None and task.workflow_id is None):
            return False
        records = [
            self._batches[r] for r in (task.batch_id, task.workflow_id) if r in self._batches
        ]
        refusal = member_retry_refusal(
            task.id,
            task.status.value,
            [(r.kind.value, r.id, r.status.value, bool(r.definition)) for r in records],
        )
        if refusal is not None:
            raise ValueError(refusal)
        counted = task.id in self._counted
        self._counted.discard(task.id)
        old = task.status
        task.status, task.exception, task.owner_node = Q.QUEUED, None, None
        if wants_status_audit(task.audit_level, Q.QUEUED, None):
            self._audit(task.id, self._now(), Q.QUEUED, None)
        if counted:
            for record in records:
                self._uncount(record, old)
        self._revive(task.id, old.value)
        return True

    def _uncount(self, record: TaskBatch, status: QueuedTaskStatus) -> None:
        if status is Q.FAILED:
            record.failed -= 1
        else:
            record.cancelled -= 1
        if record.status is not BatchStatus.RUNNING:
            finished = record.status
            record.status, record.finished_at_utc = BatchStatus.RUNNING, None
            self._revive(record.id, finished.value)

    def _revive(self, parent_id: uuid.UUID, parent_status: str) -> None:
        """The continuations that ``parent_id`` ending ``parent_status`` skipped wait again
        (and those their cancellation skipped, and the records they finished)."""
        reason = skip_reason(parent_id, parent_status)
        for child in list(self._tasks.values()):
            if child.parent_task_id != parent_id or child.status is not Q.CANCELLED:
                continue
            if child.exception != reason:
                continue
            child.status, child.exception = Q.WAITING_PARENT, None
            self._waiting.setdefault(parent_id, []).append(child.id)
            if wants_status_audit(child.audit_level, Q.WAITING_PARENT, None):
                self._audit(child.id, self._now(), Q.WAITING_PARENT, None)
            if child.id in self._counted:
                self._counted.discard(child.id)
                for record_id in (child.batch_id, child.workflow_id):
                    if record_id in self._batches:
                        self._uncount(self._batches[record_id], Q.CANCELLED)
            self._revive(child.id, Q.CANCELLED.value)

    # -- recurring accounting --------------------------------------------------------------
    async def get_current_run_count(self, task_id: uuid.UUID) -> int:
        """Runs so far (0 if the row is missing)."""
        task = self._tasks.get(task_id)
        return 0 if task is None else task.current_run_count or 0

    async def update_current_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        """Count a failed run; with a next run the series waits for it (WaitingQueue)."""
        task = self._existing(task_id)
        self._count_run(task, execution_time_ms, _utc(next_run), audit_level)

    async def complete_recurring_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        """Completed (audited), count the run; then WaitingQueue if there is a next run."""
        task = self._existing(task_id)
        next_run = _utc(next_run)  # refuse a naive time before changing anything
        self._transition(task_id, Q.COMPLETED, None, audit_level, execution_time_ms)
        self._count_run(task, execution_time_ms, next_run, audit_level)

    async def set_recurring_series_completed(
        self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
    ) -> None:
        """Completed and no next run, without counting a run."""
        self._existing(task_id)
        self._transition(task_id, Q.COMPLETED, None, audit_level, execution_time_ms, True)

    async def set_recurring_task_poisoned(
        self, task_id: uuid.UUID, exception: str, audit_level: AuditLevel
    ) -> None:
        """Failed and no next run (terminal)."""
        task = self._transition(task_id, Q.FAILED, exception, audit_level, None, True)
        if task is not None:
            self._finished(task)

    async def increment_recovery_failure(self, task_id: uuid.UUID) -> int:
        """Count a failed recovery; return the new count (0 if the row is missing)."""
        task = self._tasks.get(task_id)
        if task is None:
            return 0
        task.recovery_dispatch_failure_count += 1
        return task.recovery_dispatch_failure_count

    async def clear_recovery_failure(self, task_id: uuid.UUID) -> None:
        """Reset the failed-recovery counter."""
        task = self._tasks.get(task_id)
        if task is not None:
            task.recovery_dispatch_failure_count = 0

    # -- logs and audits -------------------------------------------------------------------
    async def save_execution_logs(
        self, task_id: uuid.UUID, logs: Sequence[TaskExecutionLog]
    ) -> None:
        """Append captured logs (ignored when the task is gone)."""
        if logs and task_id in self._tasks:
            saved = logs.entries if isinstance(logs, ExecutionLogs) else list(logs)
            self._logs.setdefault(task_id, []).append(saved)

    def _filtered_logs(self, task_id: uuid.UUID, level: str | None) -> Iterator[TaskExecutionLog]:
        """A task's logs in order (of ``level``), each row built when it is reached."""
        wanted = None if level is None else level.lower()
        for saved in self._logs.get(task_id, ()):
            logs = ExecutionLogs(task_id, saved) if isinstance(saved, tuple) else saved
            if wanted is None:
                yield from logs
            else:
                yield from (log for log in logs if log.level.lower() == wanted)

    async def get_execution_logs(
        self,
        task_id: uuid.UUID,
        skip: int = 0,
        take: int | None = None,
        level: str | None = None,
    ) -> list[TaskExecutionLog]:
        """Captured logs in order, optionally paged and filtered by level."""
        logs = self._filtered_logs(task_id, level)
        return list(itertools.islice(logs, skip, None if take is None else skip + take))

    async def count_execution_logs(self, task_id: uuid.UUID, level: str | None = None) -> int:
        """Number of captured logs."""
        if level is None:
            return sum(len(saved) for saved in self._logs.get(task_id, ()))
        return sum(1 for _ in self._filtered_logs(task_id, level))

    async def get_status_audits(self, task_id: uuid.UUID) -> list[StatusAudit]:
        """Status history, oldest first."""
        return [
            StatusAudit(
                id=audit_id, task_id=task_id, updated_at_utc=at, new_status=status, exception=exc
            )
            for audit_id, at, status, exc in self._status_audits.get(task_id, [])
        ]

    async def get_runs_audits(self, task_id: uuid.UUID) -> list[RunsAudit]:
        """Run history, oldest first."""
        return list(self._runs_audits.get(task_id, []))

    # -- queue state -----------------------------------------------------------------------
    async def get_paused_queues(self) -> set[str]:
        """Paused queue names."""
        return set(self._paused)

    async def set_queue_paused(self, queue_name: str, paused: bool) -> None:
        """Pause or resume a queue (kept for later hosts in this process)."""
        if paused:
            self._paused.add(queue_name)
        else:
            self._paused.discard(queue_name)

    # -- cluster (hosts sharing this storage live in this process) -------------------------
    async def register_node(self, node: NodeInfo) -> None:
        """Add a node."""
        self._nodes[node.id] = dataclasses.replace(node, queues=tuple(node.queues))

    async def renew_lease(self, node_id: uuid.UUID, now: datetime, expires: datetime) -> bool:
        """Extend a node's lease if it is still valid at ``now``."""
        node = self._nodes.get(node_id)
        if node is None or not node.is_alive(_utc(now)):
            return False
        node.last_heartbeat_utc = _utc(now)
        node.lease_expires_utc = _utc(expires)
        return True

    async def deregister_node(self, node_id: uuid.UUID) -> int:
        """Release the node's recoverable rows and forget it."""
        now = self._now()
        released = 0
        for task in self._tasks.values():
            if task.owner_node == node_id and is_recoverable(task, now):
                task.owner_node = None
                released += 1
        self._nodes.pop(node_id, None)
        return released

    async def list_nodes(self) -> list[NodeInfo]:
        """Every node, oldest first."""
        nodes = sorted(self._nodes.values(), key=lambda n: (n.started_at_utc, n.id.int))
        return [dataclasses.replace(n) for n in nodes]

    async def remove_dead_nodes(self, expired_before: datetime) -> int:
        """Forget nodes long dead that own no recoverable row."""
        now = self._now()
        owners = {t.owner_node for t in self._tasks.values() if is_recoverable(t, now)}
        dead = [
            n.id
            for n in self._nodes.values()
            if n.lease_expires_utc < expired_before and n.id not in owners
        ]
        for node_id in dead:
            del self._nodes[node_id]
        return len(dead)

    def _orphaned(self, task: QueuedTask, node_id: uuid.UUID, now: datetime) -> bool:
        """Whether ``claim_orphans`` may give ``task`` to ``node_id``: no owner, or another
        registered node whose lease expired (an owner that is not registered at all is
        left alone, as the SQL storages do: finding those would scan history)."""
        owner = task.owner_node
        if owner is None:
            return True
        node = self._nodes.get(owner)
        return owner != node_id and node is not None and not node.is_alive(now)

    async def claim_orphans(
        self,
        node_id: uuid.UUID,
        now: datetime,
        take: int,
        due_before: datetime | None = None,
        scheduled_after: datetime | None = None,
    ) -> list[QueuedTask]:
        """Take recoverable rows without a live owner, oldest first."""
        check_claim_window(due_before, scheduled_after)
        now, due_before, later = _utc(now), _utc(due_before), _utc(scheduled_after)
        found = [
            t
            for t in self._tasks.values()
            if is_recoverable(t, now)
            and self._orphaned(t, node_id, now)
            and (
                due_before is None
                or t.scheduled_execution_utc is None
                or t.scheduled_execution_utc <= due_before
            )
            and (
                later is None
                or (t.scheduled_execution_utc is not None and t.scheduled_execution_utc > later)
            )
        ]
        claimed = heapq.nsmallest(max(take, 0), found, key=lambda t: (t.created_at_utc, t.id.int))
        for task in claimed:
            task.owner_node = node_id
        return [t.copy() for t in claimed]

    async def claim_task(self, task_id: uuid.UUID, node_id: uuid.UUID, now: datetime) -> bool:
        """Own one row unless a live node owns it and may run it."""
        task = self._tasks.get(task_id)
        if task is None:
            return False
        now = _utc(now)
        owner = task.owner_node
        node = None if owner is None else self._nodes.get(owner)
        live = node is not None and node.is_alive(now)
        if owner != node_id and live and is_recoverable(task, now):
            return False
        task.owner_node = node_id
        return True

    async def cancelled_among(self, task_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these rows are Cancelled."""
        return {
            tid
            for tid in task_ids
            if (task := self._tasks.get(tid)) is not None and task.status is Q.CANCELLED
        }

    # -- monitoring: plain filters and sorts over every row --------------------------------
    def _created_since(self, since: datetime | None) -> list[QueuedTask]:
        since = _utc(since)
        return [t for t in self._tasks.values() if since is None or t.created_at_utc >= since]

    async def query_tasks(self, query: TaskQuery) -> TaskPage:
        """Filter, sort and page; rows without a value of the sort field come last."""
        rows = [t for t in self._created_since(query.created_after) if _matches(t, query)]
        value = _SORT_VALUES[query.sort_by]

        def tiebreak(task: QueuedTask) -> tuple[datetime, int]:
            return (task.created_at_utc, task.id.int)

        present = [t for t in rows if value(t) is not None]
        absent = [t for t in rows if value(t) is None]
        present.sort(key=lambda t: (value(t), *tiebreak(t)), reverse=query.descending)
        absent.sort(key=tiebreak, reverse=query.descending)
        page = max(1, query.page)
        size = max(1, query.page_size)
        start = (page - 1) * size
        items = [t.copy() for t in (present + absent)[start : start + size]]
        return TaskPage(items=items, total_count=len(rows), page=page, page_size=size)

    async def count_by_status(
        self, created_since: datetime | None = None
    ) -> dict[QueuedTaskStatus, int]:
        """Tasks per status."""
        out: dict[QueuedTaskStatus, int] = {}
        for task in self._created_since(created_since):
            out[task.status] = out.get(task.status, 0) + 1
        return out

    async def count_by_queue_and_status(
        self, created_since: datetime | None = None
    ) -> dict[tuple[str, QueuedTaskStatus], int]:
        """Tasks per (queue, status)."""
        out: dict[tuple[str, QueuedTaskStatus], int] = {}
        for task in self._created_since(created_since):
            key = (task.queue_name, task.status)
            out[key] = out.get(key, 0) + 1
        return out


def _condition(child: QueuedTask) -> ContinueWhen:
    return ContinueWhen(child.continue_when or ContinueWhen.SUCCEEDED.value)


def _handed(released: list[QueuedTask], room: int | None) -> list[QueuedTask]:
    """Copies of the rows a release made Queued, after giving back (no owner) those beyond
    the first ``room`` (``None``: keep all)."""
    if not released:
        return []
    for row in released[room:] if room is not None else ():
        row.owner_node = None
    return [row.copy() for row in released]


def _matches(task: QueuedTask, q: TaskQuery) -> bool:
    """Whether a row passes the query's filters (``created_after`` is applied before)."""
    before = _utc(q.created_before)
    needle = q.task_type_contains.lower() if q.task_type_contains else None
    search = q.search.lower() if q.search else None
    return (
        (q.statuses is None or task.status in q.statuses)
        and (needle is None or needle in task.type.lower())
        and (q.queue_name is None or task.queue_name == q.queue_name)
        and (q.is_recurring is None or task.is_recurring == q.is_recurring)
        and (before is None or task.created_at_utc < before)
        and (
            search is None
            or any(
                search in text.lower() for text in (task.type, task.handler, task.task_key or "")
            )
        )
    )


_SORT_VALUES: dict[SortField, Callable[[QueuedTask], Any]] = {
    SortField.CREATED_AT: lambda t: t.created_at_utc,
    SortField.LAST_EXECUTION: lambda t: t.last_execution_utc,
    SortField.SCHEDULED_EXECUTION: lambda t: t.scheduled_execution_utc,
    SortField.STATUS: lambda t: t.status.value,
    SortField.TYPE: lambda t: t.type,
    SortField.QUEUE_NAME: lambda t: t.queue_name,
}
