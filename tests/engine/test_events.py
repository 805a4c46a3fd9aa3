"""Task events: what is published, and bounded non-blocking fan-out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from evertask import EventBus, EventKind, TaskEvent
from evertask_abstractions import QueuedTaskStatus
from tests.engine.tasks import ALL, Flaky, Ping
from tests.helpers import build_host, wait_status, wait_until


async def test_lifecycle_events_are_published() -> None:
    host, _ = build_host(ALL)
    events: list[TaskEvent] = []
    host.events.subscribe(events.append)
    async with host:
        ok = await host.dispatcher.dispatch(Ping(n=1))
        bad = await host.dispatcher.dispatch(Flaky(fail_times=1))
        await wait_status(host, ok, QueuedTaskStatus.COMPLETED)
        await wait_status(host, bad, QueuedTaskStatus.FAILED)
        await wait_until(lambda: len([e for e in events if e.task_id == bad]) >= 2)
    kinds = [(e.task_id, e.kind) for e in events]
    assert (ok, EventKind.STARTED) in kinds and (ok, EventKind.COMPLETED) in kinds
    failed = [e for e in events if e.task_id == bad and e.kind is EventKind.FAILED][0]
    assert failed.severity == "Error" and "ConnectionError" in (failed.exception or "")
    assert failed.parameters == '{"fail_times":1,"error":"ConnectionError","key":"flaky"}'
    assert failed.to_dict()["taskId"] == str(bad)


async def test_slow_subscriber_loses_events_and_the_loss_is_counted() -> None:
    bus = EventBus(buffer_size=3)
    release = asyncio.Event()
    got: list[TaskEvent] = []

    async def slow(e: TaskEvent) -> None:
        await release.wait()
        got.append(e)

    assert not bus.has_subscribers
    sub = bus.subscribe(slow)
    assert bus.has_subscribers
    bus.start()
    import uuid

    event = TaskEvent(
        uuid.uuid4(), datetime.now(UTC), "Information", EventKind.STARTED, "t", "h", "{}", "m"
    )
    for _ in range(10):
        bus.publish(event)  # never blocks
    assert bus.dropped_events >= 6 and sub.dropped == bus.dropped_events
    release.set()
    await wait_until(lambda: len(got) >= 3)
    sub.close()
    await bus.stop()
    assert not bus.has_subscribers


async def test_pull_subscription() -> None:
    host, _ = build_host(ALL)
    sub = host.events.subscribe()
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1))
        first = await asyncio.wait_for(sub.get(), 5)
        assert first.task_id == tid and first.kind is EventKind.STARTED


async def test_stop_delivers_the_events_still_buffered() -> None:
    bus = EventBus()
    got: list[TaskEvent] = []

    async def slow(e: TaskEvent) -> None:
        await asyncio.sleep(0)  # yields between events, so the buffer is not empty at stop
        got.append(e)

    bus.subscribe(slow)
    bus.start()
    import uuid

    events = [
        TaskEvent(
            uuid.uuid4(), datetime.now(UTC), "Information", EventKind.STARTED, "t", "h", "{}", "m"
        )
        for _ in range(20)
    ]
    for event in events:
        bus.publish(event)
    await bus.stop()  # before the pump got to most of them
    assert got == events


async def test_stop_gives_up_on_a_stuck_subscriber() -> None:
    bus = EventBus()
    never = asyncio.Event()

    async def stuck(e: TaskEvent) -> None:
        await never.wait()

    bus.subscribe(stuck)
    bus.start()
    import uuid

    bus.publish(
        TaskEvent(
            uuid.uuid4(), datetime.now(UTC), "Information", EventKind.STARTED, "t", "h", "{}", "m"
        )
    )
    await asyncio.wait_for(bus.stop(timeout=0.05), 5)  # returns despite the stuck callback
