"""One-shot task keys: EverTask's decision table (docs/task-keys.md)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from evertask_abstractions import QueuedTaskStatus
from tests.engine.tasks import ALL, Blocker, Flaky, Ping
from tests.helpers import build_host, wait_status


async def test_new_key_creates_a_row_holding_it() -> None:
    host, _ = build_host(ALL)
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1), task_key="k1")
        row = await host.storage.get_by_task_key("k1")
        assert row is not None and row.id == tid


async def test_key_in_flight_returns_the_existing_id() -> None:
    host, c = build_host(ALL)
    probe = c.probe()
    async with host:
        first = await host.dispatcher.dispatch(Blocker(name="k"), task_key="job")
        await probe.wait_for(lambda: probe.count("start") == 1)  # running
        again = await host.dispatcher.dispatch(Blocker(name="k"), task_key="job")
        assert again == first
        probe.gate("k").set()
        await wait_status(host, first, QueuedTaskStatus.COMPLETED)
    assert probe.count("start") == 1


@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled"])
async def test_finished_row_is_replaced_by_a_new_one(outcome: str) -> None:
    host, c = build_host(ALL)
    async with host:
        if outcome == "completed":
            first = await host.dispatcher.dispatch(Ping(n=1), task_key="k")
            await wait_status(host, first, QueuedTaskStatus.COMPLETED)
        elif outcome == "failed":
            first = await host.dispatcher.dispatch(Flaky(fail_times=9), task_key="k")
            await wait_status(host, first, QueuedTaskStatus.FAILED)
        else:
            first = await host.dispatcher.dispatch(Ping(n=1), timedelta(hours=1), task_key="k")
            await host.dispatcher.cancel(first)
        second = await host.dispatcher.dispatch(Ping(n=2), task_key="k")
        assert second != first
        assert await host.storage.get(first) is None  # the old row was removed
        await wait_status(host, second, QueuedTaskStatus.COMPLETED)


async def test_waiting_row_is_updated_in_place() -> None:
    host, c = build_host(ALL)
    probe = c.probe()
    async with host:
        first = await host.dispatcher.dispatch(Ping(n=1), timedelta(hours=1), task_key="k")
        second = await host.dispatcher.dispatch(Ping(n=2), timedelta(milliseconds=30), task_key="k")
        assert second == first
        row = await host.storage.get(first)
        assert row is not None and row.request == '{"n":2}'
        await wait_status(host, first, QueuedTaskStatus.COMPLETED)
        await probe.wait_for(lambda: ("ping", 2) in probe.calls)
    assert ("ping", 1) not in probe.calls
    assert host.engine.scheduler.is_scheduled(first) is False


async def test_waiting_row_updated_to_run_now() -> None:
    host, c = build_host(ALL)
    async with host:
        first = await host.dispatcher.dispatch(Ping(n=1), timedelta(hours=1), task_key="k")
        again = await host.dispatcher.dispatch(Ping(n=3), task_key="k")
        assert again == first
        await wait_status(host, first, QueuedTaskStatus.COMPLETED)
        await c.probe().wait_for(lambda: ("ping", 3) in c.probe().calls)


async def test_concurrent_dispatches_with_one_key_create_one_row() -> None:
    host, c = build_host(ALL)
    async with host:
        ids = await asyncio.gather(
            *(
                host.dispatcher.dispatch(Ping(n=i), timedelta(hours=1), task_key="same")
                for i in range(20)
            )
        )
        assert len(set(ids)) == 1
        counts = await host.storage.count_by_status()
        assert sum(counts.values()) == 1


async def test_blank_key_means_no_key_and_long_key_is_rejected() -> None:
    host, _ = build_host(ALL)
    async with host:
        a = await host.dispatcher.dispatch(Ping(n=1), timedelta(hours=1), task_key="  ")
        b = await host.dispatcher.dispatch(Ping(n=1), timedelta(hours=1), task_key="  ")
        assert a != b
        with pytest.raises(ValueError, match="maximum is 200"):
            await host.dispatcher.dispatch(Ping(), task_key="x" * 201)
