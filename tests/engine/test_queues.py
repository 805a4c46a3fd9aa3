"""Queue routing and the three full behaviours."""

from __future__ import annotations

import asyncio
import logging

import pytest

from evertask import QueueFullBehavior
from evertask_abstractions import QueuedTaskStatus, QueueFullError
from tests.engine.tasks import ALL, Blocker, Critical, Nowhere, Ping
from tests.helpers import build_host, wait_status, wait_until


def _critical(capacity: int, behavior: QueueFullBehavior, parallelism: int = 1):  # type: ignore[no-untyped-def]
    return lambda b: b.add_queue(
        "critical",
        lambda q: (
            q.set_max_degree_of_parallelism(parallelism)
            .set_channel_capacity(capacity)
            .set_full_behavior(behavior)
        ),
    )


async def test_handler_queue_name_routes_to_its_queue() -> None:
    host, c = build_host(ALL, builder=_critical(10, QueueFullBehavior.WAIT))
    async with host:
        tid = await host.dispatcher.dispatch(Critical(n=1))
        await c.probe().wait_for(lambda: c.probe().count("critical") == 1)
        row = await host.storage.get(tid)
        assert row is not None and row.queue_name == "critical"
        name = c.probe().calls[0][2]
        assert name == "" or "critical" not in name  # executions run in their own tasks


async def test_unknown_queue_falls_back_to_default_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, c = build_host(ALL)
    with caplog.at_level(logging.WARNING, logger="evertask.queues"):
        async with host:
            tid = await host.dispatcher.dispatch(Nowhere())
            await c.probe().wait_for(lambda: "nowhere" in c.probe().names())
            row = await host.storage.get(tid)
            assert row is not None and row.queue_name == "default"
    assert any("'does-not-exist' is not configured" in r.getMessage() for r in caplog.records)


async def test_throw_exception_when_full_and_nothing_is_persisted() -> None:
    host, c = build_host(ALL, builder=_critical(1, QueueFullBehavior.THROW_EXCEPTION))
    probe = c.probe()
    async with host:
        # occupy the consumer, then fill the single slot
        host.engine.queues.queues["critical"].pause()
        await host.dispatcher.dispatch(Critical(n=1))
        with pytest.raises(QueueFullError, match="Queue 'critical' is full"):
            await host.dispatcher.dispatch(Critical(n=2))
        counts = await host.storage.count_by_status()
        assert sum(counts.values()) == 1  # the refused task left no row behind
        host.engine.queues.queues["critical"].resume()
        await probe.wait_for(lambda: probe.count("critical") == 1)


async def test_fallback_to_default_when_full() -> None:
    host, c = build_host(ALL, builder=_critical(1, QueueFullBehavior.FALLBACK_TO_DEFAULT))
    probe = c.probe()
    async with host:
        host.engine.queues.queues["critical"].pause()
        await host.dispatcher.dispatch(Critical(n=1))  # fills "critical"
        tid = await host.dispatcher.dispatch(Critical(n=2))  # runs on "default"
        await probe.wait_for(lambda: ("critical", 2) in [c[:2] for c in probe.calls])
        assert ("critical", 1) not in [c[:2] for c in probe.calls]
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
        host.engine.queues.queues["critical"].resume()
        await probe.wait_for(lambda: probe.count("critical") == 2)


async def test_wait_when_full_then_proceeds() -> None:
    host, c = build_host(ALL, builder=_critical(1, QueueFullBehavior.WAIT))
    probe = c.probe()
    async with host:
        q = host.engine.queues.queues["critical"]
        q.pause()
        await host.dispatcher.dispatch(Critical(n=1))
        waiting = asyncio.create_task(host.dispatcher.dispatch(Critical(n=2)))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # blocked on the full queue
        q.resume()
        await asyncio.wait_for(waiting, 5)
        await probe.wait_for(lambda: probe.count("critical") == 2)


async def test_caller_cancelled_while_waiting_leaves_nothing_behind() -> None:
    host, c = build_host(ALL, builder=_critical(1, QueueFullBehavior.WAIT))
    async with host:
        q = host.engine.queues.queues["critical"]
        q.pause()
        await host.dispatcher.dispatch(Critical(n=1))
        waiting = asyncio.create_task(host.dispatcher.dispatch(Critical(n=2)))
        await asyncio.sleep(0.02)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        counts = await host.storage.count_by_status()
        assert sum(counts.values()) == 1
        assert q.reserved == 0
        q.resume()
        await c.probe().wait_for(lambda: c.probe().count("critical") == 1)


async def test_default_queue_parallelism_is_honoured() -> None:
    host, c = build_host(ALL, lambda o: o.set_max_degree_of_parallelism(3))
    probe = c.probe()
    async with host:
        for i in range(5):
            await host.dispatcher.dispatch(Blocker(name=f"b{i}"))
        await probe.wait_for(lambda: probe.count("start") == 3)
        await asyncio.sleep(0.05)
        assert probe.count("start") == 3  # never more than 3 at once
        for i in range(5):
            probe.gate(f"b{i}").set()
        await probe.wait_for(lambda: probe.count("end") == 5)


async def test_queues_are_isolated() -> None:
    host, c = build_host(
        ALL,
        lambda o: o.set_max_degree_of_parallelism(1),
        builder=_critical(10, QueueFullBehavior.WAIT),
    )
    probe = c.probe()
    async with host:
        await host.dispatcher.dispatch(Blocker(name="hog"))  # blocks the only default consumer
        await probe.wait_for(lambda: probe.count("start") == 1)
        await host.dispatcher.dispatch(Critical(n=5))
        await probe.wait_for(lambda: probe.count("critical") == 1)  # not stuck behind "hog"
        await host.dispatcher.dispatch(Ping(n=1))
        await asyncio.sleep(0.02)
        assert ("ping", 1) not in probe.calls
        probe.gate("hog").set()
        await probe.wait_for(lambda: ("ping", 1) in probe.calls)


async def test_paused_queue_accepts_tasks_starts_none_and_stays_paused_after_restart() -> None:
    from evertask import MemoryTaskStorage
    from tests.helpers import Container

    storage = MemoryTaskStorage()
    container = Container()
    probe = container.probe()

    def make():  # type: ignore[no-untyped-def]
        return build_host(
            ALL, container=container, storage=False, builder=lambda b: b.use_storage(storage)
        )[0]

    host = make()
    async with host:
        await host.pause_queue("default")
        tid = await host.dispatcher.dispatch(Ping(n=1))
        await asyncio.sleep(0.05)
        assert ("ping", 1) not in probe.calls
        assert (await host.storage.get(tid)).status is QueuedTaskStatus.QUEUED  # type: ignore[union-attr]
        with pytest.raises(KeyError, match="No queue named 'nope'"):
            await host.pause_queue("nope")
    host = make()
    async with host:
        assert host.engine.queues.default.paused
        await host.wait_recovered(5)
        await asyncio.sleep(0.05)
        assert ("ping", 1) not in probe.calls
        await host.resume_queue("default")
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)


@pytest.mark.parametrize("parallelism", [1, 3])
async def test_tasks_start_in_dispatch_order_including_after_a_resume(parallelism: int) -> None:
    host, c = build_host(ALL, lambda o: o.set_max_degree_of_parallelism(parallelism))
    probe = c.probe()
    async with host:
        queue = host.engine.queues.default
        for i in range(20):
            await host.dispatcher.dispatch(Ping(n=i))
        assert queue.active == parallelism and len(queue) == 20 - parallelism
        await probe.wait_for(lambda: probe.count("ping") == 20)
        queue.pause()
        for i in range(20, 40):
            await host.dispatcher.dispatch(Ping(n=i))
        assert queue.active == 0 and len(queue) == 20  # paused: nothing started
        queue.resume()
        assert queue.active == parallelism
        await probe.wait_for(lambda: probe.count("ping") == 40)
        await wait_until(lambda: queue.active == 0)  # idle: every lane ended
    assert [n for kind, n, *_ in probe.calls if kind == "ping"] == list(range(40))


async def test_a_run_cancelled_from_outside_frees_its_lane() -> None:
    # e.g. the event loop cancelling every task while it closes: the lane ends, and the
    # queue keeps starting later runs on its remaining capacity
    host, c = build_host(ALL, lambda o: o.set_max_degree_of_parallelism(1))
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Blocker(name="x"))
        await probe.wait_for(lambda: probe.count("start") == 1)
        queue = host.engine.queues.default
        assert queue.active == 1
        task = host.engine.executor.running[tid.int].task
        assert task is not None
        task.cancel()
        await asyncio.wait([task])
        assert queue.active == 0 and tid.int not in host.engine.executor.running
        await host.dispatcher.dispatch(Ping(n=7))
        await probe.wait_for(lambda: ("ping", 7) in probe.calls)


async def test_runs_start_through_the_loops_task_factory() -> None:
    loop = asyncio.get_running_loop()
    made: list[asyncio.Task[object]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    loop.set_task_factory(factory)
    try:
        host, _ = build_host(ALL)
        async with host:
            before = len(made)
            tid = await host.dispatcher.dispatch(Ping(n=1))
            await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
            assert len(made) > before  # the run's task came from the factory
            assert any(task.get_coro().__qualname__.endswith("_execute") for task in made)
    finally:
        loop.set_task_factory(None)
