"""In-memory storage: O(1) lookups by id and key; for development, tests and volatile work.

Each row is two flat tuples of plain values (ints, strings, datetimes): its definition,
which rarely changes, and its state (status, exception, timings, counters), which every
transition replaces. The tuples sit in lists of slots found through one dict of
id -> slot number. Python's garbage collector stops tracking such tuples once it has
seen them, the dict holds only ints, and the slot lists live in the oldest generation,
so a few hundred thousand stored rows do not slow down the application's garbage
collections (stored as objects in a dict, they cost the engine about a fifth of its
throughput at 100,000 rows).
"""

from __future__ import annotations

import bisect
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from evertask_abstractions import AuditLevel, QueuedTaskStatus, TaskKeyConflictError

from ..clock import utc_now
from .models import (
    STAMPED_STATUSES,
    QueuedTask,
    RunsAudit,
    SortField,
    StatusAudit,
    TaskExecutionLog,
    TaskPage,
    TaskQuery,
    is_recoverable,
    wants_runs_audit,
    wants_status_audit,
)

__all__ = ["MemoryTaskStorage"]

_RUN_COUNTER_MAX = 2**31 - 1
_FULL = AuditLevel.FULL
_STATUS = {s.value: s for s in QueuedTaskStatus}
_LEVEL = {int(a): a for a in AuditLevel}
_STAMPED = frozenset(s.value for s in STAMPED_STATUSES)  # rows keep status values
_CANCELLED_VALUE = QueuedTaskStatus.CANCELLED.value
_WAITING_VALUE = QueuedTaskStatus.WAITING_QUEUE.value
_QUEUED = QueuedTaskStatus.QUEUED
_IN_PROGRESS = QueuedTaskStatus.IN_PROGRESS
_COMPLETED = QueuedTaskStatus.COMPLETED
_CANCELLED = QueuedTaskStatus.CANCELLED
_SERVICE_STOPPED = QueuedTaskStatus.SERVICE_STOPPED
_FAILED = QueuedTaskStatus.FAILED
_WAITING_QUEUE = QueuedTaskStatus.WAITING_QUEUE

Tup = tuple[Any, ...]

# definition tuple
(
    D_ID,
    D_TYPE,
    D_REQUEST,
    D_HANDLER,
    D_CREATED,
    D_QUEUE,
    D_LEVEL,
    D_SCHEDULED,
    D_RECURRING,
    D_RECURRING_TASK,
    D_RECURRING_INFO,
    D_MAX_RUNS,
    D_RUN_UNTIL,
    D_TASK_KEY,
    D_TRACE,
    D_RETRIED_FROM,
) = range(16)
# state tuple
S_STATUS, S_EXCEPTION, S_LAST, S_MS, S_COUNT, S_NEXT, S_RECOVERY = range(7)
# the state of a new immediate row (tuples of plain values can be shared)
_NEW_QUEUED_STATE: Tup = (QueuedTaskStatus.QUEUED.value, None, None, 0.0, None, None, 0)

_SORT_COLUMN: dict[SortField, tuple[bool, int]] = {  # (in state?, index)
    SortField.CREATED_AT: (False, D_CREATED),
    SortField.LAST_EXECUTION: (True, S_LAST),
    SortField.SCHEDULED_EXECUTION: (False, D_SCHEDULED),
    SortField.STATUS: (True, S_STATUS),
    SortField.TYPE: (False, D_TYPE),
    SortField.QUEUE_NAME: (False, D_QUEUE),
}


def _definition(t: QueuedTask) -> Tup:
    return (
        t.id.int,
        t.type,
        t.request,
        t.handler,
        t.created_at_utc,
        t.queue_name,
        int(t.audit_level),
        t.scheduled_execution_utc,
        t.is_recurring,
        t.recurring_task,
        t.recurring_info,
        t.max_runs,
        t.run_until,
        t.task_key,
        t.trace_context,
        None if t.retried_from is None else t.retried_from.int,
    )


def _state(t: QueuedTask) -> Tup:
    return (
        t.status._value_,
        t.exception,
        t.last_execution_utc,
        t.execution_time_ms,
        t.current_run_count,
        t.next_run_utc,
        t.recovery_dispatch_failure_count,
    )


def _model(d: Tup, s: Tup) -> QueuedTask:
    return QueuedTask(
        uuid.UUID(int=d[D_ID]),
        d[D_TYPE],
        d[D_REQUEST],
        d[D_HANDLER],
        _STATUS[s[S_STATUS]],
        d[D_CREATED],
        d[D_QUEUE],
        _LEVEL[d[D_LEVEL]],
        d[D_SCHEDULED],
        s[S_LAST],
        s[S_MS],
        s[S_EXCEPTION],
        d[D_RECURRING],
        d[D_RECURRING_TASK],
        d[D_RECURRING_INFO],
        s[S_COUNT],
        d[D_MAX_RUNS],
        d[D_RUN_UNTIL],
        s[S_NEXT],
        d[D_TASK_KEY],
        s[S_RECOVERY],
        d[D_TRACE],
        None if d[D_RETRIED_FROM] is None else uuid.UUID(int=d[D_RETRIED_FROM]),
    )


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class MemoryTaskStorage:
    """Keeps every row in process memory. Nothing survives the process.

    Lookups by id and task key are dictionary hits; recovery pages walk a keyset index.
    Every method is atomic with respect to the event loop (no awaits inside), so no lock
    is needed. One instance may be shared by several hosts in one process (tests).
    """

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now
        self._ts: Callable[[], float] = time.time if now is utc_now else (lambda: now().timestamp())
        # id int -> slot; the lists below are indexed by slot (see the module docstring)
        self._index: dict[int, int] = {}
        self._defs: list[Tup | None] = []
        self._states: list[Tup | None] = []
        self._audits: list[Tup] = []  # flat (seq, ts, status, exception)*
        self._runs: list[Tup] = []  # flat (seq, ts, ms, status, exception)*
        self._free: list[int] = []
        self._keys: dict[str, int] = {}
        self._order: list[int] = []  # id ints sorted by (created_at_utc, id)
        self._logs: dict[int, list[TaskExecutionLog]] = {}
        self._paused: set[str] = set()
        self._seq = 0
        self._last_created = datetime.min.replace(tzinfo=UTC)
        self._last_id = -1

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; the rows stay for a later host in the same process."""

    def __len__(self) -> int:
        return len(self._index)

    # -- helpers ---------------------------------------------------------------------------
    def _order_key(self, key: int) -> tuple[datetime, int]:
        d = self._defs[self._index[key]]
        assert d is not None
        return (d[D_CREATED], key)

    def _row(self, slot: int) -> QueuedTask:
        d, s = self._defs[slot], self._states[slot]
        assert d is not None and s is not None
        return _model(d, s)

    def _audit(self, slot: int, status: str, exception: str | None) -> None:
        self._seq += 1
        self._audits[slot] += (self._seq, self._ts(), status, exception)

    def _transition(
        self,
        task_id: uuid.UUID,
        status: QueuedTaskStatus,
        exception: str | None,
        level: AuditLevel,
        execution_time_ms: float | None = None,
        next_run: Any = False,
    ) -> int | None:
        slot = self._index.get(task_id.int)
        if slot is None:
            return None
        s = self._states[slot]
        assert s is not None
        value: str = status._value_  # a plain attribute: Enum.value is a slow descriptor
        self._states[slot] = (
            value,
            exception,
            self._now() if value in _STAMPED else s[S_LAST],
            s[S_MS] if execution_time_ms is None else execution_time_ms,
            s[S_COUNT],
            s[S_NEXT] if next_run is False else next_run,
            s[S_RECOVERY],
        )
        if level is _FULL or wants_status_audit(level, status, exception):  # (Full: no call)
            self._audit(slot, value, exception)
        return slot

    # -- dispatch and lookup ---------------------------------------------------------------
    async def persist(self, task: QueuedTask) -> None:
        """Insert a row."""
        task_key = task.task_key
        if task_key is not None and task_key in self._keys:
            raise TaskKeyConflictError(task_key)
        key = task.id.int
        if key in self._index:
            raise ValueError(f"A task with id {task.id} already exists.")
        self._insert(
            key, _definition(task), _state(task), task.audit_level, task.status, task.exception
        )

    def inline_persist(self) -> Callable[..., None] | None:
        """:meth:`persist_queued` for the engine's hot path, unless a subclass overrides
        :meth:`persist` (then every row goes through the override)."""
        if type(self).persist is not MemoryTaskStorage.persist:
            return None
        return self.persist_queued

    def persist_queued(
        self,
        task_id: uuid.UUID,
        task_type: str,
        request: str,
        handler: str,
        created_at_utc: datetime,
        queue_name: str,
        audit_level: AuditLevel,
        trace_context: str | None,
    ) -> None:
        """Insert the row of an immediate dispatch without a task key (status Queued).

        The same as ``persist`` of that row, without building a ``QueuedTask`` first:
        the engine's hot path calls it (see :meth:`inline_persist`).
        """
        key = task_id.int
        if key in self._index:
            raise ValueError(f"A task with id {task_id} already exists.")
        definition = (
            key,
            task_type,
            request,
            handler,
            created_at_utc,
            queue_name,
            int(audit_level),
            None,
            False,
            None,
            None,
            None,
            None,
            None,
            trace_context,
            None,
        )
        self._insert(key, definition, _NEW_QUEUED_STATE, audit_level, _QUEUED, None)

    def _insert(
        self,
        key: int,
        definition: Tup,
        state: Tup,
        level: AuditLevel,
        status: QueuedTaskStatus,
        exception: str | None,
    ) -> None:
        if self._free:
            slot = self._free.pop()
            self._defs[slot] = definition
            self._states[slot] = state
            self._audits[slot] = ()
            self._runs[slot] = ()
        else:
            slot = len(self._defs)
            self._defs.append(definition)
            self._states.append(state)
            self._audits.append(())
            self._runs.append(())
        self._index[key] = slot
        task_key = definition[D_TASK_KEY]
        if task_key is not None:
            self._keys[task_key] = key
        created = definition[D_CREATED]
        if created > self._last_created or (created == self._last_created and key > self._last_id):
            self._order.append(key)
            self._last_created = created
            self._last_id = key
        else:
            bisect.insort(self._order, key, key=self._order_key)
        if status is not _WAITING_QUEUE and (
            level is _FULL or wants_status_audit(level, status, exception)
        ):
            self._audit(slot, state[S_STATUS], exception)

    async def get(self, task_id: uuid.UUID) -> QueuedTask | None:
        """The row, or ``None``."""
        slot = self._index.get(task_id.int)
        return None if slot is None else self._row(slot)

    async def get_by_task_key(self, task_key: str) -> QueuedTask | None:
        """The row holding ``task_key``, or ``None``."""
        key = self._keys.get(task_key)
        return None if key is None else self._row(self._index[key])

    async def update_task(self, task: QueuedTask, *, revive: bool = False) -> None:
        """Overwrite the definition columns (see the protocol)."""
        key = task.id.int
        slot = self._index.get(key)
        if slot is None:
            raise KeyError(f"Task {task.id} does not exist; it cannot be updated.")
        d, s = self._defs[slot], self._states[slot]
        assert d is not None and s is not None
        old_key = d[D_TASK_KEY]
        if task.task_key != old_key:
            if task.task_key is not None:
                owner = self._keys.get(task.task_key)
                if owner is not None and owner != key:
                    raise TaskKeyConflictError(task.task_key)
                self._keys[task.task_key] = key
            if old_key is not None:
                self._keys.pop(old_key, None)
        new = _definition(task)
        self._defs[slot] = (
            new[:D_CREATED] + (d[D_CREATED],) + new[D_CREATED + 1 : D_TRACE] + d[D_TRACE:]
        )
        state = list(s)
        state[S_NEXT] = task.next_run_utc
        if revive and s[S_STATUS] == _CANCELLED_VALUE:
            state[S_STATUS] = _WAITING_VALUE
            state[S_COUNT] = 0
            state[S_EXCEPTION] = None
        self._states[slot] = tuple(state)

    async def remove(self, task_id: uuid.UUID) -> None:
        """Delete the row, its audits and logs."""
        key = task_id.int
        slot = self._index.get(key)
        if slot is None:
            return
        d = self._defs[slot]
        assert d is not None
        i = bisect.bisect_left(self._order, (d[D_CREATED], key), key=self._order_key)
        if i < len(self._order) and self._order[i] == key:
            del self._order[i]
        del self._index[key]
        self._defs[slot] = self._states[slot] = None
        self._audits[slot] = self._runs[slot] = ()
        self._free.append(slot)
        if d[D_TASK_KEY] is not None and self._keys.get(d[D_TASK_KEY]) == key:
            del self._keys[d[D_TASK_KEY]]
        self._logs.pop(key, None)

    async def retrieve_pending(
        self, last_created_at: datetime | None, last_id: uuid.UUID | None, take: int
    ) -> list[QueuedTask]:
        """Recoverable rows after the keyset, ascending."""
        now = self._now()
        order = self._order
        start = 0
        if last_created_at is not None and last_id is not None:
            start = bisect.bisect_right(order, (last_created_at, last_id.int), key=self._order_key)
        out: list[QueuedTask] = []
        if take <= 0:
            return out
        for i in range(start, len(order)):
            model = self._row(self._index[order[i]])
            if is_recoverable(model, now):
                out.append(model)
                if len(out) >= take:
                    break
        return out

    # -- status transitions ----------------------------------------------------------------
    async def set_queued(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark Queued."""
        self._transition(task_id, _QUEUED, None, audit_level)

    async def try_set_queued_if_recoverable(
        self, task_id: uuid.UUID, audit_level: AuditLevel
    ) -> bool:
        """Compare-and-set to Queued."""
        slot = self._index.get(task_id.int)
        if slot is None or not is_recoverable(self._row(slot), self._now()):
            return False
        self._transition(task_id, _QUEUED, None, audit_level)
        return True

    async def set_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark InProgress."""
        self._transition(task_id, _IN_PROGRESS, None, audit_level)

    async def set_completed(
        self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
    ) -> None:
        """Mark Completed."""
        self._transition(task_id, _COMPLETED, None, audit_level, execution_time_ms)

    async def set_cancelled_by_user(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark Cancelled."""
        self._transition(task_id, _CANCELLED, None, audit_level)

    async def set_cancelled_by_service(
        self, task_id: uuid.UUID, exception: str | None, audit_level: AuditLevel
    ) -> None:
        """Mark ServiceStopped."""
        self._transition(task_id, _SERVICE_STOPPED, exception, audit_level)

    async def set_status(
        self,
        task_id: uuid.UUID,
        status: QueuedTaskStatus,
        exception: str | None,
        audit_level: AuditLevel,
        execution_time_ms: float | None = None,
    ) -> None:
        """Generic transition."""
        self._transition(task_id, status, exception, audit_level, execution_time_ms)

    # -- recurring accounting --------------------------------------------------------------
    async def get_current_run_count(self, task_id: uuid.UUID) -> int:
        """Runs so far."""
        slot = self._index.get(task_id.int)
        if slot is None:
            return 0
        s = self._states[slot]
        assert s is not None
        count: int = s[S_COUNT] or 0
        return count

    def _count_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        slot = self._index.get(task_id.int)
        if slot is None:
            raise KeyError(f"Task {task_id} does not exist.")
        s = self._states[slot]
        assert s is not None
        self._states[slot] = (
            s[S_STATUS],
            s[S_EXCEPTION],
            s[S_LAST],
            execution_time_ms,
            min((s[S_COUNT] or 0) + 1, _RUN_COUNTER_MAX),
            next_run,
            s[S_RECOVERY],
        )
        if wants_runs_audit(audit_level, _STATUS[s[S_STATUS]], s[S_EXCEPTION]):
            self._seq += 1
            self._runs[slot] += (
                self._seq,
                self._ts(),
                execution_time_ms,
                s[S_STATUS],
                s[S_EXCEPTION],
            )

    async def update_current_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        """Count a failed run and move to the next one."""
        self._count_run(task_id, execution_time_ms, next_run, audit_level)

    async def complete_recurring_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        """Completed + count + next run + audits, atomically."""
        if task_id.int not in self._index:
            raise KeyError(f"Task {task_id} does not exist.")
        self._transition(task_id, _COMPLETED, None, audit_level, execution_time_ms)
        self._count_run(task_id, execution_time_ms, next_run, audit_level)

    async def set_recurring_series_completed(
        self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
    ) -> None:
        """Completed, no next run."""
        slot = self._transition(task_id, _COMPLETED, None, audit_level, execution_time_ms, None)
        if slot is None:
            raise KeyError(f"Task {task_id} does not exist.")

    async def set_recurring_task_poisoned(
        self, task_id: uuid.UUID, exception: str, audit_level: AuditLevel
    ) -> None:
        """Failed, no next run."""
        self._transition(task_id, _FAILED, exception, audit_level, None, None)

    def _set_recovery_failures(self, task_id: uuid.UUID, value: Callable[[int], int]) -> int:
        slot = self._index.get(task_id.int)
        if slot is None:
            return 0
        s = self._states[slot]
        assert s is not None
        count = value(s[S_RECOVERY])
        self._states[slot] = s[:S_RECOVERY] + (count,)
        return count

    async def increment_recovery_failure(self, task_id: uuid.UUID) -> int:
        """Count a failed recovery."""
        return self._set_recovery_failures(task_id, lambda n: n + 1)

    async def clear_recovery_failure(self, task_id: uuid.UUID) -> None:
        """Reset the failed-recovery counter."""
        self._set_recovery_failures(task_id, lambda n: 0)

    # -- logs and audits -------------------------------------------------------------------
    async def save_execution_logs(
        self, task_id: uuid.UUID, logs: Sequence[TaskExecutionLog]
    ) -> None:
        """Append captured logs."""
        key = task_id.int
        if logs and key in self._index:
            self._logs.setdefault(key, []).extend(logs)

    def _filtered_logs(self, task_id: uuid.UUID, level: str | None) -> list[TaskExecutionLog]:
        logs = self._logs.get(task_id.int, [])
        if level is None:
            return logs
        wanted = level.lower()
        return [log for log in logs if log.level.lower() == wanted]

    async def get_execution_logs(
        self,
        task_id: uuid.UUID,
        skip: int = 0,
        take: int | None = None,
        level: str | None = None,
    ) -> list[TaskExecutionLog]:
        """Captured logs in order."""
        logs = self._filtered_logs(task_id, level)
        end = None if take is None else skip + take
        return list(logs[skip:end])

    async def count_execution_logs(self, task_id: uuid.UUID, level: str | None = None) -> int:
        """Number of captured logs."""
        return len(self._filtered_logs(task_id, level))

    async def get_status_audits(self, task_id: uuid.UUID) -> list[StatusAudit]:
        """Status history, oldest first."""
        slot = self._index.get(task_id.int)
        flat = () if slot is None else self._audits[slot]
        return [
            StatusAudit(flat[i], task_id, _dt(flat[i + 1]), _STATUS[flat[i + 2]], flat[i + 3])
            for i in range(0, len(flat), 4)
        ]

    async def get_runs_audits(self, task_id: uuid.UUID) -> list[RunsAudit]:
        """Run history, oldest first."""
        slot = self._index.get(task_id.int)
        flat = () if slot is None else self._runs[slot]
        return [
            RunsAudit(
                flat[i], task_id, _dt(flat[i + 1]), flat[i + 2], _STATUS[flat[i + 3]], flat[i + 4]
            )
            for i in range(0, len(flat), 5)
        ]

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

    # -- monitoring ------------------------------------------------------------------------
    def _pairs(self) -> list[tuple[Tup, Tup]]:
        defs, states = self._defs, self._states
        return [(defs[i], states[i]) for i in self._index.values()]  # type: ignore[misc]

    @staticmethod
    def _matches(d: Tup, s: Tup, q: TaskQuery) -> bool:
        if q.statuses is not None and _STATUS[s[S_STATUS]] not in q.statuses:
            return False
        if q.task_type_contains and q.task_type_contains.lower() not in d[D_TYPE].lower():
            return False
        if q.queue_name is not None and d[D_QUEUE] != q.queue_name:
            return False
        if q.is_recurring is not None and d[D_RECURRING] != q.is_recurring:
            return False
        if q.created_after is not None and d[D_CREATED] < q.created_after:
            return False
        if q.created_before is not None and d[D_CREATED] >= q.created_before:
            return False
        if q.search:
            needle = q.search.lower()
            hay = (d[D_TYPE], d[D_HANDLER], d[D_TASK_KEY] or "")
            if not any(needle in h.lower() for h in hay):
                return False
        return True

    async def query_tasks(self, query: TaskQuery) -> TaskPage:
        """Filter, sort and page (an in-memory scan; memory storage only)."""
        rows = [(d, s) for d, s in self._pairs() if self._matches(d, s, query)]
        in_state, index = _SORT_COLUMN[query.sort_by]

        def value(pair: tuple[Tup, Tup]) -> Any:
            return pair[1][index] if in_state else pair[0][index]

        present = [p for p in rows if value(p) is not None]
        absent = [p for p in rows if value(p) is None]
        present.sort(
            key=lambda p: (value(p), p[0][D_CREATED], p[0][D_ID]), reverse=query.descending
        )
        absent.sort(key=lambda p: (p[0][D_CREATED], p[0][D_ID]), reverse=query.descending)
        ordered = present + absent  # rows without a value sort last
        page = max(1, query.page)
        size = max(1, query.page_size)
        start = (page - 1) * size
        items = [_model(d, s) for d, s in ordered[start : start + size]]
        return TaskPage(items=items, total_count=len(rows), page=page, page_size=size)

    async def count_by_status(
        self, created_since: datetime | None = None
    ) -> dict[QueuedTaskStatus, int]:
        """Tasks per status."""
        out: dict[QueuedTaskStatus, int] = {}
        for d, s in self._pairs():
            if created_since is None or d[D_CREATED] >= created_since:
                status = _STATUS[s[S_STATUS]]
                out[status] = out.get(status, 0) + 1
        return out

    async def count_by_queue_and_status(
        self, created_since: datetime | None = None
    ) -> dict[tuple[str, QueuedTaskStatus], int]:
        """Tasks per (queue, status)."""
        out: dict[tuple[str, QueuedTaskStatus], int] = {}
        for d, s in self._pairs():
            if created_since is None or d[D_CREATED] >= created_since:
                k = (d[D_QUEUE], _STATUS[s[S_STATUS]])
                out[k] = out.get(k, 0) + 1
        return out
