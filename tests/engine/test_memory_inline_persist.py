"""The in-memory storage's inline intake of immediate dispatches equals ``persist``; its
column layout keeps times exact, leaves no garbage-collected objects per row and recycles
slots cleanly."""

from __future__ import annotations

import gc
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from evertask import ManualClock, MemoryTaskStorage, QueuedTask, uuid7
from evertask_abstractions import AuditLevel, PersistenceError, QueuedTaskStatus
from tests.engine.tasks import Ping, PingHandler
from tests.helpers import build_host, wait_status

NOW = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
TRACE = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


def _queued(tid: uuid.UUID, created: datetime, level: AuditLevel = AuditLevel.FULL) -> QueuedTask:
    return QueuedTask(
        tid,
        "app.tasks:Mail",
        '{"to":"a@b.c"}',
        "app.handlers:MailHandler",
        QueuedTaskStatus.QUEUED,
        created,
        "mail",
        level,
        trace_context=TRACE,
    )


def _persist_queued(storage: MemoryTaskStorage, row: QueuedTask) -> None:
    inline = storage.inline_persist()
    assert inline is not None
    kind_of, persist = inline
    kind = kind_of(row.type, row.handler, "mail", row.audit_level)
    persist(row.id, kind, row.request, row.audit_level, TRACE)


async def test_persist_queued_stores_what_persist_stores() -> None:
    for level in (AuditLevel.FULL, AuditLevel.MINIMAL, AuditLevel.NONE):
        inline, reference = MemoryTaskStorage(lambda: NOW), MemoryTaskStorage(lambda: NOW)
        tid = uuid7()
        row = _queued(tid, NOW, level)
        await reference.persist(row)
        _persist_queued(inline, row)  # created at the storage clock's time
        assert await inline.get(tid) == await reference.get(tid) == row
        inline_audits = [(a.new_status, a.exception) for a in await inline.get_status_audits(tid)]
        reference_audits = [
            (a.new_status, a.exception) for a in await reference.get_status_audits(tid)
        ]
        assert inline_audits == reference_audits
        assert inline_audits == (
            [(QueuedTaskStatus.QUEUED, None)] if level is AuditLevel.FULL else []
        )
        page = await inline.retrieve_pending(None, None, 10)
        assert [t.id for t in page] == [tid]


def test_a_subclass_that_overrides_persist_gets_every_row() -> None:
    class Audited(MemoryTaskStorage):
        async def persist(self, task: QueuedTask) -> None:
            await super().persist(task)

    assert Audited().inline_persist() is None
    assert MemoryTaskStorage().inline_persist() is not None


async def test_the_real_clock_stamps_rows_and_audits() -> None:
    storage = MemoryTaskStorage()
    tid = uuid7()
    before = datetime.now(UTC) - timedelta(microseconds=1)
    _persist_queued(storage, _queued(tid, NOW))
    await storage.set_in_progress(tid, AuditLevel.FULL)
    await storage.set_completed(tid, 1.5, AuditLevel.FULL)
    after = datetime.now(UTC) + timedelta(microseconds=1)
    row = await storage.get(tid)
    assert row is not None and row.status is QueuedTaskStatus.COMPLETED
    assert row.created_at_utc.tzinfo is UTC and before <= row.created_at_utc <= after
    assert row.last_execution_utc is not None
    assert row.created_at_utc <= row.last_execution_utc <= after
    assert row.execution_time_ms == 1.5
    audits = await storage.get_status_audits(tid)
    assert [a.new_status for a in audits] == [
        QueuedTaskStatus.QUEUED,
        QueuedTaskStatus.IN_PROGRESS,
        QueuedTaskStatus.COMPLETED,
    ]
    times = [a.updated_at_utc for a in audits]
    assert times == sorted(times) and before <= times[0] and times[-1] <= after
    assert audits[0].id < audits[1].id < audits[2].id


@pytest.mark.parametrize(
    "start",
    [
        datetime(9999, 12, 31, 23, 59, 58, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1901, 3, 4, 5, 6, 7, 123_457, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
async def test_any_aware_time_round_trips_exactly(start: datetime) -> None:
    clock = ManualClock(start)
    storage = MemoryTaskStorage(clock.now)
    tid = uuid7()
    _persist_queued(storage, _queued(tid, start))
    clock.advance(timedelta(microseconds=1))
    await storage.set_completed(tid, 2.25, AuditLevel.FULL)
    row = await storage.get(tid)
    assert row is not None
    assert row.created_at_utc == start and row.created_at_utc.tzinfo is UTC
    assert row.last_execution_utc == start + timedelta(microseconds=1)
    audits = await storage.get_status_audits(tid)
    assert [a.updated_at_utc for a in audits] == [start, start + timedelta(microseconds=1)]

    # every time column of `persist`, and the recurring accounting
    other = QueuedTask(
        uuid7(),
        "t",
        "{}",
        "h",
        QueuedTaskStatus.WAITING_QUEUE,
        start,
        scheduled_execution_utc=start,
        last_execution_utc=start,
        is_recurring=True,
        run_until=start,
        next_run_utc=start,
    )
    await storage.persist(other)
    assert await storage.get(other.id) == other
    await storage.complete_recurring_run(other.id, 3.0, start, AuditLevel.FULL)
    runs = await storage.get_runs_audits(other.id)
    assert [(r.executed_at, r.execution_time_ms) for r in runs] == [(clock.now(), 3.0)]
    later = uuid7()  # created a microsecond after the others
    _persist_queued(storage, _queued(later, clock.now()))
    assert (await storage.get(later)) == _queued(later, clock.now())
    # keyset order by (created, id): `other` (not recoverable after `run_until`), then `later`
    assert [t.id for t in await storage.retrieve_pending(start, tid, 10)] == [later]
    assert [t.id for t in await storage.retrieve_pending(clock.now(), later, 10)] == []


async def test_naive_times_are_refused_before_a_row_is_stored() -> None:
    storage = MemoryTaskStorage()
    row = _queued(uuid7(), NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="Naive datetime"):
        await storage.persist(row)
    assert len(storage) == 0 and await storage.get(row.id) is None


async def test_the_hot_path_leaves_no_collected_objects_per_row() -> None:
    storage = MemoryTaskStorage()
    ids = [uuid7() for _ in range(2_000)]
    inline = storage.inline_persist()
    assert inline is not None
    kind_of, persist = inline
    marks = storage.inline_transitions()
    assert marks is not None
    mark_in_progress, mark_completed = marks
    row = _queued(ids[0], NOW)
    # warm up: the first chunk of slots, the kind table, the code paths
    kind = kind_of(row.type, row.handler, "mail", AuditLevel.FULL)
    persist(uuid7(), kind, row.request, AuditLevel.FULL, None)
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        before = gc.get_count()[0]
        for tid in ids:
            persist(tid, kind, row.request, AuditLevel.FULL, TRACE)
            mark_in_progress(tid, AuditLevel.FULL)
            mark_completed(tid, 1.0, AuditLevel.FULL)
        grown = gc.get_count()[0] - before
    finally:
        if enabled:
            gc.enable()
    # objects the collector tracks, allocated and still alive (rows kept as tuples: >= 3 each)
    assert grown < 50, grown
    assert len(await storage.get_status_audits(ids[-1])) == 3


async def test_a_recycled_slot_carries_nothing_from_the_removed_row() -> None:
    clock = ManualClock(NOW)
    storage = MemoryTaskStorage(clock.now)
    old = QueuedTask(
        uuid7(),
        "old.Type",
        '{"old":1}',
        "old.Handler",
        QueuedTaskStatus.QUEUED,
        NOW,
        "old-queue",
        scheduled_execution_utc=NOW,
        is_recurring=True,
        recurring_task="every minute",
        recurring_info="Every 1 minute",
        max_runs=9,
        next_run_utc=NOW,
        task_key="the-key",
        trace_context=TRACE,
        retried_from=uuid7(),
    )
    await storage.persist(old)
    await storage.set_status(old.id, QueuedTaskStatus.FAILED, "boom", AuditLevel.FULL, 4.0)
    await storage.update_current_run(old.id, 4.0, NOW, AuditLevel.FULL)
    await storage.increment_recovery_failure(old.id)
    slot = storage._index[old.id.int]
    await storage.remove(old.id)

    clock.advance(1)
    new = QueuedTask(
        uuid7(), "new.Type", "{}", "new.Handler", QueuedTaskStatus.QUEUED, clock.now(), "mail"
    )
    inline = storage.inline_persist()
    assert inline is not None
    kind_of, persist = inline
    kind = kind_of(new.type, new.handler, "mail", AuditLevel.FULL)
    persist(new.id, kind, new.request, AuditLevel.FULL, None)
    assert storage._index[new.id.int] == slot  # the same slot, reused
    assert await storage.get(new.id) == new
    audits = await storage.get_status_audits(new.id)
    assert [(a.new_status, a.exception) for a in audits] == [(QueuedTaskStatus.QUEUED, None)]
    assert await storage.get_runs_audits(new.id) == []
    assert await storage.get_current_run_count(new.id) == 0
    assert await storage.get_by_task_key("the-key") is None
    assert storage._audit_exceptions == {}  # the removed row's audit texts went with it


async def test_the_engine_creates_rows_at_its_clock_time() -> None:
    clock = ManualClock(datetime(2031, 2, 3, 4, 5, 6, 789_012, tzinfo=UTC))
    host, _ = build_host([PingHandler], lambda o: o.use_clock(clock))
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1))
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
        assert host.storage is not None
        row = await host.storage.get(tid)
    assert row is not None and row.created_at_utc == clock.now()
    assert row.last_execution_utc == clock.now()


async def test_a_failing_inline_intake_reports_the_task() -> None:
    class Broken(MemoryTaskStorage):
        def persist_queued(self, *args: object) -> None:
            raise OSError("disk full")

    host, _ = build_host([PingHandler], storage=False, builder=lambda b: b.use_storage(Broken()))
    async with host:
        with pytest.raises(PersistenceError, match="could not be persisted.*disk full"):
            await host.dispatcher.dispatch(Ping(n=1))


@pytest.mark.parametrize("level", list(AuditLevel))
async def test_the_inline_transitions_write_what_the_statuses_need(level: AuditLevel) -> None:
    clock = ManualClock(NOW)
    storage = MemoryTaskStorage(clock.now)
    marks = storage.inline_transitions()
    assert marks is not None
    mark_in_progress, mark_completed = marks
    tid = uuid7()
    await storage.persist(_queued(tid, NOW, level))
    await storage.set_status(tid, QueuedTaskStatus.FAILED, "boom", level)  # a row with an error
    failed = await storage.get(tid)
    assert failed is not None and failed.exception == "boom"
    before = [(a.new_status, a.exception) for a in await storage.get_status_audits(tid)]

    clock.advance(timedelta(seconds=1))
    mark_in_progress(tid, level)
    row = await storage.get(tid)
    assert row is not None and row.status is QueuedTaskStatus.IN_PROGRESS
    assert row.exception is None  # a new attempt clears the previous error
    assert row.last_execution_utc == failed.last_execution_utc  # InProgress stamps no time

    clock.advance(timedelta(seconds=1))
    mark_completed(tid, 12.5, level)
    row = await storage.get(tid)
    assert row is not None and row.status is QueuedTaskStatus.COMPLETED
    assert row.exception is None and row.execution_time_ms == 12.5
    assert row.last_execution_utc == NOW + timedelta(seconds=2)

    audits = await storage.get_status_audits(tid)
    added = [(a.new_status, a.exception, a.updated_at_utc) for a in audits[len(before) :]]
    if level is AuditLevel.FULL:
        assert added == [
            (QueuedTaskStatus.IN_PROGRESS, None, NOW + timedelta(seconds=1)),
            (QueuedTaskStatus.COMPLETED, None, NOW + timedelta(seconds=2)),
        ]
    else:  # no error, no audit row below FULL
        assert added == []
    mark_in_progress(uuid7(), level)  # an unknown id is ignored, as by set_in_progress
    mark_completed(uuid7(), 1.0, level)


def test_a_subclass_that_overrides_a_transition_gets_every_call() -> None:
    class Counted(MemoryTaskStorage):
        async def set_completed(
            self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
        ) -> None:
            await super().set_completed(task_id, execution_time_ms, audit_level)

    assert Counted().inline_transitions() is None
    assert MemoryTaskStorage().inline_transitions() is not None


async def test_the_engine_calls_an_overridden_transition() -> None:
    calls: list[tuple[str, uuid.UUID]] = []

    class Counted(MemoryTaskStorage):
        async def set_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
            calls.append(("in_progress", task_id))
            await super().set_in_progress(task_id, audit_level)

        async def set_completed(
            self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
        ) -> None:
            calls.append(("completed", task_id))
            await super().set_completed(task_id, execution_time_ms, audit_level)

    host, _ = build_host([PingHandler], storage=False, builder=lambda b: b.use_storage(Counted()))
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1))
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
    assert calls == [("in_progress", tid), ("completed", tid)]


async def test_an_immediate_dispatch_keeps_its_own_audit_level() -> None:
    host, _ = build_host([PingHandler])  # default audit level: Full
    async with host:
        storage = host.storage
        assert storage is not None
        ids = {}
        for level in (None, AuditLevel.NONE, AuditLevel.MINIMAL, None):
            tid = await host.dispatcher.dispatch(Ping(n=1), audit_level=level)
            await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
            ids[tid] = AuditLevel.FULL if level is None else level
        for tid, level in ids.items():
            row = await storage.get(tid)
            assert row is not None and row.audit_level is level and row.queue_name == "default"
            audits = [a.new_status for a in await storage.get_status_audits(tid)]
            assert audits == (
                [QueuedTaskStatus.QUEUED, QueuedTaskStatus.IN_PROGRESS, QueuedTaskStatus.COMPLETED]
                if level is AuditLevel.FULL
                else []
            )
