"""The storage protocol every backend implements (memory, SQLite, SQL Server, PostgreSQL, MySQL).

Contract notes:

- Every method raises on a storage error; the engine decides whether to retry, log or
  fail (status writes are retried and logged; a failed ``persist`` fails the dispatch).
- ``persist`` commits before it returns. A row persisted with a status other than
  WaitingQueue also gets that status's audit row (per its audit level).
- ``try_set_queued_if_recoverable`` is a compare-and-set: it never revives a finished row.
- ``set_status`` stamps ``last_execution_utc`` on Completed, Failed and ServiceStopped only.
- Between the runs of a recurring series its row is WaitingQueue with
  ``scheduled_execution_utc = next_run_utc =`` the next run: ``complete_recurring_run`` and
  ``update_current_run`` audit the run as it ended (Completed, or the Failed written just
  before), then leave the row waiting. After the last run (``next_run=None``) it stays
  Completed (or Failed).
- Status-audit and runs-audit rows follow :func:`~evertask.storage.models.wants_status_audit`
  and :func:`~evertask.storage.models.wants_runs_audit`.
- Monitoring methods run server-side; no caller ever loads a whole table.
- Cluster: every host registers a node with a lease it renews (heartbeats). A row's
  ``owner_node`` is the node that will run it (stamped by the INSERT of the dispatching
  node, or by a claim). A live node's rows are never taken: ``claim_orphans`` and
  ``claim_task`` take only rows without an owner or whose owner's lease expired, and
  concurrent claimers never get the same row.
- Continuations (docs/workflows.md): a row persisted WaitingParent names its parent
  (``parent_task_id``) and its condition (``continue_when``). The write that gives the
  parent a terminal status (Completed, Failed, Cancelled: ``set_completed``,
  ``set_status``, ``set_cancelled_by_user``, ``set_recurring_task_poisoned``) releases its
  WaitingParent children in the same transaction: those whose condition matches become
  Queued, the others Cancelled with the reason. ``set_completed`` and ``set_status`` take
  an ``owner`` (the writing node, when it takes work now) and its ``room`` (how many rows
  its queues should take, as its claims would): the release hands the first ``room`` of
  the rows that became Queued to that node, which adopts them as it adopts the rows it
  claims; the others, and all of them without an owner, have none (any worker node may
  claim them). Those two writes return every row that became Queued, as stored by that
  transaction (each parent's oldest first: the owner runs its rows without another read);
  a node that dies before running its rows leaves rows of a dead node, which the claims
  take. ``persist_continuation`` serializes with that release on the parent's row, so a
  child is released exactly once.
- Batches (:class:`BatchStore`, docs/workflows.md): a row with ``batch_id`` or
  ``workflow_id`` counts in those records' progress. The first terminal write of such a
  row adds it to their counters in the same transaction (once: a second terminal write of
  the row counts nothing), and the write that makes a record's counters reach its total
  gives the record its outcome (a compare-and-set on its Running status, so it happens
  once whichever node writes) and releases the continuations waiting for the record
  (``parent_task_id`` is the batch id) as a task's terminal write releases its own (with
  the same ``owner`` and ``room``, returned with the others). Continuations cancelled by a
  release count as Cancelled members.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from evertask_abstractions import AuditLevel, QueuedTaskStatus

from .models import (
    NodeInfo,
    QueuedTask,
    RunsAudit,
    StatusAudit,
    TaskBatch,
    TaskExecutionLog,
    TaskPage,
    TaskQuery,
)

__all__ = [
    "FAST_PATHS_ENV",
    "BatchStore",
    "ConcurrencySlotStore",
    "NotifyingStorage",
    "PipelinedStorage",
    "RateLimitStore",
    "TaskStorage",
    "check_claim_window",
    "fast_paths_enabled",
]

FAST_PATHS_ENV = "EVERTASK_FAST_PATHS"
"""Set to ``0`` to switch off every declared fast path: the engine's use of
:class:`PipelinedStorage`, and the SQLite storage's commits on the event loop. Each is a
subset of the canonical path; the test suite runs the engine tests a second time with them
off (docs/storage.md)."""


def fast_paths_enabled() -> bool:
    """Whether declared fast paths are used (see :data:`FAST_PATHS_ENV`)."""
    return os.environ.get(FAST_PATHS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def check_claim_window(due_before: object, scheduled_after: object) -> None:
    """``claim_orphans`` takes ``due_before`` or ``scheduled_after``, not both (the rows
    due now, or those scheduled later): ``ValueError`` otherwise."""
    if due_before is not None and scheduled_after is not None:
        raise ValueError(
            "claim_orphans() takes due_before or scheduled_after, not both: claim the due "
            "rows and the later ones in two calls."
        )


@runtime_checkable
class TaskStorage(Protocol):
    """Asynchronous persistence of task rows, their audits and their execution logs."""

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and, when configured, apply migrations. Called once at host start."""
        ...

    async def close(self) -> None:
        """Flush pending writes and release connections. Called once at host stop."""
        ...

    # -- dispatch and lookup ---------------------------------------------------------------
    async def persist(self, task: QueuedTask) -> None:
        """Insert a new row; raise ``TaskKeyConflictError`` if its task key is taken.

        The storage may keep ``task``; the caller must not modify it afterwards.
        """
        ...

    async def get(self, task_id: uuid.UUID) -> QueuedTask | None:
        """The row with this id, or ``None``."""
        ...

    async def get_by_task_key(self, task_key: str) -> QueuedTask | None:
        """The row holding this task key (exact, case-sensitive), or ``None``."""
        ...

    async def update_task(self, task: QueuedTask, *, revive: bool = False) -> None:
        """Overwrite the definition columns of an existing row (same id).

        Written: type, request, handler, scheduled_execution_utc, is_recurring,
        recurring_task, recurring_info, max_runs, run_until, next_run_utc, queue_name,
        task_key, audit_level. Status and run count are kept, unless ``revive`` is set and
        the row is Cancelled: then it becomes WaitingQueue with run count 0 and no exception.
        """
        ...

    async def remove(self, task_id: uuid.UUID) -> None:
        """Delete a row with its audits and logs."""
        ...

    async def retrieve_pending(
        self, last_created_at: datetime | None, last_id: uuid.UUID | None, take: int
    ) -> list[QueuedTask]:
        """Recoverable rows after the keyset ``(created_at_utc, id)``, ascending (``take`` max)."""
        ...

    # -- status transitions ----------------------------------------------------------------
    async def set_queued(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Unconditionally mark Queued."""
        ...

    async def try_set_queued_if_recoverable(
        self, task_id: uuid.UUID, audit_level: AuditLevel, owner: uuid.UUID | None = None
    ) -> bool:
        """Mark Queued only if the row is recoverable now (and, with ``owner``, owned by that
        node); return whether it was."""
        ...

    async def set_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark InProgress."""
        ...

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
        """Mark a one-shot Completed with its duration and its JSON ``result`` (``None``:
        none), and release its continuations in the same transaction, the first ``room``
        of them (``None``: all) handed to ``owner`` (``None``: no owner); return the rows
        that became Queued (see the notes above)."""
        ...

    async def set_cancelled_by_user(self, task_id: uuid.UUID, audit_level: AuditLevel) -> int:
        """Mark Cancelled (terminal); its waiting continuations are cancelled too."""
        ...

    async def set_cancelled_by_service(
        self, task_id: uuid.UUID, exception: str | None, audit_level: AuditLevel
    ) -> None:
        """Mark ServiceStopped (the task resumes at the next start)."""
        ...

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
        """Generic transition; ``exception=None`` clears the stored exception. A terminal
        status releases the row's continuations in the same transaction, the first
        ``room`` of them (``None``: all) handed to ``owner`` (``None``: no owner); return
        the rows that became Queued (see the notes above)."""
        ...

    # -- continuations ---------------------------------------------------------------------
    async def persist_continuation(self, task: QueuedTask) -> QueuedTaskStatus:
        """Insert a continuation (``parent_task_id`` and ``continue_when`` set, status
        WaitingParent) in one transaction with a locking read of its parent, and return
        the status it was stored with: WaitingParent while the parent has not finished;
        Queued (without an owner) or Cancelled (with the reason) when the parent had
        already finished. The parent may be a task or, on a :class:`BatchStore`, a batch
        record (finished: not Running). Raises ``TaskNotFoundError`` when the parent does
        not exist.
        """
        ...

    async def released_children(self, parent_id: uuid.UUID) -> list[QueuedTask]:
        """The continuations of ``parent_id`` that are Queued and have no owner (released,
        not claimed yet), oldest first."""
        ...

    # -- recurring accounting --------------------------------------------------------------
    async def get_current_run_count(self, task_id: uuid.UUID) -> int:
        """Real executions so far (0 if the row is missing)."""
        ...

    async def update_current_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        """After a failed recurring run (already marked Failed): count it, write its runs audit
        (status and error from the row), set the next run; with a next run, the row becomes
        WaitingQueue scheduled at it and keeps the error text. Raises ``KeyError`` if missing.
        """
        ...

    async def complete_recurring_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        """After a successful recurring run, atomically: Completed (stamped, status audit),
        count it, runs audit, next run; with a next run, the row becomes WaitingQueue
        scheduled at it. Raises ``KeyError`` if missing."""
        ...

    async def set_recurring_series_completed(
        self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
    ) -> None:
        """End a series without counting a run: Completed and no next run."""
        ...

    async def set_recurring_task_poisoned(
        self, task_id: uuid.UUID, exception: str, audit_level: AuditLevel
    ) -> None:
        """Terminally fail a row that cannot be loaded: Failed and no next run."""
        ...

    async def increment_recovery_failure(self, task_id: uuid.UUID) -> int:
        """Count one failed recovery attempt; return the new count."""
        ...

    async def clear_recovery_failure(self, task_id: uuid.UUID) -> None:
        """Reset the failed-recovery counter."""
        ...

    # -- execution logs and audits ---------------------------------------------------------
    async def save_execution_logs(
        self, task_id: uuid.UUID, logs: Sequence[TaskExecutionLog]
    ) -> None:
        """Insert the captured log records of one execution (no-op when empty). The engine
        passes an :class:`~evertask.storage.ExecutionLogs`: a sequence whose rows
        are built as they are read (each read builds equal rows)."""
        ...

    async def get_execution_logs(
        self,
        task_id: uuid.UUID,
        skip: int = 0,
        take: int | None = None,
        level: str | None = None,
    ) -> list[TaskExecutionLog]:
        """Captured logs of a task in order, optionally paged and filtered by level."""
        ...

    async def count_execution_logs(self, task_id: uuid.UUID, level: str | None = None) -> int:
        """How many captured logs a task has (optionally of one level)."""
        ...

    async def get_status_audits(self, task_id: uuid.UUID) -> list[StatusAudit]:
        """Status history of a task, oldest first."""
        ...

    async def get_runs_audits(self, task_id: uuid.UUID) -> list[RunsAudit]:
        """Run history of a recurring task, oldest first."""
        ...

    # -- queue state -----------------------------------------------------------------------
    async def get_paused_queues(self) -> set[str]:
        """Names of the queues paused by an operator (pausing survives restarts)."""
        ...

    async def set_queue_paused(self, queue_name: str, paused: bool) -> None:
        """Persist that a queue is paused (or resumed)."""
        ...

    # -- cluster ---------------------------------------------------------------------------
    async def register_node(self, node: NodeInfo) -> None:
        """Insert a node's row (a new id at every start)."""
        ...

    async def renew_lease(self, node_id: uuid.UUID, now: datetime, expires: datetime) -> bool:
        """Heartbeat: if the node's lease is still valid at ``now``, extend it to ``expires``.

        Returns ``False`` when the row is missing or its lease had expired: other nodes may
        have taken its rows, so the node must not go on as before.
        """
        ...

    async def deregister_node(self, node_id: uuid.UUID) -> int:
        """A graceful stop: release the node's recoverable rows (no owner: any node may
        claim them at once) and delete its row; return how many rows were released."""
        ...

    async def list_nodes(self) -> list[NodeInfo]:
        """Every registered node, alive or not, oldest first."""
        ...

    async def remove_dead_nodes(self, expired_before: datetime) -> int:
        """Delete the rows of nodes whose lease expired before ``expired_before`` and that
        own no recoverable row; return how many were deleted."""
        ...

    async def claim_orphans(
        self,
        node_id: uuid.UUID,
        now: datetime,
        take: int,
        due_before: datetime | None = None,
        scheduled_after: datetime | None = None,
    ) -> list[QueuedTask]:
        """Take up to ``take`` recoverable rows that have no owner or whose owner's lease
        expired at ``now`` (never ``node_id``'s own), make ``node_id`` their owner and
        return them in ``(created_at_utc, id)`` order. With ``due_before``, only rows due by
        then (no scheduled time, or scheduled at or before it); with ``scheduled_after``,
        only rows scheduled after it (not due yet); not both (``ValueError``, see
        :func:`check_claim_window`). Concurrent claimers never get the same row."""
        ...

    async def claim_task(self, task_id: uuid.UUID, node_id: uuid.UUID, now: datetime) -> bool:
        """Make ``node_id`` the owner of one row if it has no owner, is already its own, its
        owner's lease expired at ``now``, or it is not recoverable (finished or cancelled:
        nobody runs it); return whether ``node_id`` owns it now (``False``: no such row, or a
        live node owns it and may run it)."""
        ...

    async def cancelled_among(self, task_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these rows are Cancelled (a node learns of cancels made elsewhere)."""
        ...

    # -- monitoring ------------------------------------------------------------------------
    async def query_tasks(self, query: TaskQuery) -> TaskPage:
        """A filtered, sorted page of tasks and the total number of matches."""
        ...

    async def count_by_status(
        self, created_since: datetime | None = None
    ) -> dict[QueuedTaskStatus, int]:
        """Number of tasks per status (optionally only those created since a time)."""
        ...

    async def count_by_queue_and_status(
        self, created_since: datetime | None = None
    ) -> dict[tuple[str, QueuedTaskStatus], int]:
        """Number of tasks per (queue, status)."""
        ...


@runtime_checkable
class PipelinedStorage(TaskStorage, Protocol):
    """Optional: a storage whose commits take a round trip lets InProgress overlap the run.

    The engine runs the handler at once and queues the InProgress write with
    :meth:`begin_in_progress`: at once when the audit level keeps an InProgress audit row
    (and for recurring runs), otherwise at the event loop's next turn, and only if the run
    is still going then (a handler that never waited writes no InProgress at all). Before
    it writes the outcome it either withdraws a queued write (when no transaction has taken
    it yet: the outcome replaces it, carrying its audit row, and recovery treats Queued and
    InProgress rows alike) or awaits its commit, so the statuses of a task are always
    written in order.
    """

    def begin_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> Awaitable[None]:
        """Queue the InProgress write; the result completes when it is committed."""
        ...

    def withdraw_in_progress(self, pending: Awaitable[None], audit_level: AuditLevel) -> bool:
        """Take back a queued InProgress write nothing has started; ``True`` if withdrawn."""
        ...


@runtime_checkable
class NotifyingStorage(TaskStorage, Protocol):
    """Optional: a storage that can wake the other nodes at once (PostgreSQL's
    LISTEN/NOTIFY). Nodes poll anyway; a notice only makes them act sooner."""

    async def listen(self, on_notice: Callable[[str], None]) -> None:
        """Receive the notices of every node on this database (idempotent; reconnects a
        lost listening connection)."""
        ...

    async def notify(self, notice: str) -> None:
        """Send a short notice to every listening node (it stops listening when closed)."""
        ...


@runtime_checkable
class RateLimitStore(Protocol):
    """Optional: rate-limit budgets shared by every node on the database (the SQL storages).

    A bucket is one GCRA theoretical arrival time (TAT, integer microseconds since the
    epoch) per scope (the SHA-256 of a task type and a key). The limiter computes locally
    and writes with a compare-and-set (:class:`~evertask.cluster_limits.StorageKeyedRateLimiter`).
    """

    async def read_rate_bucket(self, scope: str) -> int | None:
        """The bucket's TAT, or ``None`` when it does not exist."""
        ...

    async def swap_rate_bucket(
        self, scope: str, expected: int | None, tat: int, now: datetime
    ) -> bool:
        """Set the TAT to ``tat`` if it is still ``expected`` (``None``: insert it if the
        bucket does not exist); ``False`` when another writer came first."""
        ...

    async def sweep_rate_buckets(self, idle_before: int) -> int:
        """Delete buckets whose TAT is before ``idle_before``; return how many."""
        ...


@runtime_checkable
class ConcurrencySlotStore(Protocol):
    """Optional: ``max_concurrency`` permits shared by every node on the database.

    A scope (a handler) has ``limit`` slots; a slot is free when no node holds it or its
    holder's lease has ended (a dead node's permits come back by themselves).
    """

    async def acquire_concurrency_slot(
        self, scope: str, limit: int, node_id: uuid.UUID, now: datetime
    ) -> int | None:
        """Take a free slot for ``node_id``; its number, or ``None`` when all are held."""
        ...

    async def release_concurrency_slot(self, scope: str, slot: int, node_id: uuid.UUID) -> None:
        """Give a slot back (no-op unless ``node_id`` holds it)."""
        ...

    async def release_node_slots(self, node_id: uuid.UUID) -> int:
        """Give back every slot ``node_id`` holds; return how many."""
        ...


@runtime_checkable
class BatchStore(Protocol):
    """A storage that keeps batches and workflows (the ``TaskBatches`` records)."""

    async def persist_unit(self, batches: Sequence[TaskBatch], tasks: Sequence[QueuedTask]) -> None:
        """Insert ``batches`` and ``tasks`` in one transaction: all or none. A task's
        ``parent_task_id`` names a task or a batch of the same unit; the records' totals
        count their members in ``tasks``."""
        ...

    async def get_batch(self, batch_id: uuid.UUID) -> TaskBatch | None:
        """One record, or ``None``."""
        ...

    async def list_batches(
        self,
        *,
        kinds: Sequence[str] = (),
        workflow_id: uuid.UUID | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[TaskBatch]:
        """Records, newest first: of the given kinds (all when empty), or those of one
        workflow (its groups and compensations)."""
        ...

    async def batch_members(self, batch_id: uuid.UUID) -> list[QueuedTask]:
        """The rows counting in a record (a workflow: its steps), in dispatch order."""
        ...

    async def retry_member(self, task_id: uuid.UUID) -> bool:
        """Requeue a Failed or Cancelled member of a batch or workflow in place, in one
        transaction: the row becomes Queued without an owner, its records stop counting it
        (a finished record is Running again), and the continuations its end skipped wait
        again (transitively, with those skipped by the records it had finished). ``False``
        when the row is not a member (retry it as a new task); ``ValueError`` (with the
        reason) when it is a member that cannot be retried in place: not Failed or
        Cancelled, its batch was cancelled, or its saga failed (compensations dispatched).
        """
        ...

    async def continuations(self, parent_id: uuid.UUID, *, limit: int = 100) -> list[QueuedTask]:
        """The rows dispatched to continue ``parent_id`` (a task or a record: their
        ``parent_task_id``), in any status (waiting, released, skipped), oldest first, at
        most ``limit`` (for the monitoring API)."""
        ...

    async def cancel_batch(self, batch_id: uuid.UUID) -> list[uuid.UUID] | None:
        """In one transaction: mark a Running record Cancelled (and a workflow's Running
        groups), write Cancelled on each of its members that has not finished (running
        ones too, as ``set_cancelled_by_user`` does: their nodes stop them), cancel their
        waiting continuations and those waiting for the record. Returns the ids of the
        members it cancelled, an empty list when the record had finished, ``None`` when
        there is no such record."""
        ...
