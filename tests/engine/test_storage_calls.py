"""What the engine writes to its storage: through overridable methods, at its clock's time,
at each dispatch's own audit level."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from evertask import ManualClock, MemoryTaskStorage
from evertask.storage import retrying
from evertask_abstractions import (
    AuditLevel,
    CancellationToken,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
)
from tests.engine.tasks import Ping, PingHandler
from tests.helpers import build_host, wait_status, wait_until

S = QueuedTaskStatus


async def test_the_engine_calls_overridden_storage_methods() -> None:
    calls: list[tuple[str, uuid.UUID]] = []

    class Counted(MemoryTaskStorage):
        async def persist(self, task):  # type: ignore[no-untyped-def]
            calls.append(("persist", task.id))
            await super().persist(task)

        async def set_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
            calls.append(("in_progress", task_id))
            await super().set_in_progress(task_id, audit_level)

        async def set_completed(self, task_id: uuid.UUID, *args: Any, **kw: Any) -> Any:
            calls.append(("completed", task_id))
            return await super().set_completed(task_id, *args, **kw)

    host, _ = build_host([PingHandler], storage=False, builder=lambda b: b.use_storage(Counted()))
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1))
        await wait_status(host, tid, S.COMPLETED)
    assert calls == [("persist", tid), ("in_progress", tid), ("completed", tid)]


async def test_the_engine_creates_rows_at_its_clock_time() -> None:
    clock = ManualClock(datetime(2031, 2, 3, 4, 5, 6, 789_012, tzinfo=UTC))
    host, _ = build_host([PingHandler], lambda o: o.use_clock(clock))
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1))
        await wait_status(host, tid, S.COMPLETED)
        assert host.storage is not None
        row = await host.storage.get(tid)
    assert row is not None and row.created_at_utc == clock.now()
    assert row.last_execution_utc == clock.now()


async def test_an_immediate_dispatch_keeps_its_own_audit_level() -> None:
    host, _ = build_host([PingHandler])  # default audit level: Full
    async with host:
        storage = host.storage
        assert storage is not None
        ids = {}
        for level in (None, AuditLevel.NONE, AuditLevel.MINIMAL, None):
            tid = await host.dispatcher.dispatch(Ping(n=1), audit_level=level)
            await wait_status(host, tid, S.COMPLETED)
            ids[tid] = AuditLevel.FULL if level is None else level
        for tid, level in ids.items():
            row = await storage.get(tid)
            assert row is not None and row.audit_level is level and row.queue_name == "default"
            audits = [a.new_status for a in await storage.get_status_audits(tid)]
            full = [S.QUEUED, S.IN_PROGRESS, S.COMPLETED]
            assert audits == (full if level is AuditLevel.FULL else [])


class _Hiccups(MemoryTaskStorage):
    """A storage whose Completed writes (or, with ``write``, another of a run's writes)
    fail ``failures`` times before they land."""

    def __init__(self, failures: int, write: str = "set_completed") -> None:
        super().__init__()
        self.failures = failures
        self.write = write
        self.calls: dict[str, int] = {}

    @property
    def completed_calls(self) -> int:
        return self.calls.get("set_completed", 0)

    async def _hiccup(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name == self.write and self.calls[name] <= self.failures:
            raise ConnectionError("the database is away")

    async def set_completed(self, task_id: uuid.UUID, *args: Any, **kw: Any) -> Any:
        await self._hiccup("set_completed")
        return await super().set_completed(task_id, *args, **kw)

    async def set_in_progress(self, task_id: uuid.UUID, *args: Any, **kw: Any) -> Any:
        await self._hiccup("set_in_progress")
        return await super().set_in_progress(task_id, *args, **kw)

    async def save_execution_logs(self, task_id: uuid.UUID, *args: Any, **kw: Any) -> Any:
        await self._hiccup("save_execution_logs")
        return await super().save_execution_logs(task_id, *args, **kw)


def _host_on(storage: MemoryTaskStorage, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A host on ``storage`` whose status writes retry after a millisecond."""
    monkeypatch.setattr(retrying, "FIRST_DELAY", 0.001)
    host, _ = build_host([PingHandler], storage=False, builder=lambda b: b.use_storage(storage))
    return host


async def test_a_completed_write_that_fails_is_retried_until_it_lands(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    storage = _Hiccups(failures=2)
    host = _host_on(storage, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="evertask.engine"):
        async with host:
            tid = await host.dispatcher.dispatch(Ping(n=1))
            await wait_status(host, tid, S.COMPLETED)
    assert storage.completed_calls == 3
    warnings = [r.getMessage() for r in caplog.records if "Storage write" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith("Storage write set_completed failed (attempt 1)")
    assert "the database is away" in warnings[0]


class Noted(EverTask):
    n: int = 0


class NotedHandler(EverTaskHandler[Noted]):
    async def handle(self, task: Noted, cancellation: CancellationToken) -> None:
        self.logger.info("noted %d", task.n)


@pytest.mark.parametrize("write", ["set_in_progress", "save_execution_logs"])
async def test_a_runs_other_writes_that_fail_are_retried_until_they_land(
    write: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The InProgress write (on a storage without pipelining) and the captured logs' save
    are awaited first, then retried like the Completed write."""
    monkeypatch.setattr(retrying, "FIRST_DELAY", 0.001)
    storage = _Hiccups(failures=2, write=write)
    host, _ = build_host(
        [NotedHandler],
        lambda o: o.with_persistent_logger(),
        storage=False,
        builder=lambda b: b.use_storage(storage),
    )
    with caplog.at_level(logging.WARNING, logger="evertask.engine"):
        async with host:
            tid = await host.dispatcher.dispatch(Noted(n=7))
            await wait_status(host, tid, S.COMPLETED)
            logs = await storage.get_execution_logs(tid)
    assert storage.calls[write] == 3
    warnings = [r.getMessage() for r in caplog.records if "Storage write" in r.getMessage()]
    assert len(warnings) == 2 and warnings[0].startswith(f"Storage write {write} failed")
    assert [log.message for log in logs] == ["noted 7"]


async def test_a_completed_write_that_keeps_failing_is_given_up_and_stays_recoverable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(retrying, "RETRIES", 2)
    storage = _Hiccups(failures=1_000)
    host = _host_on(storage, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="evertask.engine"):
        async with host:
            tid = await host.dispatcher.dispatch(Ping(n=1))
            await wait_until(
                lambda: any("failed permanently" in r.getMessage() for r in caplog.records)
            )
            row = await storage.get(tid)
    assert storage.completed_calls == 3  # the first attempt and two retries
    assert row is not None and row.status is S.IN_PROGRESS  # recovered at the next start
