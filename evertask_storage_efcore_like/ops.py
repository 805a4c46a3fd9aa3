"""Write operations as plain data plus their SQL steps, independent of any driver.

Each operation's :meth:`Op.steps` is a generator that yields :class:`Step` requests
(a statement name, its parameters, what result is wanted) and receives each step's
result. Executors drive the same generators synchronously (sqlite3 in aiosqlite's
thread, SQLAlchemy under ``run_sync``) or asynchronously (asyncpg), so the logic of
every write exists once. A generator *returns* the operation's outcome; an expected
failure (a missing row where the contract says raise) is returned as an exception
instance, database errors propagate.

Operations and steps are built once per write and never changed, but they are not
``frozen`` dataclasses: a frozen dataclass sets each field through
``object.__setattr__``, which made a status write's operation eight times as slow to
build (1.9 µs against 0.23 µs for its 13 fields), and every task builds several.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, ClassVar

from evertask.storage.models import (
    QueuedTask,
    TaskBatch,
    TaskExecutionLog,
    member_retry_refusal,
    skip_reason,
    wants_status_audit,
)
from evertask_abstractions import (
    BatchKind,
    BatchStatus,
    ContinueWhen,
    QueuedTaskStatus,
    TaskNotFoundError,
)

from .rows import batch_params, task_params, to_task

__all__ = [
    "UPDATE_ATTRIBUTES",
    "CancelBatchOp",
    "Op",
    "PauseQueueOp",
    "PersistContinuationOp",
    "PersistOp",
    "PersistUnitOp",
    "RecoveryCounterOp",
    "RemoveOp",
    "RetryMemberOp",
    "RunOp",
    "RunsAuditMode",
    "SaveLogsOp",
    "Step",
    "StepGen",
    "StepMode",
    "TransitionOp",
    "TryQueuedOp",
    "UpdateTaskOp",
    "drive",
    "drive_async",
    "finish_steps",
    "waves",
]

_COMPLETED = QueuedTaskStatus.COMPLETED.value
_QUEUED = QueuedTaskStatus.QUEUED.value
_IN_PROGRESS = QueuedTaskStatus.IN_PROGRESS.value
_WAITING_QUEUE = QueuedTaskStatus.WAITING_QUEUE.value


class StepMode(IntEnum):
    """What a step returns to its generator."""

    EXEC = 0  # the affected row count
    MANY = 1  # executemany; returns None
    SCALAR = 2  # first column of the first row, or None
    ROWS = 3  # every row, as tuples


@dataclass(slots=True)
class Step:
    """One statement execution requested by an operation."""

    name: str
    params: Any  # a mapping, or a list of mappings for MANY
    mode: StepMode = StepMode.EXEC


StepGen = Generator[Step, Any, Any]


def _status_audit(
    task_id: uuid.UUID, ts: datetime, status: str, exception: str | None = None
) -> Step:
    """The step inserting one ``StatusAudit`` row."""
    return Step(
        "insert_status_audit", {"id": task_id, "ts": ts, "status": status, "exception": exception}
    )


def drive(gen: StepGen, run: Callable[[Step], Any], first: Step | None = None) -> Any:
    """Run an operation's steps with a synchronous step runner; return its outcome.
    ``first``: the step ``gen`` has already yielded, to run on from."""
    try:
        step = next(gen) if first is None else first
        while True:
            step = gen.send(run(step))
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()


async def drive_async(gen: StepGen, run: Callable[[Step], Awaitable[Any]]) -> Any:
    """Run an operation's steps with an asynchronous step runner; return its outcome."""
    try:
        step = next(gen)
        while True:
            step = gen.send(await run(step))
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()


_CANCELLED = QueuedTaskStatus.CANCELLED.value
_FAILED = QueuedTaskStatus.FAILED.value
_TERMINAL = {s.value for s in QueuedTaskStatus if s.is_terminal}
# per terminal status of a parent: the ContinueWhen names whose children run
_RUNS: dict[str, tuple[str, str]] = {
    _COMPLETED: (ContinueWhen.SUCCEEDED.value, ContinueWhen.FINISHED.value),
    QueuedTaskStatus.FAILED.value: (ContinueWhen.FAILED.value, ContinueWhen.FINISHED.value),
    QueuedTaskStatus.CANCELLED.value: ("", ""),
}


def release_steps(
    parent_id: uuid.UUID,
    status: str,
    ts: datetime,
    *,
    checked: bool = False,
    owner: uuid.UUID | None = None,
) -> StepGen:
    """Release the WaitingParent children of a task or batch that has just become
    ``status`` (terminal): their audit rows, the release itself, which hands them to
    ``owner`` (a node; ``None``: no owner); the cancelled ones are finished in turn
    (:func:`finish_steps`). ``checked``: a child is known to wait. Returns the rows that
    became Queued (each parent's oldest first)."""
    run_a, run_b = _RUNS[status]
    params = {
        "id": parent_id,
        "run_a": run_a,
        "run_b": run_b,
        "reason": skip_reason(parent_id, status),
        "ts": ts,
        "owner": owner,
    }
    if (
        not checked
        and (yield Step("has_waiting_children", {"id": parent_id}, StepMode.SCALAR)) is None
    ):
        return []
    yield Step("insert_release_audits", params)
    n = yield Step("release_children", params)
    if not n:
        return []
    released: list[QueuedTask] = []
    if run_a:
        if owner is None:
            rows = yield Step("select_released_children", {"id": parent_id}, StepMode.ROWS)
        else:
            rows = yield Step(
                "select_handed_children", {"id": parent_id, "owner": owner}, StepMode.ROWS
            )
        released = [to_task(row) for row in rows]
    if n > len(released):  # the cancelled ones count in their batches and cancel their children
        skipped = yield Step(
            "select_skipped_children", {"id": parent_id, "reason": params["reason"]}, StepMode.ROWS
        )
        for (child_id,) in skipped:
            released += yield from finish_steps(child_id, _CANCELLED, ts, owner=owner)
    return released


def finish_steps(
    task_id: uuid.UUID, status: str, ts: datetime, *, owner: uuid.UUID | None = None
) -> StepGen:
    """What follows a row's terminal write in the same transaction: the first one counts
    the row in its batch and workflow (finishing them when it is their last member), and
    its waiting continuations are released, handed to ``owner``. Returns the rows that
    became Queued."""
    found = yield Step("probe_finished", {"id": task_id}, StepMode.ROWS)
    if not found:
        return []
    batch_id, workflow_id, counted, child = found[0]
    released: list[QueuedTask] = []
    member = (batch_id is not None or workflow_id is not None) and not counted
    if member and (yield Step("mark_counted", {"id": task_id})):
        for record_id in (batch_id, workflow_id):
            if record_id is not None:
                released += yield from count_steps(record_id, status, ts, owner=owner)
    if child is not None:
        released += yield from release_steps(task_id, status, ts, checked=True, owner=owner)
    return released


def count_steps(
    record_id: uuid.UUID, status: str, ts: datetime, *, owner: uuid.UUID | None = None
) -> StepGen:
    """Count a member that finished with ``status`` in a batch record; the member that
    completes the count finishes the record (once: a compare-and-set on Running) and
    releases the continuations waiting for it, handed to ``owner``. Returns the rows that
    became Queued."""
    yield Step(
        "count_member",
        {
            "id": record_id,
            "s": int(status == _COMPLETED),
            "f": int(status == _FAILED),
            "c": int(status == _CANCELLED),
        },
    )
    if not (yield Step("finish_batch", {"id": record_id, "ts": ts})):
        return []
    outcome = yield Step("select_batch_status", {"id": record_id}, StepMode.SCALAR)
    released: list[QueuedTask] = yield from release_steps(record_id, str(outcome), ts, owner=owner)
    return released


def _missing(task_id: uuid.UUID) -> TaskNotFoundError:
    return TaskNotFoundError(task_id)


class Op:
    """Base of the write operations.

    :meth:`target_id` and :meth:`target_key` name the row and task key an operation
    touches; executors that reorder work never reorder two operations sharing either.
    """

    __slots__ = ()

    heavy: ClassVar[bool] = False
    """Maintenance work (retention, folding counts): never run on the event loop's
    thread, and never reordered with other operations."""

    several_writes: ClassVar[bool] = False
    """Whether a constraint error may strike after this operation wrote something: an
    executor must then fail the batch (the writer retries each operation alone) rather
    than keep the batch and report the error to this operation alone."""

    def target_id(self) -> uuid.UUID | None:
        """The task row this operation writes, if one."""
        return None

    def target_key(self) -> str | None:
        """The task key this operation may claim, if any."""
        return None

    def steps(self) -> StepGen:
        """The statements of this operation (see the module docstring)."""
        raise NotImplementedError


@dataclass(slots=True)
class PersistOp(Op):
    """Insert a task row, plus its status audit when ``audit_ts`` is set."""

    row: QueuedTask
    audit_ts: datetime | None

    def target_id(self) -> uuid.UUID:
        return self.row.id

    def target_key(self) -> str | None:
        return self.row.task_key

    def insert_step(self) -> Step:
        """The row's insert."""
        return Step("insert_task", task_params(self.row))

    def audit_steps(self) -> list[Step]:
        """The audit row that follows the insert, if one."""
        if self.audit_ts is None:
            return []
        row = self.row
        return [_status_audit(row.id, self.audit_ts, row.status.value, row.exception)]

    def steps(self) -> StepGen:
        yield self.insert_step()
        for step in self.audit_steps():  # noqa: UP028 (a driver sends results: a list cannot take them)
            yield step


@dataclass(slots=True)
class PersistContinuationOp(Op):
    """Insert a continuation after a locking read of its parent: WaitingParent while the
    parent runs, or released (Queued, no owner) / cancelled at once when it has finished.
    Returns the status the row was stored with (``TaskNotFoundError``: no parent)."""

    row: QueuedTask
    now: datetime

    def target_id(self) -> uuid.UUID:
        return self.row.id

    def target_key(self) -> str | None:
        return self.row.task_key

    def steps(self) -> StepGen:
        row = self.row
        parent_id = row.parent_task_id
        assert parent_id is not None
        found = yield Step("select_parent_for_update", {"id": parent_id}, StepMode.ROWS)
        if not found:  # a batch (its finished statuses are the tasks' terminal ones)
            found = yield Step("select_batch_for_update", {"id": parent_id}, StepMode.ROWS)
        if not found:
            return TaskNotFoundError(parent_id, "A continuation needs its parent.")
        parent_status = found[0][0]
        params = task_params(row)
        status = QueuedTaskStatus.WAITING_PARENT
        if parent_status in _TERMINAL:
            when = ContinueWhen(row.continue_when or ContinueWhen.SUCCEEDED.value)
            if when.matches(QueuedTaskStatus(parent_status)):
                status = QueuedTaskStatus.QUEUED
                params["OwnerNode"] = None
            else:
                status = QueuedTaskStatus.CANCELLED
                params["Exception"] = skip_reason(parent_id, parent_status)
        params["Status"] = status.value
        yield Step("insert_task", params)
        if status is not QueuedTaskStatus.WAITING_PARENT and (row.audit_level or 0) == 0:
            yield _status_audit(row.id, self.now, status.value, params["Exception"])
        return status


@dataclass(slots=True)
class PersistUnitOp(Op):
    """Insert batch records and task rows together (a batch or a workflow): the records,
    the rows, the rows' status audits. Their ids are new, so it reorders with nothing."""

    batches: tuple[TaskBatch, ...]
    rows: tuple[QueuedTask, ...]
    audit_ts: datetime

    heavy: ClassVar[bool] = True  # thousands of rows: never on the event loop's thread
    several_writes: ClassVar[bool] = True  # all or none

    def steps(self) -> StepGen:
        yield Step("insert_batch", [batch_params(b) for b in self.batches], StepMode.MANY)
        yield Step("insert_task", [task_params(r) for r in self.rows], StepMode.MANY)
        audits = [
            {"id": r.id, "ts": self.audit_ts, "status": r.status.value, "exception": None}
            for r in self.rows
            if wants_status_audit(r.audit_level, r.status, None)
        ]
        if audits:
            yield Step("insert_status_audit", audits, StepMode.MANY)


@dataclass(slots=True)
class CancelBatchOp(Op):
    """Cancel a Running batch record (a workflow with its running groups): each member
    that has not finished is written Cancelled and finished (:func:`finish_steps`), then
    the continuations waiting for the records are cancelled. Returns the ids it cancelled
    (``[]``: the record had finished; ``None``: no such record)."""

    batch_id: uuid.UUID
    ts: datetime

    heavy: ClassVar[bool] = True

    def steps(self) -> StepGen:
        bid, ts = self.batch_id, self.ts
        record = yield Step("select_batch", {"id": bid}, StepMode.ROWS)
        if not record:
            return None
        workflow = record[0][1] == BatchKind.WORKFLOW.value
        members = f"select_unfinished_{'workflow' if workflow else 'batch'}_members"
        # the members first, then the record: the order a member's terminal write locks
        # them in (its row, then its records), so the two never wait for each other
        unfinished = yield Step(members, {"id": bid}, StepMode.ROWS)
        if not (yield Step("cancel_batch_record", {"id": bid, "ts": ts})):
            return []  # it had finished
        records = [bid]
        if workflow:
            for (group_id,) in (yield Step("select_running_groups", {"id": bid}, StepMode.ROWS)):
                yield Step("cancel_batch_record", {"id": group_id, "ts": ts})
                records.append(group_id)
        cancelled: list[uuid.UUID] = []
        for member_id, level in unfinished:
            params = {
                "id": member_id,
                "status": _CANCELLED,
                "exception": None,
                "stamp": None,
                "ms": None,
                "result": None,
            }
            if not (yield Step("update_status", params)):
                continue
            cancelled.append(uuid.UUID(str(member_id)))  # (a raw driver value)
            if (level or 0) == 0:  # Full audits a cancel (it is not an error)
                yield _status_audit(member_id, ts, _CANCELLED)
            yield from finish_steps(member_id, _CANCELLED, ts)
        for record_id in records:
            yield from release_steps(record_id, _CANCELLED, ts)
        return cancelled


@dataclass(slots=True)
class RetryMemberOp(Op):
    """Requeue a Failed or Cancelled batch member in place (``BatchStore.retry_member``):
    ``True``; ``False`` when the row is not a member; a ``ValueError`` with the reason
    when it cannot be retried in place."""

    task_id: uuid.UUID
    ts: datetime

    several_writes: ClassVar[bool] = True

    def target_id(self) -> uuid.UUID:
        return self.task_id

    def steps(self) -> StepGen:
        tid, ts = self.task_id, self.ts
        found = yield Step("select_member_for_update", {"id": tid}, StepMode.ROWS)
        if not found:
            return False
        status, batch_id, workflow_id, counted, level = found[0]
        if batch_id is None and workflow_id is None:
            return False
        records = []
        for record_id in (batch_id, workflow_id):
            if record_id is not None:
                rows = yield Step("select_batch_for_update", {"id": record_id}, StepMode.ROWS)
                if rows:
                    record_status, kind, saga = rows[0]
                    records.append((str(kind), record_id, str(record_status), bool(saga)))
        refusal = member_retry_refusal(tid, str(status), records)
        if refusal is not None:
            return ValueError(refusal)
        yield Step("requeue_member", {"id": tid})
        if (level or 0) == 0:
            yield _status_audit(tid, ts, _QUEUED)
        if counted:
            for _, record_id, record_status, _ in records:
                yield from uncount_steps(record_id, str(status), record_status, ts)
        yield from revive_steps(tid, str(status), ts)
        return True


def uncount_steps(record_id: Any, member_status: str, record_status: str, ts: datetime) -> StepGen:
    """A member that ended ``member_status`` no longer counts in a record; a finished
    record is Running again and the continuations its end skipped wait again."""
    params = {
        "id": record_id,
        "f": int(member_status == _FAILED),
        "c": int(member_status == _CANCELLED),
    }
    yield Step("uncount_member", params)
    if record_status != BatchStatus.RUNNING.value:
        yield from revive_steps(record_id, record_status, ts)


def revive_steps(parent_id: Any, parent_status: str, ts: datetime) -> StepGen:
    """The continuations that ``parent_id`` ending ``parent_status`` skipped (cancelled
    with :func:`skip_reason`) wait for it again, and those their cancellation skipped."""
    params = {"id": parent_id, "reason": skip_reason(parent_id, parent_status)}
    rows = yield Step("select_skipped_for_revive", params, StepMode.ROWS)
    for child_id, batch_id, workflow_id, counted, level in rows:
        yield Step("revive_child", {"id": child_id})
        if (level or 0) == 0:
            yield _status_audit(child_id, ts, QueuedTaskStatus.WAITING_PARENT.value)
        if counted:
            for record_id in (batch_id, workflow_id):
                if record_id is not None:
                    found = yield Step("select_batch_for_update", {"id": record_id}, StepMode.ROWS)
                    if found:
                        yield from uncount_steps(record_id, _CANCELLED, str(found[0][0]), ts)
        yield from revive_steps(child_id, _CANCELLED, ts)


UPDATE_ATTRIBUTES: dict[str, str] = {
    "id": "task_id",
    "status": "status",
    "exception": "exception",
    "stamp": "stamp",
    "ms": "ms",
    "result": "result",
}
"""The bind parameters of a status write (:meth:`TransitionOp.update_step`): the attribute
of the :class:`TransitionOp` each takes."""

_UPDATE_VALUES = operator.attrgetter(*UPDATE_ATTRIBUTES.values())


@dataclass(slots=True)
class TransitionOp(Op):
    """A status change; ``stamp`` sets LastExecutionUtc, ``ms`` ExecutionTimeMs (if set).

    ``prior_audit_ts``: the audit row of an InProgress write this one replaced (see
    ``SqlTaskStorage.withdraw_in_progress``), inserted before the change's own audit row.
    """

    task_id: uuid.UUID
    status: str
    exception: str | None
    stamp: datetime | None
    ms: float | None
    clear_next: bool
    audit_ts: datetime | None
    must_exist: bool
    prior_audit_ts: datetime | None = None
    result: str | None = None
    """The JSON result of a Completed one-shot run (``None`` keeps the stored one)."""
    release: datetime | None = None
    """Set (the time of the children's audit rows) on a terminal status: the children
    waiting for this row are released in the same transaction (see :func:`release_steps`)."""
    owner: uuid.UUID | None = None
    """The node the release hands the children to (``None``: no owner) ..."""
    room: int | None = None
    """... at most this many of them (``None``: all); the others stay without an owner."""

    def target_id(self) -> uuid.UUID:
        return self.task_id

    @property
    def releases(self) -> bool:
        """Whether this transition releases continuations (a terminal status)."""
        return self.release is not None and self.status in _TERMINAL

    def finish(self) -> StepGen:
        """What follows this terminal write in its transaction (:func:`finish_steps`):
        the rows that became Queued are handed to ``owner``, the first ``room`` of them;
        the others are given back (no owner). Returns them all."""
        assert self.release is not None
        released: list[QueuedTask] = yield from finish_steps(
            self.task_id, self.status, self.release, owner=self.owner
        )
        if self.owner is not None and self.room is not None and len(released) > self.room:
            surplus = released[self.room :]
            yield Step(
                "disown_row", [{"id": r.id, "owner": self.owner} for r in surplus], StepMode.MANY
            )
            for row in surplus:
                row.owner_node = None
        return released

    def update_step(self) -> Step:
        """The status write itself (returns the number of rows it changed: 0 or 1)."""
        return Step(
            "update_status_clear_next" if self.clear_next else "update_status",
            dict(zip(UPDATE_ATTRIBUTES, _UPDATE_VALUES(self), strict=False)),
        )

    def not_found(self) -> TaskNotFoundError | None:
        """The outcome when the row does not exist."""
        return _missing(self.task_id) if self.must_exist else None

    def audit_steps(self) -> list[Step]:
        """The audit rows that follow the write, in order: the replaced InProgress write's,
        then this one's."""
        steps: list[Step] = []
        if self.prior_audit_ts is not None:
            steps.append(_status_audit(self.task_id, self.prior_audit_ts, _IN_PROGRESS))
        if self.audit_ts is not None:
            steps.append(_status_audit(self.task_id, self.audit_ts, self.status, self.exception))
        return steps

    def steps(self) -> StepGen:
        if not (yield self.update_step()):
            return self.not_found()
        for step in self.audit_steps():  # noqa: UP028 (a driver sends results: a list cannot take them)
            yield step
        if self.releases:
            released: list[QueuedTask] = yield from self.finish()
            return released
        return None


@dataclass(slots=True)
class TryQueuedOp(Op):
    """Compare-and-set to Queued when the row is recoverable at ``now`` (and, with
    ``owner``, owned by that node); returns a bool."""

    task_id: uuid.UUID
    now: datetime
    audit_ts: datetime | None
    owner: uuid.UUID | None = None

    def target_id(self) -> uuid.UUID:
        return self.task_id

    def steps(self) -> StepGen:
        if self.owner is None:
            n = yield Step("try_queued", {"id": self.task_id, "now": self.now})
        else:
            n = yield Step(
                "try_queued_owned", {"id": self.task_id, "now": self.now, "owner": self.owner}
            )
        if n and self.audit_ts is not None:
            yield _status_audit(self.task_id, self.audit_ts, _QUEUED)
        return bool(n)


class RunsAuditMode(IntEnum):
    """Whether a counted run writes its RunsAudit row."""

    NEVER = 0
    ALWAYS = 1
    IF_ERROR = 2  # only if the row is Failed or carries an exception (ErrorsOnly)


@dataclass(slots=True)
class RunOp(Op):
    """Count a recurring run and set the next one; ``complete`` also marks it Completed.

    The run's own status is audited (Completed, or the Failed the engine wrote before);
    then, when there is a next run, the row waits for it: WaitingQueue, scheduled at
    ``next_run``. The last run of a series leaves the row Completed (or Failed).
    """

    task_id: uuid.UUID
    ms: float
    next_run: datetime | None
    now: datetime
    complete: bool
    status_audit: bool
    runs_audit: RunsAuditMode

    def target_id(self) -> uuid.UUID:
        return self.task_id

    def steps(self) -> StepGen:
        tid = self.task_id
        waiting = _WAITING_QUEUE if self.next_run is not None else None
        mode = self.runs_audit
        if self.complete:
            n = yield Step(
                "complete_run",
                {
                    "id": tid,
                    "status": waiting or _COMPLETED,
                    "stamp": self.now,
                    "ms": self.ms,
                    "next_run": self.next_run,
                    "scheduled": self.next_run,
                },
            )
            if not n:
                return _missing(tid)
            if self.status_audit:
                yield _status_audit(tid, self.now, _COMPLETED)
            if mode is RunsAuditMode.ALWAYS:
                yield Step(
                    "insert_runs_audit",
                    {
                        "id": tid,
                        "ts": self.now,
                        "ms": self.ms,
                        "status": _COMPLETED,
                        "exception": None,
                    },
                )
            return None
        if mode is not RunsAuditMode.NEVER:  # copies the run's status and error: first
            name = (
                "insert_runs_audit_from_row"
                if mode is RunsAuditMode.ALWAYS
                else "insert_runs_audit_from_row_if_error"
            )
            yield Step(name, {"id": tid, "ts": self.now, "ms": self.ms})
        n = yield Step(
            "count_run",
            {
                "id": tid,
                "status": waiting,
                "ms": self.ms,
                "next_run": self.next_run,
                "scheduled": self.next_run,
            },
        )
        return None if n else _missing(tid)


@dataclass(slots=True)
class RecoveryCounterOp(Op):
    """Increment (returning the new count, 0 if missing) or clear the recovery counter."""

    task_id: uuid.UUID
    increment: bool

    def target_id(self) -> uuid.UUID:
        return self.task_id

    def steps(self) -> StepGen:
        if not self.increment:
            yield Step("clear_recovery", {"id": self.task_id})
            return None
        n = yield Step("increment_recovery", {"id": self.task_id})
        if not n:
            return 0
        value = yield Step("select_recovery_count", {"id": self.task_id}, StepMode.SCALAR)
        return int(value or 0)


@dataclass(slots=True)
class UpdateTaskOp(Op):
    """Overwrite a row's definition columns; optionally revive a Cancelled row."""

    row: QueuedTask
    revive: bool

    def target_id(self) -> uuid.UUID:
        return self.row.id

    def target_key(self) -> str | None:
        return self.row.task_key

    def steps(self) -> StepGen:
        row = self.row
        n = yield Step(
            "update_definition",
            {
                "id": row.id,
                "Type": row.type,
                "Request": row.request,
                "Handler": row.handler,
                "QueueName": row.queue_name,
                "AuditLevel": int(row.audit_level),
                "ScheduledExecutionUtc": row.scheduled_execution_utc,
                "IsRecurring": row.is_recurring,
                "RecurringTask": row.recurring_task,
                "RecurringInfo": row.recurring_info,
                "MaxRuns": row.max_runs,
                "RunUntil": row.run_until,
                "TaskKey": row.task_key,
                "NextRunUtc": row.next_run_utc,
            },
        )
        if not n:
            return TaskNotFoundError(row.id, "It cannot be updated.")
        if self.revive:
            yield Step("revive", {"id": row.id})
        return None


@dataclass(slots=True)
class RemoveOp(Op):
    """Delete a row (its audits and logs cascade)."""

    task_id: uuid.UUID

    def target_id(self) -> uuid.UUID:
        return self.task_id

    def steps(self) -> StepGen:
        yield Step("delete_task", {"id": self.task_id})


@dataclass(slots=True)
class SaveLogsOp(Op):
    """Insert captured log records of a task that still exists."""

    task_id: uuid.UUID
    logs: Sequence[TaskExecutionLog]

    def target_id(self) -> uuid.UUID:
        return self.task_id

    def log_step(self) -> Step:
        """The inserts of the records (one parameter set per record)."""
        tid = self.task_id
        return Step(
            "insert_log",
            [
                {
                    "log_id": log.id,
                    "id": tid,
                    "ts": log.timestamp_utc,
                    "level": log.level,
                    "message": log.message,
                    "exception": log.exception_details,
                    "seq": log.sequence_number,
                }
                for log in self.logs
            ],
            StepMode.MANY,
        )

    def steps(self) -> StepGen:
        exists = yield Step("select_task_exists", {"id": self.task_id}, StepMode.SCALAR)
        if exists is None:
            return None
        yield self.log_step()
        return None


@dataclass(slots=True)
class PauseQueueOp(Op):
    """Remember that a queue is paused (or forget it)."""

    queue_name: str
    paused: bool
    ts: datetime

    def steps(self) -> StepGen:
        yield Step("delete_paused_queue", {"queue": self.queue_name})
        if self.paused:
            yield Step("insert_paused_queue", {"queue": self.queue_name, "ts": self.ts})


_ALONE = (RemoveOp, UpdateTaskOp)
"""The operations a wave holds alone (a tuple: ``A | B`` would build a union per call)."""


def waves(ops: Sequence[Op]) -> Iterator[list[int]]:
    """Indexes of ``ops`` cut where an id or key repeats; removes and updates stand alone."""
    wave: list[int] = []
    ids: set[int] = set()  # the ids' integers (a UUID's hash is a Python method)
    keys: set[str] = set()
    for i, op in enumerate(ops):
        alone = isinstance(op, _ALONE)
        task_id, key = op.target_id(), op.target_key()
        number = None if task_id is None else task_id.int
        if wave and (alone or number in ids or (key is not None and key in keys)):
            yield wave
            wave, ids, keys = [], set(), set()
        wave.append(i)
        if number is not None:
            ids.add(number)
        if key is not None:
            keys.add(key)
        if alone:
            yield wave
            wave, ids, keys = [], set(), set()
    if wave:
        yield wave
