"""The SQL storages under the engine: builder extensions, end to end, restart recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import containers, providers

from evertask import ManualClock, add_evertask
from evertask.builder import EverTaskServiceBuilder
from evertask.storage import TaskQuery
from evertask.storage.protocol import FAST_PATHS_ENV, fast_paths_enabled
from evertask_abstractions import (
    AuditLevel,
    CancellationToken,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
)
from evertask_storage_efcore_like import RetentionComponent, RetentionPolicy, SqlTaskStorage

from .conftest import PG_URL

Q = QueuedTaskStatus


class Counter:
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.event = asyncio.Event()
        self.target = 0

    def hit(self, n: int) -> None:
        self.seen.append(n)
        if len(self.seen) >= self.target:
            self.event.set()


class Job(EverTask):
    n: int


class JobHandler(EverTaskHandler[Job]):
    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        self.logger.info("job %d", task.n)
        self.counter.hit(task.n)


class Services(containers.DeclarativeContainer):
    counter = providers.Singleton(Counter)


Configure = Callable[[EverTaskServiceBuilder], EverTaskServiceBuilder]


def _configure(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Configure:
    if backend == "sqlite":
        path = tmp_path / "engine.db"
        return lambda b: b.add_sqlite_storage(
            str(path), retention=RetentionPolicy(status_audit_retention_days=30)
        )
    schema = request.getfixturevalue("pg_schema")
    return lambda b: b.add_postgres_storage(PG_URL, schema=schema)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_tasks_run_and_resume_after_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    configure = _configure(backend, tmp_path, request)

    def build(container: Services) -> Any:
        return configure(
            add_evertask(
                container, lambda o: o.register_handler(JobHandler).set_max_degree_of_parallelism(8)
            )
        ).build()

    first = Services()
    host = build(first)
    storage = host.storage
    assert isinstance(storage, SqlTaskStorage)
    if backend == "sqlite":
        assert any(isinstance(c, RetentionComponent) for c in host.components)
    counter = first.counter()
    counter.target = 40
    async with host:
        await host.wait_recovered(10)
        ids = await asyncio.gather(*(host.dispatcher.dispatch(Job(n=i)) for i in range(40)))
        await asyncio.wait_for(counter.event.wait(), 10)
        later = await host.dispatcher.dispatch(
            Job(n=99), timedelta(hours=1), audit_level=AuditLevel.NONE
        )
        await host.pause_queue("default")
        paused = await host.dispatcher.dispatch(Job(n=100))
    assert sorted(counter.seen) == list(range(40))

    second = Services()
    host = build(second)
    counter = second.counter()
    counter.target = 1
    async with host:
        assert host.engine.queues.queues["default"].paused  # the pause survived
        await host.wait_recovered(10)
        storage = host.storage
        assert isinstance(storage, SqlTaskStorage)
        page = await storage.query_tasks(
            TaskQuery(statuses=frozenset({Q.COMPLETED}), page_size=100)
        )
        assert {t.id for t in page.items} == set(ids)
        delayed = await storage.get(later)
        assert delayed is not None and delayed.status is Q.WAITING_QUEUE
        await host.resume_queue("default")
        await asyncio.wait_for(counter.event.wait(), 10)
        assert counter.seen == [100]
        for _ in range(100):
            row = await storage.get(paused)
            if row is not None and row.status is Q.COMPLETED:
                break
            await asyncio.sleep(0.02)
        assert row is not None and row.status is Q.COMPLETED
        audits = await storage.get_status_audits(paused)
        assert [a.new_status for a in audits][-2:] == [Q.IN_PROGRESS, Q.COMPLETED]


class Gate:
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


class Slow(EverTask):
    n: int


class SlowHandler(EverTaskHandler[Slow]):
    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    async def handle(self, task: Slow, cancellation: CancellationToken) -> None:
        self.gate.entered.set()
        await self.gate.release.wait()


class GatedServices(Services):
    gate = providers.Singleton(Gate)


async def _until_status(storage: SqlTaskStorage, task_id: Any, status: QueuedTaskStatus) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        stored = await storage.get(task_id)
        if stored is not None and stored.status is status:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{stored} never became {status}"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_in_progress_is_written_for_running_tasks_and_coalesced_for_instant_ones(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    services = GatedServices()
    host = _configure(backend, tmp_path, request)(
        add_evertask(
            services,
            lambda o: (
                o.register_handler(JobHandler)
                .register_handler(SlowHandler)
                .set_default_audit_level(AuditLevel.NONE)
            ),
        )
    ).build()
    storage = host.storage
    assert isinstance(storage, SqlTaskStorage)
    writer_ops = full_ops = 0
    async with host:
        await host.wait_recovered(10)
        # a running task shows InProgress (the write is taken while the handler waits)
        slow = await host.dispatcher.dispatch(Slow(n=1))
        gate = services.gate()
        await asyncio.wait_for(gate.entered.wait(), 10)
        await _until_status(storage, slow, Q.IN_PROGRESS)
        gate.release.set()
        await _until_status(storage, slow, Q.COMPLETED)
        # an instant one at audit None: its InProgress write is replaced by Completed
        writer = storage.writer
        assert writer is not None
        counter = services.counter()
        counter.target = 1
        before = writer.operations
        fast = await host.dispatcher.dispatch(Job(n=1))
        await asyncio.wait_for(counter.event.wait(), 10)
        await _until_status(storage, fast, Q.COMPLETED)
        writer_ops = writer.operations - before
        # at Full too, with every status's audit row (InProgress's goes with Completed)
        counter.target = 2
        before = writer.operations
        full = await host.dispatcher.dispatch(Job(n=2), audit_level=AuditLevel.FULL)
        await asyncio.wait_for(counter.event.wait(), 10)
        await _until_status(storage, full, Q.COMPLETED)
        full_ops = writer.operations - before
        audits = await storage.get_status_audits(full)
        assert [a.new_status for a in audits] == [Q.QUEUED, Q.IN_PROGRESS, Q.COMPLETED]
    if fast_paths_enabled():
        assert writer_ops == 2  # persist + Completed (the InProgress write was withdrawn)
        assert full_ops == 2
    else:  # the canonical path: persist, InProgress, Completed (group commit may merge two)
        assert 2 <= writer_ops <= 3 and 2 <= full_ops <= 3


async def test_in_progress_waits_for_the_loops_next_turn_below_audit_full(tmp_path: Path) -> None:
    """An instant run at a level without an InProgress audit row begins no InProgress write;
    a run still going at the next turn begins one; at Full it begins at once; a write that
    could not be begun then is written before the outcome."""
    if not fast_paths_enabled():
        pytest.skip(f"the pipelined InProgress write is a fast path, off with {FAST_PATHS_ENV}=0")
    services = GatedServices()
    host = (
        add_evertask(
            services,
            lambda o: (
                o.register_handler(JobHandler)
                .register_handler(SlowHandler)
                .set_default_audit_level(AuditLevel.ERRORS_ONLY)
            ),
        )
        .add_sqlite_storage(str(tmp_path / "deferred.db"))
        .build()
    )
    storage = host.storage
    assert isinstance(storage, SqlTaskStorage)
    begun: list[Any] = []
    failing: list[Any] = []
    begin = storage.begin_in_progress

    def spy(task_id: Any, level: AuditLevel) -> Any:
        begun.append(task_id)
        if task_id in failing:
            raise RuntimeError("the writer refused")
        return begin(task_id, level)

    storage.begin_in_progress = spy  # type: ignore[method-assign]
    set_in_progress = storage.set_in_progress
    fallback: list[Any] = []

    async def spy_set(task_id: Any, level: AuditLevel) -> None:
        fallback.append(task_id)
        await set_in_progress(task_id, level)

    storage.set_in_progress = spy_set  # type: ignore[method-assign]
    counter, gate = services.counter(), services.gate()
    async with host:
        await host.wait_recovered(10)
        counter.target = 1
        instant = await host.dispatcher.dispatch(Job(n=1))
        await asyncio.wait_for(counter.event.wait(), 10)
        await _until_status(storage, instant, Q.COMPLETED)
        assert begun == []  # done before the loop's next turn: no InProgress write
        slow = await host.dispatcher.dispatch(Slow(n=1))
        await asyncio.wait_for(gate.entered.wait(), 10)
        await _until_status(storage, slow, Q.IN_PROGRESS)
        assert begun == [slow]
        gate.release.set()
        await _until_status(storage, slow, Q.COMPLETED)
        counter.target = 2
        full = await host.dispatcher.dispatch(Job(n=2), audit_level=AuditLevel.FULL)
        await asyncio.wait_for(counter.event.wait(), 10)
        await _until_status(storage, full, Q.COMPLETED)
        assert begun == [slow, full]  # at once, for its audit row's time
        audits = await storage.get_status_audits(full)
        assert [a.new_status for a in audits] == [Q.QUEUED, Q.IN_PROGRESS, Q.COMPLETED]
        # a deferred write that could not be begun is written before the outcome
        gate.entered.clear()
        gate.release.clear()
        refused = await host.dispatcher.dispatch(Slow(n=2))
        failing.append(refused)
        await asyncio.wait_for(gate.entered.wait(), 10)
        assert fallback == []
        gate.release.set()
        await _until_status(storage, refused, Q.COMPLETED)
        assert begun == [slow, full, refused] and fallback == [refused]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_delayed_tasks_are_claimed_ahead_and_start_at_their_time(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = ManualClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    services = Services()
    host = _configure(backend, tmp_path, request)(
        add_evertask(
            services,
            lambda o: (
                o.register_handler(JobHandler).set_max_degree_of_parallelism(1).use_clock(clock)
            ),
        )
    ).build()
    storage = host.storage
    assert isinstance(storage, SqlTaskStorage)
    if not fast_paths_enabled():
        pytest.skip(f"claiming ahead of time is a fast path, switched off by {FAST_PATHS_ENV}=0")
    lead = host.engine.claim_lead
    assert lead > timedelta(0)
    counter = services.counter()
    async with host:
        await host.wait_recovered(10)
        due = clock.now() + timedelta(seconds=10)
        claimed = await host.dispatcher.dispatch(Job(n=1), due)
        cancelled = await host.dispatcher.dispatch(Job(n=2), due + timedelta(seconds=1))
        clock.set(due - lead)
        await _until_status(storage, claimed, Q.QUEUED)  # committed ahead of time...
        assert counter.seen == []  # ...but not started before its time
        counter.target = 1
        clock.set(due)
        await asyncio.wait_for(counter.event.wait(), 10)
        assert counter.seen == [1]
        # a cancel between the claim and the due time wins
        clock.set(due + timedelta(seconds=1) - lead)
        await _until_status(storage, cancelled, Q.QUEUED)
        await host.dispatcher.cancel(cancelled)
        clock.set(due + timedelta(seconds=2))
        counter.target = 2
        await host.dispatcher.dispatch(Job(n=3))  # runs after anything released before it
        await asyncio.wait_for(counter.event.wait(), 10)
        assert counter.seen == [1, 3]
        stored = await storage.get(cancelled)
        assert stored is not None and stored.status is Q.CANCELLED


def test_declared_fast_paths_switch_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def build() -> Any:
        return (
            add_evertask(Services(), lambda o: o.register_handler(JobHandler))
            .add_sqlite_storage(str(tmp_path / "fast.db"))
            .build()
        )

    monkeypatch.setenv(FAST_PATHS_ENV, "1")
    on = build()
    assert on.engine.pipelined is on.storage and on.engine.claim_lead > timedelta(0)
    monkeypatch.setenv(FAST_PATHS_ENV, "0")
    off = build()
    assert off.engine.pipelined is None and off.engine.claim_lead == timedelta(0)


async def test_sqlite_commits_on_the_loop_only_with_fast_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evertask_storage_sqlite import SqliteTaskStorage
    from evertask_storage_sqlite.executor import SqliteExecutor

    from .helpers import row

    for setting, inline in (("1", 1), ("0", 0)):
        monkeypatch.setenv(FAST_PATHS_ENV, setting)
        storage = SqliteTaskStorage(tmp_path / f"fast{setting}.db")
        await storage.open()
        try:
            await storage.persist(row(datetime.now(UTC)))
            executor = storage._executors[0]
            assert isinstance(executor, SqliteExecutor)
            assert (executor.inline_batches, executor.thread_batches) == (inline, 1 - inline)
        finally:
            await storage.close()
