"""Per-attempt timeouts: handler -> queue -> global, never retried, reported as timeouts."""

from __future__ import annotations

from datetime import timedelta

from evertask import EventKind
from evertask_abstractions import LinearRetryPolicy, QueuedTaskStatus
from tests.engine.tasks import ALL, Ping, Slow
from tests.helpers import build_host, wait_status


async def test_timeout_fails_the_task_without_retry_and_reports_a_timeout() -> None:
    host, c = build_host(ALL, lambda o: o.set_default_retry_policy(LinearRetryPolicy(3, 0.001)))
    probe = c.probe()
    events = []
    host.events.subscribe(events.append)
    async with host:
        tid = await host.dispatcher.dispatch(Slow(seconds=10))
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
        row = await host.storage.get(tid)
        await probe.wait_for(lambda: "on_error" in probe.names())
    assert probe.count("slow-start") == 1  # not retried
    assert ("slow-cancelled", True) in probe.calls  # the token was cancelled too
    assert row is not None and row.exception is not None
    assert row.exception.startswith("evertask_abstractions.errors.TaskTimeoutError")
    assert "timed out after 0.1 s" in row.exception
    err = [c for c in probe.calls if c[0] == "on_error"][0]
    assert err[1] == "TaskTimeoutError" and "timed out" in err[2]
    assert any(e.kind is EventKind.TIMEOUT and e.task_id == tid for e in events)


async def test_fast_enough_task_completes_under_its_timeout() -> None:
    host, _ = build_host(ALL)
    async with host:
        tid = await host.dispatcher.dispatch(Slow(seconds=0.001))
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)


async def test_queue_default_timeout_then_global_timeout() -> None:
    from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler

    class Nap(EverTask):
        seconds: float

    class NapHandler(EverTaskHandler[Nap]):
        async def handle(self, task: Nap, cancellation: CancellationToken) -> None:
            import asyncio

            await asyncio.sleep(task.seconds)

    class QueuedNap(EverTask):
        seconds: float

    class QueuedNapHandler(EverTaskHandler[QueuedNap]):
        queue_name = "naps"

        async def handle(self, task: QueuedNap, cancellation: CancellationToken) -> None:
            import asyncio

            await asyncio.sleep(task.seconds)

    host, _ = build_host(
        [*ALL, NapHandler, QueuedNapHandler],
        lambda o: o.set_default_timeout(timedelta(milliseconds=300)),
        builder=lambda b: b.add_queue(
            "naps", lambda q: q.set_default_timeout(timedelta(milliseconds=50))
        ),
    )
    async with host:
        q = await host.dispatcher.dispatch(QueuedNap(seconds=0.2))  # queue default 50 ms -> fails
        g = await host.dispatcher.dispatch(Nap(seconds=0.1))  # global 300 ms -> completes
        g2 = await host.dispatcher.dispatch(Nap(seconds=5))  # global 300 ms -> fails
        await wait_status(host, q, QueuedTaskStatus.FAILED)
        await wait_status(host, g, QueuedTaskStatus.COMPLETED)
        await wait_status(host, g2, QueuedTaskStatus.FAILED)
        row = await host.storage.get(q)
        assert row is not None and "timed out after 0.05 s" in (row.exception or "")
        await host.dispatcher.dispatch(Ping(n=1))
