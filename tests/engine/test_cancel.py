"""Cancellation: before start, while scheduled, while running (async and sync handlers)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler, QueuedTaskStatus
from tests.engine.tasks import ALL, Blocker, Ping, SyncWork
from tests.helpers import Probe, build_host, wait_status


async def test_cancel_before_start_drops_the_queued_task() -> None:
    host, c = build_host(ALL, lambda o: o.set_max_degree_of_parallelism(1))
    probe = c.probe()
    async with host:
        await host.dispatcher.dispatch(Blocker(name="hog"))
        await probe.wait_for(lambda: probe.count("start") == 1)
        tid = await host.dispatcher.dispatch(Ping(n=1))  # waits behind "hog"
        await host.dispatcher.cancel(tid)
        assert (await host.storage.get(tid)).status is QueuedTaskStatus.CANCELLED  # type: ignore[union-attr]
        probe.gate("hog").set()
        await host.dispatcher.dispatch(Ping(n=2))
        await probe.wait_for(lambda: ("ping", 2) in probe.calls)
        assert ("ping", 1) not in probe.calls
        assert (await host.storage.get(tid)).status is QueuedTaskStatus.CANCELLED  # type: ignore[union-attr]


async def test_cancel_while_scheduled() -> None:
    host, c = build_host(ALL)
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1), timedelta(milliseconds=80))
        await host.dispatcher.cancel(tid)
        assert not host.engine.scheduler.is_scheduled(tid)
        other = await host.dispatcher.dispatch(Ping(n=2), timedelta(milliseconds=120))
        await wait_status(host, other, QueuedTaskStatus.COMPLETED)
        assert ("ping", 1) not in c.probe().calls
        assert (await host.storage.get(tid)).status is QueuedTaskStatus.CANCELLED  # type: ignore[union-attr]


async def test_cancel_running_async_handler() -> None:
    host, c = build_host(ALL)
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Blocker(name="long"))
        await probe.wait_for(lambda: probe.count("start") == 1)
        await host.dispatcher.cancel(tid)
        await wait_status(host, tid, QueuedTaskStatus.CANCELLED)
        assert probe.count("end") == 0
        audits = [a.new_status for a in await host.storage.get_status_audits(tid)]
        assert audits[-1] is QueuedTaskStatus.CANCELLED
        assert QueuedTaskStatus.COMPLETED not in audits


async def test_cancel_running_sync_handler_cooperatively() -> None:
    host, c = build_host(ALL)
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(SyncWork(name="s", spin_seconds=10))
        await probe.wait_for(lambda: probe.count("sync-start") == 1)
        await host.dispatcher.cancel(tid)
        await wait_status(host, tid, QueuedTaskStatus.CANCELLED)
        await probe.wait_for(lambda: ("sync-cancelled", "s") in probe.calls)
        assert ("sync-end", "s") not in probe.calls


async def test_cancel_unknown_id_and_finished_task_are_ignored() -> None:
    host, _ = build_host(ALL)
    async with host:
        await host.dispatcher.cancel(uuid.uuid4())
        tid = await host.dispatcher.dispatch(Ping(n=1))
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
        await host.dispatcher.cancel(tid)
        assert (await host.storage.get(tid)).status is QueuedTaskStatus.COMPLETED  # type: ignore[union-attr]


async def test_cancel_from_within_another_task_does_not_leak() -> None:
    host, c = build_host(ALL)
    probe = c.probe()
    async with host:
        tids = [await host.dispatcher.dispatch(Blocker(name=f"x{i}")) for i in range(3)]
        await probe.wait_for(lambda: probe.count("start") == 3)
        await asyncio.gather(*(host.dispatcher.cancel(t) for t in tids))
        for t in tids:
            await wait_status(host, t, QueuedTaskStatus.CANCELLED)
        assert not host.engine.executor.running
        assert not host.engine.in_flight


class Gated(EverTask):
    pass


class GatedHandler(EverTaskHandler[Gated]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def on_started(self, task_id: uuid.UUID) -> None:
        self.probe.record("on_started")
        await self.probe.gate("started").wait()

    async def handle(self, task: Gated, cancellation: CancellationToken) -> None:
        self.probe.record("handle")


async def test_cancel_before_the_handler_begins_skips_it() -> None:
    host, c = build_host([*ALL, GatedHandler])
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Gated())
        await probe.wait_for(lambda: "on_started" in probe.names())
        await host.dispatcher.cancel(tid)
        probe.gate("started").set()  # on_started is not interrupted; the handler never runs
        await wait_status(host, tid, QueuedTaskStatus.CANCELLED)
        await asyncio.sleep(0.02)
    assert "handle" not in probe.names()


async def test_retry_a_failed_or_cancelled_task_links_the_new_run() -> None:
    import pytest

    from tests.engine.tasks import Flaky

    host, c = build_host(ALL)
    async with host:
        bad = await host.dispatcher.dispatch(Flaky(fail_times=1, key="r"))
        await wait_status(host, bad, QueuedTaskStatus.FAILED)
        again = await host.dispatcher.retry(bad)  # the second attempt of Flaky succeeds
        await wait_status(host, again, QueuedTaskStatus.COMPLETED)
        row = await host.storage.get(again)
        assert (
            row is not None
            and row.retried_from == bad
            and row.request == (await host.storage.get(bad)).request
        )  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="only Failed or Cancelled"):
            await host.dispatcher.retry(again)
        with pytest.raises(KeyError):
            await host.dispatcher.retry(uuid.uuid4())
