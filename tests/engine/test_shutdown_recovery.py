"""Graceful shutdown leaves ServiceStopped rows; the next host resumes every pending row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from evertask import MemoryTaskStorage
from evertask_abstractions import QueuedTaskStatus
from tests.engine.tasks import ALL, Blocker, Ping
from tests.helpers import Container, build_host, wait_status


async def test_graceful_shutdown_marks_interrupted_tasks_service_stopped_then_they_rerun() -> None:
    storage = MemoryTaskStorage()
    container = Container()
    probe = container.probe()
    host, _ = build_host(
        ALL,
        lambda o: o.set_max_degree_of_parallelism(2),
        container=container,
        storage=False,
        builder=lambda b: b.use_storage(storage),
    )
    await host.start()
    running = await host.dispatcher.dispatch(Blocker(name="r"))
    await probe.wait_for(lambda: probe.count("start") == 1)
    queued_ids = [await host.dispatcher.dispatch(Blocker(name=f"q{i}")) for i in range(3)]
    delayed = await host.dispatcher.dispatch(Ping(n=99), timedelta(milliseconds=300))
    await host.stop(grace_period=0.05)

    row = await storage.get(running)
    assert row is not None and row.status is QueuedTaskStatus.SERVICE_STOPPED
    assert row.last_execution_utc is not None
    assert row.execution_time_ms >= 40  # how long it ran before the stop (grace 50 ms)
    statuses = {(await storage.get(t)).status for t in queued_ids}  # type: ignore[union-attr]
    assert statuses <= {QueuedTaskStatus.QUEUED, QueuedTaskStatus.SERVICE_STOPPED}
    assert (await storage.get(delayed)).status is QueuedTaskStatus.WAITING_QUEUE  # type: ignore[union-attr]

    # a new host on the same storage resumes everything
    for name in ["r", "q0", "q1", "q2"]:
        probe.gate(name).set()
    host2, _ = build_host(
        ALL, container=container, storage=False, builder=lambda b: b.use_storage(storage)
    )
    async with host2:
        for t in [running, *queued_ids, delayed]:
            await wait_status(host2, t, QueuedTaskStatus.COMPLETED)
        report = await host2.wait_recovered(5)
        assert report is not None and report.recovered == 5 and report.scheduled == 1
    assert ("ping", 99) in probe.calls


async def test_shutdown_waits_for_running_handlers_within_the_grace_period() -> None:
    container = Container()
    probe = container.probe()
    host, _ = build_host(ALL, container=container)
    await host.start()
    tid = await host.dispatcher.dispatch(Blocker(name="g"))
    await probe.wait_for(lambda: probe.count("start") == 1)

    import asyncio

    stopping = asyncio.create_task(host.stop(grace_period=5))
    await asyncio.sleep(0.02)
    probe.gate("g").set()  # finishes inside the grace period
    await stopping
    row = await host.storage.get(tid)  # type: ignore[union-attr]
    assert row is not None and row.status is QueuedTaskStatus.COMPLETED


async def test_dispatch_during_shutdown_is_persisted_for_the_next_start() -> None:
    import asyncio

    storage = MemoryTaskStorage()
    container = Container()
    probe = container.probe()
    host, _ = build_host(
        ALL, container=container, storage=False, builder=lambda b: b.use_storage(storage)
    )
    await host.start()
    await host.dispatcher.dispatch(Blocker(name="slow"))
    await probe.wait_for(lambda: probe.count("start") == 1)
    stopping = asyncio.create_task(host.stop(grace_period=1))
    await asyncio.sleep(0.01)
    late = await host.dispatcher.dispatch(Ping(n=5))
    row = await storage.get(late)
    assert row is not None and row.status is QueuedTaskStatus.WAITING_QUEUE
    probe.gate("slow").set()
    await stopping
    host2, _ = build_host(
        ALL, container=container, storage=False, builder=lambda b: b.use_storage(storage)
    )
    async with host2:
        await wait_status(host2, late, QueuedTaskStatus.COMPLETED)


async def test_recovery_poisons_rows_of_unknown_types_and_unreadable_payloads() -> None:
    from datetime import UTC, datetime

    from evertask import QueuedTask, uuid7

    storage = MemoryTaskStorage()
    unknown = QueuedTask(
        id=uuid7(),
        type="gone.module:Gone",
        request="{}",
        handler="h",
        status=QueuedTaskStatus.QUEUED,
        created_at_utc=datetime.now(UTC),
    )
    bad = QueuedTask(
        id=uuid7(),
        type=Ping.evertask_type_name(),
        request='{"n": "not a number"}',
        handler="h",
        status=QueuedTaskStatus.QUEUED,
        created_at_utc=datetime.now(UTC),
    )
    await storage.persist(unknown)
    await storage.persist(bad)
    host, _ = build_host(ALL, storage=False, builder=lambda b: b.use_storage(storage))
    async with host:
        await host.wait_recovered(5)
    # neither row can ever be decoded: both are Failed at the first start
    row = await storage.get(bad.id)
    assert row is not None and row.recovery_dispatch_failure_count == 0
    gone = await storage.get(unknown.id)
    assert gone is not None and gone.status is QueuedTaskStatus.FAILED
    assert "Unable to load the task type" in (gone.exception or "")
    assert row.status is QueuedTaskStatus.FAILED and "Unreadable payload" in (row.exception or "")


async def test_stored_type_names_never_trigger_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    from datetime import UTC, datetime

    from evertask import QueuedTask, uuid7

    # another test of the session may have imported it (Django's test client does)
    monkeypatch.delitem(sys.modules, "xml.dom.minidom", raising=False)
    storage = MemoryTaskStorage()
    row = QueuedTask(
        id=uuid7(),
        type="xml.dom.minidom:Document",
        request="{}",
        handler="h",
        status=QueuedTaskStatus.QUEUED,
        created_at_utc=datetime.now(UTC),
    )
    await storage.persist(row)
    host, _ = build_host(ALL, storage=False, builder=lambda b: b.use_storage(storage))
    async with host:
        await host.wait_recovered(5)
    assert "xml.dom.minidom" not in sys.modules  # closed registry: nothing was imported
    stored = await storage.get(row.id)
    assert stored is not None and stored.status is QueuedTaskStatus.FAILED
