"""In-memory storage: O(1) lookups by id and key; for development, tests and volatile work.

Rows are stored by column, not as objects. One dict maps a task id (its 128-bit int) to a
slot number, and every column is indexed by slot:

- arrays of raw numbers (``array.array``, ``bytearray``): the created and last-execution
  times as int64 microseconds since the Unix epoch (exact for any aware datetime; turned
  back into aware UTC datetimes only when a row is read), the status as a small code, the
  execution time, and a "kind" number into a small table of the distinct
  (type, handler, queue, audit level) combinations;
- lists of strings and bytes: the request text, and each slot's status and runs audits
  packed into ``bytes`` (``struct`` records of sequence number, microseconds, status code
  and, for runs, the execution time), grown with ``+=``;
- dicts keyed by slot for what most rows never set: trace context, exception, run
  counter, next run, recovery failures, and one tuple of the definition's rare fields
  (schedule, recurring fields, task key, retried-from). Audit exception texts sit in a dict
  keyed by the audit's sequence number.

Why: the garbage collector does not track arrays, bytes, strings or numbers, so the
engine's hot path (insert Queued, InProgress, Completed, their Full audits) leaves no tracked
object behind. Rows kept as tuples left three per row, which at 100,000 rows meant hundreds
of collections and about a tenth of the engine's time. The arrays also hold numbers without
an object per value (about a third of the memory of rows as tuples; lists of ints and
floats would be a little cheaper to write but larger). With the real clock (``now`` is
``utc_now``) times come from ``time.time_ns()``, about a tenth of the cost of
``datetime.now(UTC)``; with another clock (a ``ManualClock``), from its datetime, exactly.

Slots are allocated in chunks and recycled through a free list; a free slot is always
blank (status Queued, no last execution, 0 ms, no audits, no sparse entries), so inserting
an immediate Queued row writes only its kind, request, creation time and first audit.
"""

from __future__ import annotations

import bisect
import struct
import uuid
from array import array
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from time import time_ns
from typing import Any, Final

from evertask_abstractions import AuditLevel, QueuedTaskStatus, TaskKeyConflictError

from ..clock import utc_now
from .models import (
    RECOVERABLE_STATUSES,
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

# -- time: int microseconds since the Unix epoch ---------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NO_TIME: Final = -(2**63)  # "None" in an int64 time column (outside datetime's range)


def _to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"Naive datetime {when.isoformat()} cannot be stored; pass an aware "
            "datetime, e.g. datetime.now(UTC)."
        )
    return (when - _EPOCH) // _MICROSECOND


def _opt_us(when: datetime | None) -> int | None:
    return None if when is None else _to_us(when)


def _to_dt(us: int) -> datetime:
    """The aware UTC datetime of ``us`` microseconds since the epoch (exact)."""
    return _EPOCH + timedelta(0, 0, us)


def _opt_dt(us: int | None) -> datetime | None:
    return None if us is None else _to_dt(us)


# -- status codes ------------------------------------------------------------------------------
_STATUSES: tuple[QueuedTaskStatus, ...] = tuple(QueuedTaskStatus)  # code -> status
_CODE: dict[QueuedTaskStatus, int] = {s: code for code, s in enumerate(_STATUSES)}
_STAMPED_CODES = frozenset(_CODE[s] for s in STAMPED_STATUSES)
_RECOVERABLE_CODES = frozenset(_CODE[s] for s in RECOVERABLE_STATUSES)
_QUEUED = _CODE[QueuedTaskStatus.QUEUED]
_IN_PROGRESS = _CODE[QueuedTaskStatus.IN_PROGRESS]
_COMPLETED = _CODE[QueuedTaskStatus.COMPLETED]
_CANCELLED = _CODE[QueuedTaskStatus.CANCELLED]
_SERVICE_STOPPED = _CODE[QueuedTaskStatus.SERVICE_STOPPED]
_FAILED = _CODE[QueuedTaskStatus.FAILED]
_WAITING_QUEUE = _CODE[QueuedTaskStatus.WAITING_QUEUE]
_S_IN_PROGRESS = QueuedTaskStatus.IN_PROGRESS
_S_COMPLETED = QueuedTaskStatus.COMPLETED
assert _CODE[_S_COMPLETED] in _STAMPED_CODES and _CODE[_S_IN_PROGRESS] not in _STAMPED_CODES

# -- packed audits: one record per audit, concatenated per slot (native layout: never saved) -
_STATUS_AUDIT = struct.Struct("qqB")  # seq, microseconds, status code
_RUNS_AUDIT = struct.Struct("qqdB")  # seq, microseconds, execution ms, status code
_pack_status_audit = _STATUS_AUDIT.pack

# the plain calls of ``inline_persist`` and ``inline_transitions``
KindOf = Callable[[str, str, str, AuditLevel], int]
PersistQueued = Callable[[uuid.UUID, int, str, AuditLevel, str | None], None]
InProgressMark = Callable[[uuid.UUID, AuditLevel], None]
CompletedMark = Callable[[uuid.UUID, float, AuditLevel], None]

# -- the kind table: (type, handler, queue name, audit level) ----------------------------------
Kind = tuple[str, str, str, AuditLevel]
K_TYPE: Final = 0
K_QUEUE: Final = 2

# -- the rare definition fields of a row, in one tuple (absent: all defaults) -----------------
Extra = tuple[
    int | None, bool, str | None, str | None, int | None, int | None, str | None, int | None
]
X_SCHEDULED: Final = 0  # microseconds
X_RECURRING: Final = 1
X_RECURRING_TASK: Final = 2
X_RECURRING_INFO: Final = 3
X_MAX_RUNS: Final = 4
X_RUN_UNTIL: Final = 5  # microseconds
X_TASK_KEY: Final = 6
X_RETRIED_FROM: Final = 7  # id int
_NO_EXTRA: Extra = (None, False, None, None, None, None, None, None)

_CHUNK = 4096  # slots added at a time


def _put(column: dict[int, Any], slot: int, value: object, default: object) -> None:
    """Set a sparse column: only values other than the default take an entry."""
    if value == default:
        column.pop(slot, None)
    else:
        column[slot] = value


def _extra(task: QueuedTask, retried_from: int | None) -> Extra | None:
    extra: Extra = (
        _opt_us(task.scheduled_execution_utc),
        task.is_recurring,
        task.recurring_task,
        task.recurring_info,
        task.max_runs,
        _opt_us(task.run_until),
        task.task_key,
        retried_from,
    )
    return None if extra == _NO_EXTRA else extra


class MemoryTaskStorage:
    """Keeps every row in process memory. Nothing survives the process.

    Lookups by id and task key are dictionary hits; recovery pages walk a keyset index.
    Every method is atomic with respect to the event loop (no awaits inside), so no lock
    is needed. One instance may be shared by several hosts in one process (tests).
    """

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now  # `utc_now` itself: timestamps come from `time_ns` instead
        self._index: dict[int, int] = {}  # id int -> slot
        self._free: list[int] = []  # blank slots, the lowest last
        # columns indexed by slot (see the module docstring)
        self._kind: array[int] = array("I")
        self._requests: list[str | None] = []
        self._created: array[int] = array("q")
        self._status = bytearray()
        self._last: array[int] = array("q")
        self._ms: array[float] = array("d")
        self._audits: list[bytes] = []
        self._runs: list[bytes] = []
        # sparse columns: slot -> value
        self._extras: dict[int, Extra] = {}
        self._traces: dict[int, str] = {}
        self._exceptions: dict[int, str] = {}
        self._run_counts: dict[int, int] = {}
        self._next_runs: dict[int, int] = {}
        self._recovery: dict[int, int] = {}
        self._audit_exceptions: dict[int, str] = {}  # audit seq -> exception text
        # the kind table
        self._kinds: list[Kind] = []
        self._kind_ids: dict[Kind, int] = {}

        self._keys: dict[str, int] = {}  # task key -> id int
        self._order: list[int] = []  # id ints sorted by (created_at_utc, id)
        self._logs: dict[int, list[TaskExecutionLog]] = {}
        self._paused: set[str] = set()
        self._seq = 0
        self._last_created = _NO_TIME
        self._last_id = -1

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; the rows stay for a later host in the same process."""

    def __len__(self) -> int:
        return len(self._index)

    # -- slots -----------------------------------------------------------------------------
    def _grow(self) -> None:
        """Add a chunk of blank slots."""
        start, n = len(self._status), _CHUNK
        self._kind.extend(array("I", [0]) * n)
        self._requests.extend([None] * n)
        self._created.extend(array("q", [_NO_TIME]) * n)
        self._status.extend(bytes([_QUEUED]) * n)
        self._last.extend(array("q", [_NO_TIME]) * n)
        self._ms.extend(array("d", [0.0]) * n)
        self._audits.extend([b""] * n)
        self._runs.extend([b""] * n)
        self._free.extend(range(start + n - 1, start - 1, -1))

    def _new_slot(self, key: int) -> int:
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self._index[key] = slot
        return slot

    def _blank(self, slot: int) -> None:
        """Reset a slot to the state of a new Queued row and free it."""
        self._requests[slot] = None
        self._status[slot] = _QUEUED
        self._last[slot] = _NO_TIME
        self._ms[slot] = 0.0
        if self._audit_exceptions:
            for seq, *_ in _STATUS_AUDIT.iter_unpack(self._audits[slot]):
                self._audit_exceptions.pop(seq, None)
            for seq, *_ in _RUNS_AUDIT.iter_unpack(self._runs[slot]):
                self._audit_exceptions.pop(seq, None)
        self._audits[slot] = self._runs[slot] = b""
        for sparse in (
            self._extras,
            self._traces,
            self._exceptions,
            self._run_counts,
            self._next_runs,
            self._recovery,
        ):
            sparse.pop(slot, None)
        self._free.append(slot)

    def kind_of(self, task_type: str, handler: str, queue_name: str, level: AuditLevel) -> int:
        """The number of a row kind (type, handler, queue, audit level) in this storage's
        kind table, added when new; numbers stay valid for the storage's life."""
        kind: Kind = (task_type, handler, queue_name, AuditLevel(level))
        number = self._kind_ids.get(kind)
        if number is None:
            number = self._kind_ids[kind] = len(self._kinds)
            self._kinds.append(kind)
        return number

    def _stamp(self) -> int:
        """The storage clock's current time in microseconds."""
        now = self._now
        return time_ns() // 1000 if now is utc_now else _to_us(now())

    def _add_to_order(self, key: int, created: int) -> None:
        if created > self._last_created or (created == self._last_created and key > self._last_id):
            self._order.append(key)  # the usual case: the newest row
            self._last_created, self._last_id = created, key
        else:
            bisect.insort(self._order, key, key=self._order_key)

    def _order_key(self, key: int) -> tuple[int, int]:
        return (self._created[self._index[key]], key)

    def _audit(self, slot: int, us: int, code: int, exception: str | None) -> None:
        self._seq = seq = self._seq + 1
        self._audits[slot] += _pack_status_audit(seq, us, code)
        if exception is not None:
            self._audit_exceptions[seq] = exception

    def _row(self, key: int, slot: int) -> QueuedTask:
        task_type, handler, queue_name, level = self._kinds[self._kind[slot]]
        request = self._requests[slot]
        assert request is not None
        extra = self._extras.get(slot, _NO_EXTRA)
        last = self._last[slot]
        next_run = self._next_runs.get(slot)
        retried_from = extra[X_RETRIED_FROM]
        return QueuedTask(
            uuid.UUID(int=key),
            task_type,
            request,
            handler,
            _STATUSES[self._status[slot]],
            _to_dt(self._created[slot]),
            queue_name,
            level,
            _opt_dt(extra[X_SCHEDULED]),
            None if last == _NO_TIME else _to_dt(last),
            self._ms[slot],
            self._exceptions.get(slot),
            extra[X_RECURRING],
            extra[X_RECURRING_TASK],
            extra[X_RECURRING_INFO],
            self._run_counts.get(slot),
            extra[X_MAX_RUNS],
            _opt_dt(extra[X_RUN_UNTIL]),
            None if next_run is None else _to_dt(next_run),
            extra[X_TASK_KEY],
            self._recovery.get(slot, 0),
            self._traces.get(slot),
            None if retried_from is None else uuid.UUID(int=retried_from),
        )

    def _transition(
        self,
        task_id: uuid.UUID,
        code: int,
        exception: str | None,
        level: AuditLevel,
        execution_time_ms: float | None = None,
        clear_next_run: bool = False,
    ) -> int | None:
        slot = self._index.get(task_id.int)
        if slot is None:
            return None
        self._status[slot] = code
        exceptions = self._exceptions
        if exception is not None:
            exceptions[slot] = exception
        elif exceptions:
            exceptions.pop(slot, None)
        if execution_time_ms is not None:
            self._ms[slot] = execution_time_ms
        if clear_next_run:
            self._next_runs.pop(slot, None)
        stamped = code in _STAMPED_CODES
        audited = wants_status_audit(level, _STATUSES[code], exception)
        if stamped or audited:
            us = self._stamp()
            if stamped:
                self._last[slot] = us
            if audited:
                self._audit(slot, us, code, exception)
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
        # everything that can fail before the row takes a slot
        created = _to_us(task.created_at_utc)
        last = _opt_us(task.last_execution_utc)
        next_run = _opt_us(task.next_run_utc)
        extra = _extra(task, None if task.retried_from is None else task.retried_from.int)
        kind = self.kind_of(task.type, task.handler, task.queue_name, task.audit_level)
        code = _CODE[task.status]

        slot = self._new_slot(key)
        self._kind[slot] = kind
        self._requests[slot] = task.request
        self._created[slot] = created
        self._status[slot] = code
        self._last[slot] = _NO_TIME if last is None else last
        self._ms[slot] = task.execution_time_ms
        if extra is not None:
            self._extras[slot] = extra
        _put(self._traces, slot, task.trace_context, None)
        _put(self._exceptions, slot, task.exception, None)
        _put(self._run_counts, slot, task.current_run_count, None)
        _put(self._next_runs, slot, next_run, None)
        _put(self._recovery, slot, task.recovery_dispatch_failure_count, 0)
        if task_key is not None:
            self._keys[task_key] = key
        self._add_to_order(key, created)
        level = task.audit_level
        if code != _WAITING_QUEUE and (
            level is _FULL or wants_status_audit(level, task.status, task.exception)
        ):
            self._audit(slot, self._stamp(), code, task.exception)

    def inline_persist(self) -> tuple[KindOf, PersistQueued] | None:
        """:meth:`kind_of` and :meth:`persist_queued` for the engine's hot path, unless a
        subclass overrides :meth:`persist` (then every row goes through the override)."""
        if type(self).persist is not MemoryTaskStorage.persist:
            return None
        return self.kind_of, self.persist_queued

    def persist_queued(
        self,
        task_id: uuid.UUID,
        kind: int,
        request: str,
        audit_level: AuditLevel,
        trace_context: str | None,
    ) -> None:
        """Insert the row of an immediate dispatch without a task key (status Queued),
        created now by the storage's clock; ``kind`` is :meth:`kind_of` its type, handler,
        queue and ``audit_level``.

        The same as ``persist`` of that row, without building a ``QueuedTask`` first:
        the engine's hot path calls it (see :meth:`inline_persist`).
        """
        key = task_id.int
        # `_stamp`, `_new_slot` and `_add_to_order` inlined: this is the engine's hot path
        now = self._now
        us = time_ns() // 1000 if now is utc_now else _to_us(now())
        free = self._free
        if not free:
            self._grow()
        slot = free[-1]
        if self._index.setdefault(key, slot) != slot:  # one lookup for check and insert
            raise ValueError(f"A task with id {task_id} already exists.")
        free.pop()  # a blank slot: Queued, no last execution, no audits
        self._kind[slot] = kind
        self._requests[slot] = request
        self._created[slot] = us
        if trace_context is not None:
            self._traces[slot] = trace_context
        if us > self._last_created or (us == self._last_created and key > self._last_id):
            self._order.append(key)
            self._last_created, self._last_id = us, key
        else:
            bisect.insort(self._order, key, key=self._order_key)
        if audit_level is _FULL or wants_status_audit(audit_level, _STATUSES[_QUEUED], None):
            self._seq = seq = self._seq + 1
            self._audits[slot] = _pack_status_audit(seq, us, _QUEUED)

    async def get(self, task_id: uuid.UUID) -> QueuedTask | None:
        """The row, or ``None``."""
        key = task_id.int
        slot = self._index.get(key)
        return None if slot is None else self._row(key, slot)

    async def get_by_task_key(self, task_key: str) -> QueuedTask | None:
        """The row holding ``task_key``, or ``None``."""
        key = self._keys.get(task_key)
        return None if key is None else self._row(key, self._index[key])

    async def update_task(self, task: QueuedTask, *, revive: bool = False) -> None:
        """Overwrite the definition columns (see the protocol)."""
        key = task.id.int
        slot = self._index.get(key)
        if slot is None:
            raise KeyError(f"Task {task.id} does not exist; it cannot be updated.")
        old = self._extras.get(slot, _NO_EXTRA)
        extra = _extra(task, old[X_RETRIED_FROM])  # created, trace, retried-from are kept
        next_run = _opt_us(task.next_run_utc)
        old_key = old[X_TASK_KEY]
        if task.task_key != old_key:
            if task.task_key is not None:
                owner = self._keys.get(task.task_key)
                if owner is not None and owner != key:
                    raise TaskKeyConflictError(task.task_key)
                self._keys[task.task_key] = key
            if old_key is not None:
                self._keys.pop(old_key, None)
        self._kind[slot] = self.kind_of(task.type, task.handler, task.queue_name, task.audit_level)
        self._requests[slot] = task.request
        _put(self._extras, slot, extra, None)
        _put(self._next_runs, slot, next_run, None)
        if revive and self._status[slot] == _CANCELLED:
            self._status[slot] = _WAITING_QUEUE
            self._run_counts[slot] = 0
            self._exceptions.pop(slot, None)

    async def remove(self, task_id: uuid.UUID) -> None:
        """Delete the row, its audits and logs."""
        key = task_id.int
        slot = self._index.get(key)
        if slot is None:
            return
        order = self._order
        i = bisect.bisect_left(order, (self._created[slot], key), key=self._order_key)
        if i < len(order) and order[i] == key:
            del order[i]
        task_key = self._extras.get(slot, _NO_EXTRA)[X_TASK_KEY]
        if task_key is not None and self._keys.get(task_key) == key:
            del self._keys[task_key]
        del self._index[key]
        self._logs.pop(key, None)
        self._blank(slot)

    async def retrieve_pending(
        self, last_created_at: datetime | None, last_id: uuid.UUID | None, take: int
    ) -> list[QueuedTask]:
        """Recoverable rows after the keyset, ascending."""
        now = self._now()
        order = self._order
        start = 0
        if last_created_at is not None and last_id is not None:
            after = (_to_us(last_created_at), last_id.int)
            start = bisect.bisect_right(order, after, key=self._order_key)
        out: list[QueuedTask] = []
        if take <= 0:
            return out
        index, status, next_runs = self._index, self._status, self._next_runs
        for i in range(start, len(order)):
            key = order[i]
            slot = index[key]
            if status[slot] not in _RECOVERABLE_CODES and slot not in next_runs:
                continue  # never recoverable: skip building the row
            model = self._row(key, slot)
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
        key = task_id.int
        slot = self._index.get(key)
        if slot is None or not is_recoverable(self._row(key, slot), self._now()):
            return False
        self._transition(task_id, _QUEUED, None, audit_level)
        return True

    async def set_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark InProgress."""
        self.mark_in_progress(task_id, audit_level)

    async def set_completed(
        self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
    ) -> None:
        """Mark Completed."""
        self.mark_completed(task_id, execution_time_ms, audit_level)

    def inline_transitions(self) -> tuple[InProgressMark, CompletedMark] | None:
        """:meth:`mark_in_progress` and :meth:`mark_completed` for the engine's hot path
        (plain calls, no coroutine), unless a subclass overrides ``set_in_progress`` or
        ``set_completed`` (then every transition goes through the override)."""
        cls = type(self)
        if (
            cls.set_in_progress is not MemoryTaskStorage.set_in_progress
            or cls.set_completed is not MemoryTaskStorage.set_completed
        ):
            return None
        return self.mark_in_progress, self.mark_completed

    # The engine's hot path: `_transition` specialised for InProgress (no time stamp) and
    # for Completed (stamped, with its duration), neither with an exception, `_stamp` and
    # `_audit` written in place. Calling `_transition` from these two instead costs 3.0% of
    # the engine's instructions per task (callgrind, benchmarks.engine).

    def mark_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """``set_in_progress`` as a plain call."""
        slot = self._index.get(task_id.int)
        if slot is None:
            return
        self._status[slot] = _IN_PROGRESS
        if self._exceptions:
            self._exceptions.pop(slot, None)
        if audit_level is _FULL or wants_status_audit(audit_level, _S_IN_PROGRESS, None):
            now = self._now
            us = time_ns() // 1000 if now is utc_now else _to_us(now())
            self._seq = seq = self._seq + 1
            self._audits[slot] += _pack_status_audit(seq, us, _IN_PROGRESS)

    def mark_completed(
        self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
    ) -> None:
        """``set_completed`` as a plain call."""
        slot = self._index.get(task_id.int)
        if slot is None:
            return
        self._status[slot] = _COMPLETED
        if self._exceptions:
            self._exceptions.pop(slot, None)
        self._ms[slot] = execution_time_ms
        now = self._now
        self._last[slot] = us = time_ns() // 1000 if now is utc_now else _to_us(now())
        if audit_level is _FULL or wants_status_audit(audit_level, _S_COMPLETED, None):
            self._seq = seq = self._seq + 1
            self._audits[slot] += _pack_status_audit(seq, us, _COMPLETED)

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
        self._transition(task_id, _CODE[status], exception, audit_level, execution_time_ms)

    # -- recurring accounting --------------------------------------------------------------
    async def get_current_run_count(self, task_id: uuid.UUID) -> int:
        """Runs so far."""
        slot = self._index.get(task_id.int)
        return 0 if slot is None else self._run_counts.get(slot, 0)

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
        next_us = _opt_us(next_run)
        self._ms[slot] = execution_time_ms
        self._run_counts[slot] = min(self._run_counts.get(slot, 0) + 1, _RUN_COUNTER_MAX)
        _put(self._next_runs, slot, next_us, None)
        code = self._status[slot]
        exception = self._exceptions.get(slot)
        if wants_runs_audit(audit_level, _STATUSES[code], exception):
            self._seq = seq = self._seq + 1
            self._runs[slot] += _RUNS_AUDIT.pack(seq, self._stamp(), execution_time_ms, code)
            if exception is not None:
                self._audit_exceptions[seq] = exception

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
        _opt_us(next_run)  # refuse a naive time before changing anything
        self._transition(task_id, _COMPLETED, None, audit_level, execution_time_ms)
        self._count_run(task_id, execution_time_ms, next_run, audit_level)

    async def set_recurring_series_completed(
        self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
    ) -> None:
        """Completed, no next run."""
        slot = self._transition(task_id, _COMPLETED, None, audit_level, execution_time_ms, True)
        if slot is None:
            raise KeyError(f"Task {task_id} does not exist.")

    async def set_recurring_task_poisoned(
        self, task_id: uuid.UUID, exception: str, audit_level: AuditLevel
    ) -> None:
        """Failed, no next run."""
        self._transition(task_id, _FAILED, exception, audit_level, None, True)

    def _set_recovery_failures(self, task_id: uuid.UUID, value: Callable[[int], int]) -> int:
        slot = self._index.get(task_id.int)
        if slot is None:
            return 0
        count = value(self._recovery.get(slot, 0))
        _put(self._recovery, slot, count, 0)
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
        if slot is None:
            return []
        exception = self._audit_exceptions.get
        return [
            StatusAudit(seq, task_id, _to_dt(us), _STATUSES[code], exception(seq))
            for seq, us, code in _STATUS_AUDIT.iter_unpack(self._audits[slot])
        ]

    async def get_runs_audits(self, task_id: uuid.UUID) -> list[RunsAudit]:
        """Run history, oldest first."""
        slot = self._index.get(task_id.int)
        if slot is None:
            return []
        exception = self._audit_exceptions.get
        return [
            RunsAudit(seq, task_id, _to_dt(us), ms, _STATUSES[code], exception(seq))
            for seq, us, ms, code in _RUNS_AUDIT.iter_unpack(self._runs[slot])
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
    def _created_between(self, since: datetime | None, until: datetime | None) -> list[int]:
        """Slots of the rows created in [since, until) (either bound optional)."""
        slots = list(self._index.values())
        created = self._created
        if since is not None:
            low = _to_us(since)
            slots = [s for s in slots if created[s] >= low]
        if until is not None:
            high = _to_us(until)
            slots = [s for s in slots if created[s] < high]
        return slots

    def _matches(self, slot: int, q: TaskQuery) -> bool:
        task_type, handler, queue_name, _ = self._kinds[self._kind[slot]]
        extra = self._extras.get(slot, _NO_EXTRA)
        if q.statuses is not None and _STATUSES[self._status[slot]] not in q.statuses:
            return False
        if q.task_type_contains and q.task_type_contains.lower() not in task_type.lower():
            return False
        if q.queue_name is not None and queue_name != q.queue_name:
            return False
        if q.is_recurring is not None and extra[X_RECURRING] != q.is_recurring:
            return False
        if q.search:
            needle = q.search.lower()
            hay = (task_type, handler, extra[X_TASK_KEY] or "")
            if not any(needle in h.lower() for h in hay):
                return False
        return True

    def _sort_value(self, field: SortField) -> Callable[[int], Any]:
        """slot -> the row's value of ``field`` (``None`` when absent)."""
        kinds, kind = self._kinds, self._kind
        if field is SortField.CREATED_AT:
            return self._created.__getitem__
        if field is SortField.LAST_EXECUTION:
            last = self._last
            return lambda s: None if last[s] == _NO_TIME else last[s]
        if field is SortField.SCHEDULED_EXECUTION:
            extras = self._extras
            return lambda s: extras.get(s, _NO_EXTRA)[X_SCHEDULED]
        if field is SortField.STATUS:
            status = self._status
            return lambda s: _STATUSES[status[s]].value
        if field is SortField.TYPE:
            return lambda s: kinds[kind[s]][K_TYPE]
        return lambda s: kinds[kind[s]][K_QUEUE]

    async def query_tasks(self, query: TaskQuery) -> TaskPage:
        """Filter, sort and page (an in-memory scan; memory storage only)."""
        ids = {slot: key for key, slot in self._index.items()}
        slots = self._created_between(query.created_after, query.created_before)
        rows = [s for s in slots if self._matches(s, query)]
        value = self._sort_value(query.sort_by)
        created = self._created

        def tiebreak(slot: int) -> tuple[int, int]:
            return (created[slot], ids[slot])

        present = [s for s in rows if value(s) is not None]
        absent = [s for s in rows if value(s) is None]
        present.sort(key=lambda s: (value(s), *tiebreak(s)), reverse=query.descending)
        absent.sort(key=tiebreak, reverse=query.descending)
        ordered = present + absent  # rows without a value sort last
        page = max(1, query.page)
        size = max(1, query.page_size)
        start = (page - 1) * size
        items = [self._row(ids[s], s) for s in ordered[start : start + size]]
        return TaskPage(items=items, total_count=len(rows), page=page, page_size=size)

    async def count_by_status(
        self, created_since: datetime | None = None
    ) -> dict[QueuedTaskStatus, int]:
        """Tasks per status."""
        out: dict[QueuedTaskStatus, int] = {}
        status = self._status
        for slot in self._created_between(created_since, None):
            s = _STATUSES[status[slot]]
            out[s] = out.get(s, 0) + 1
        return out

    async def count_by_queue_and_status(
        self, created_since: datetime | None = None
    ) -> dict[tuple[str, QueuedTaskStatus], int]:
        """Tasks per (queue, status)."""
        out: dict[tuple[str, QueuedTaskStatus], int] = {}
        kinds, kind, status = self._kinds, self._kind, self._status
        for slot in self._created_between(created_since, None):
            k = (kinds[kind[slot]][K_QUEUE], _STATUSES[status[slot]])
            out[k] = out.get(k, 0) + 1
        return out
