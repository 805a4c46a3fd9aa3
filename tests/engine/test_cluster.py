"""Cluster semantics in one process: hosts sharing one memory storage are nodes of a cluster.

The multi-process versions (SQLite, PostgreSQL, MariaDB) are in tests/cluster.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from evertask import EverTaskOptions, MemoryTaskStorage
from evertask.events import NODE_EVENT_TYPE, EventKind, TaskEvent
from evertask_abstractions import (
    CancellationToken,
    ConfigurationError,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
)
from tests.engine.tasks import ALL, Blocker, Ping
from tests.helpers import Container, Probe, build_host, wait_status, wait_until

Q = QueuedTaskStatus


class Tick(EverTask):
    label: str = ""


class TickHandler(EverTaskHandler[Tick]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Tick, cancellation: CancellationToken) -> None:
        self.probe.record("tick", task.label)


def fast_lease(o: EverTaskOptions) -> None:
    o.set_lease_duration(timedelta(milliseconds=600))
    o.set_heartbeat_interval(timedelta(milliseconds=100))
    o.set_cluster_poll_interval(timedelta(milliseconds=50))


def node(
    storage: MemoryTaskStorage, configure: Callable[[EverTaskOptions], Any] | None = None
) -> tuple[Any, Any]:
    """A host on ``storage`` with its own container (and probe)."""

    def setup(o: EverTaskOptions) -> None:
        fast_lease(o)
        o.set_max_degree_of_parallelism(1)
        if configure is not None:
            configure(o)

    return build_host(
        [*ALL, TickHandler],
        setup,
        container=Container(),
        storage=False,
        builder=lambda b: b.use_storage(storage),
    )


async def test_rows_are_stamped_with_the_dispatching_node() -> None:
    storage = MemoryTaskStorage()
    host, _ = node(storage)
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1), timedelta(hours=1))
        row = await storage.get(tid)
        assert row is not None and row.owner_node == host.engine.node.id
        nodes = await storage.list_nodes()
        assert [n.id for n in nodes] == [host.engine.node.id]
        assert nodes[0].runs_workers and "default" in nodes[0].queues
    assert await storage.list_nodes() == []  # a graceful stop deregisters
    row = await storage.get(tid)
    assert row is not None and row.owner_node is None  # released to any node


async def test_a_second_host_takes_none_of_a_live_hosts_rows() -> None:
    storage = MemoryTaskStorage()
    a, a_box = node(storage)
    b, b_box = node(storage)
    a_probe, b_probe = a_box.probe(), b_box.probe()
    async with a:
        running = await a.dispatcher.dispatch(Blocker(name="r"))
        await a_probe.wait_for(lambda: a_probe.count("start") == 1)
        queued = [await a.dispatcher.dispatch(Blocker(name=f"q{i}")) for i in range(3)]
        delayed = await a.dispatcher.dispatch(Ping(n=7), timedelta(milliseconds=300))
        async with b:
            report = await b.wait_recovered(5)
            assert report is not None and report.recovered == 0
            membership = b.engine.membership
            assert membership is not None and not membership.alone
            assert await membership.claim(due_only=False) == 0  # a live node's rows stay
            for name in ["r", "q0", "q1", "q2"]:
                a_probe.gate(name).set()
            for tid in [running, *queued, delayed]:
                await wait_status(a, tid, Q.COMPLETED)
            assert await membership.claim(due_only=False) == 0
    assert b_probe.calls == []
    assert sorted(c for c in a_probe.calls if c[0] == "end") == [
        ("end", n) for n in ["q0", "q1", "q2", "r"]
    ]
    assert ("ping", 7) in a_probe.calls


async def test_a_graceful_stop_hands_pending_rows_to_the_other_host() -> None:
    storage = MemoryTaskStorage()
    a, a_box = node(storage)
    b, b_box = node(storage)
    a_probe, b_probe = a_box.probe(), b_box.probe()
    async with b:
        await a.start()
        running = await a.dispatcher.dispatch(Blocker(name="r"))
        await a_probe.wait_for(lambda: a_probe.count("start") == 1)
        queued = [await a.dispatcher.dispatch(Blocker(name=f"q{i}")) for i in range(3)]
        delayed = await a.dispatcher.dispatch(Ping(n=8), timedelta(milliseconds=400))
        for name in ["r", "q0", "q1", "q2"]:
            b_probe.gate(name).set()
        await a.stop(grace_period=0.05)  # r is interrupted (ServiceStopped)
        for tid in [running, *queued, delayed]:
            await wait_status(b, tid, Q.COMPLETED)
            row = await storage.get(tid)
            assert row is not None and row.owner_node == b.engine.node.id
    assert sorted(c for c in b_probe.calls if c[0] == "end") == [
        ("end", n) for n in ["q0", "q1", "q2", "r"]
    ]
    assert b_probe.calls.count(("ping", 8)) == 1 and ("ping", 8) not in a_probe.calls


async def test_a_dead_hosts_rows_move_to_a_survivor_after_its_lease() -> None:
    storage = MemoryTaskStorage()
    a, a_box = node(storage)
    b, b_box = node(storage)
    a_probe, b_probe = a_box.probe(), b_box.probe()
    async with b:
        await a.start()
        stuck = await a.dispatcher.dispatch(Blocker(name="stuck"))
        await a_probe.wait_for(lambda: a_probe.count("start") == 1)
        queued = [await a.dispatcher.dispatch(Ping(n=i)) for i in range(3)]
        delayed = await a.dispatcher.dispatch(Ping(n=9), timedelta(milliseconds=200))
        # "kill" a: no more heartbeats, no more timers, nothing more started
        membership = a.engine.membership
        assert membership is not None
        for task in membership._tasks:
            task.cancel()
        a.engine.scheduler.stop()
        for queue in a.engine.queues.queues.values():
            queue.hold()
        b_probe.gate("stuck").set()
        for tid in [stuck, *queued, delayed]:  # lease 0.6 s + heartbeat + polls
            await wait_status(b, tid, Q.COMPLETED, timeout=5)
    assert sorted(c for c in b_probe.calls if c[0] == "ping") == [("ping", n) for n in [0, 1, 2, 9]]
    assert ("end", "stuck") in b_probe.calls  # at least once: it ran on a too (interrupted)
    a_probe.gate("stuck").set()
    await a.stop(grace_period=0.05)


async def test_a_dispatch_only_host_runs_nothing_and_the_workers_run_its_tasks() -> None:
    storage = MemoryTaskStorage()
    web, web_box = node(storage, lambda o: o.set_run_workers(False))
    worker, worker_box = node(storage, lambda o: o.set_max_degree_of_parallelism(4))
    async with worker, web:
        ids = [await web.dispatcher.dispatch(Ping(n=i)) for i in range(40)]
        later = await web.dispatcher.dispatch(Ping(n=100), timedelta(milliseconds=150))
        row = await storage.get(ids[0])
        assert row is not None and row.owner_node is None
        for tid in [*ids, later]:
            await wait_status(worker, tid, Q.COMPLETED)
        roles = {n.id: n.runs_workers for n in await storage.list_nodes()}
        assert roles == {web.engine.node.id: False, worker.engine.node.id: True}
    pings = sorted(n for name, n in worker_box.probe().calls if name == "ping")
    assert pings == [*range(40), 100]
    assert web_box.probe().calls == []


def _web_and_two_workers(storage: MemoryTaskStorage) -> tuple[Any, Any, Any, Probe, Probe]:
    """A dispatch-only host and two workers of 2 lanes per queue (32 claimed rows held at
    most: 8 per lane, "default" and "recurring" together), with the workers' probes."""
    web, _ = node(storage, lambda o: o.set_run_workers(False))
    a, a_box = node(storage, lambda o: o.set_max_degree_of_parallelism(2))
    b, b_box = node(storage, lambda o: o.set_max_degree_of_parallelism(2))
    return web, a, b, a_box.probe(), b_box.probe()


def _held_by(storage: MemoryTaskStorage, host: Any, delayed: bool | None = None) -> int:
    """How many rows ``host`` owns (only the delayed ones, or only the others)."""
    return sum(
        1
        for t in storage._tasks.values()
        if t.owner_node == host.engine.node.id
        and (delayed is None or (t.scheduled_execution_utc is not None) == delayed)
    )


async def test_a_burst_of_unowned_rows_is_shared_among_the_workers() -> None:
    # a worker holds at most 8 claimed rows per lane, its queues together, started or
    # waiting; the rest of a burst stays unowned for the other workers, even while one of
    # its queues ("recurring") is empty
    storage = MemoryTaskStorage()
    web, a, b, a_probe, b_probe = _web_and_two_workers(storage)
    membership = a.engine.membership
    claim = membership.claim
    polls = 0

    async def counted(*, due_only: bool) -> int:
        nonlocal polls
        polls += 1
        return await claim(due_only=due_only)

    membership.claim = counted

    async with web, a, b:
        for host in (a, b):
            await host.wait_recovered(5)
        for _ in range(200):
            await web.dispatcher.dispatch(Blocker(name="burst"))
        for probe in (a_probe, b_probe):
            await probe.wait_for(lambda p=probe: p.count("start") == 2)
        seen = polls
        try:
            await wait_until(lambda: polls >= seen + 20)  # rows wait: a polls every 5 ms
            assert 0 < _held_by(storage, a) <= 32 and 0 < _held_by(storage, b) <= 32
        finally:
            a_probe.gate("burst").set()
            b_probe.gate("burst").set()
        await wait_until(lambda: a_probe.count("end") + b_probe.count("end") == 200)


async def test_a_worker_busy_with_its_own_dispatches_still_claims_for_its_free_queue() -> None:
    # its "default" queue holds far more than its share of its own dispatches, which were
    # never anyone else's; its "recurring" queue is free, so its polls still take a due
    # series nobody owns (one a dispatch-only host dispatched, or a stopped node released)
    storage = MemoryTaskStorage()
    web, _ = node(storage, lambda o: o.set_run_workers(False))
    worker, box = node(storage, lambda o: o.set_max_degree_of_parallelism(2))
    probe = box.probe()
    async with web, worker:
        await worker.wait_recovered(5)
        try:
            for _ in range(100):
                await worker.dispatcher.dispatch(Blocker(name="own"))
            await probe.wait_for(lambda: probe.count("start") == 2)
            await web.dispatcher.dispatch(
                Tick(label="series"), lambda r: r.schedule().every(1).seconds().max_runs(1)
            )
            await probe.wait_for(lambda: probe.count("tick") == 1, timeout=5)
        finally:
            probe.gate("own").set()
        await wait_until(lambda: probe.count("end") == 100)


async def test_a_worker_that_starts_while_a_backlog_waits_takes_only_its_share() -> None:
    # its startup pass takes every row not due yet (timers hold no lane) and of the due
    # ones what its lanes can hold (32 here), as a poll does; the other workers keep theirs
    storage = MemoryTaskStorage()
    web, a, b, a_probe, b_probe = _web_and_two_workers(storage)
    async with web, a:
        await a.wait_recovered(5)
        for _ in range(200):
            await web.dispatcher.dispatch(Blocker(name="backlog"))
        for _ in range(10):
            await web.dispatcher.dispatch(Ping(n=1), timedelta(hours=1))
        await a_probe.wait_for(lambda: a_probe.count("start") == 2)
        async with b:
            try:
                report = await b.wait_recovered(5)
                assert report is not None and report.scheduled == 10
                assert 0 < report.recovered - report.scheduled <= 32
                assert _held_by(storage, b, delayed=True) == 10
                assert _held_by(storage, b, delayed=False) <= 32
                assert _held_by(storage, a, delayed=False) <= 32
                await b_probe.wait_for(lambda: b_probe.count("start") == 2)
            finally:
                a_probe.gate("backlog").set()
                b_probe.gate("backlog").set()
            await wait_until(lambda: a_probe.count("end") + b_probe.count("end") == 200)
    assert a_probe.count("end") > 2 and b_probe.count("end") > 2


async def test_a_worker_that_starts_on_a_backlog_is_idle_only_once_it_ran_all_of_it() -> None:
    # its startup pass takes a share (32 here); the host stays busy until its polls took
    # and ran the rest (they come 5 ms apart: its queues may be empty meanwhile)
    storage = MemoryTaskStorage()
    web, _ = node(storage, lambda o: o.set_run_workers(False))
    worker, box = node(storage, lambda o: o.set_max_degree_of_parallelism(2))
    probe = box.probe()
    async with web:
        for _ in range(300):
            await web.dispatcher.dispatch(Blocker(name="backlog"))
        async with worker:
            await worker.wait_recovered(5)
            await probe.wait_for(lambda: probe.count("start") == 2)
            probe.gate("backlog").set()
            await asyncio.wait_for(worker.activity.wait_idle(), 10)
            assert probe.count("end") == 300


async def test_a_recurring_key_registered_by_two_hosts_runs_once_per_occurrence() -> None:
    storage = MemoryTaskStorage()
    a, a_box = node(storage)
    b, b_box = node(storage)

    def every_second(r: Any) -> Any:
        return r.schedule().every(1).seconds().max_runs(3)

    async with a, b:
        first = await a.dispatcher.dispatch(Tick(label="a"), every_second, task_key="shared")
        second = await b.dispatcher.dispatch(Tick(label="b"), every_second, task_key="shared")
        assert first == second
        assert b.scheduled_count == 0  # the series is a's: b only updated its definition
        await wait_until(
            lambda: (
                len([c for c in a_box.probe().calls + b_box.probe().calls if c[0] == "tick"]) >= 3
            ),
            timeout=8,
        )
        await wait_status(a, first, Q.COMPLETED, timeout=5)
    ticks = [c for c in a_box.probe().calls + b_box.probe().calls if c[0] == "tick"]
    assert len(ticks) == 3


def test_a_dispatch_only_host_needs_a_storage() -> None:
    with pytest.raises(ConfigurationError, match="dispatch-only"):
        build_host(ALL, lambda o: o.set_run_workers(False), storage=False)


def test_the_heartbeat_must_be_shorter_than_the_lease() -> None:
    options = EverTaskOptions()
    with pytest.raises(ConfigurationError, match="shorter than the lease"):
        options.set_heartbeat_interval(timedelta(seconds=40))
    with pytest.raises(ConfigurationError, match="must be positive"):
        options.set_lease_duration(0)
    assert options.effective_heartbeat_interval == timedelta(seconds=10)


async def test_a_task_cancelled_on_another_node_stops_where_it_runs() -> None:
    storage = MemoryTaskStorage()
    a, a_box = node(storage)
    b, _ = node(storage)
    a_probe = a_box.probe()
    async with a, b:
        running = await a.dispatcher.dispatch(Blocker(name="long"))
        waiting = await a.dispatcher.dispatch(Blocker(name="next"))  # parallelism 1: waits
        await a_probe.wait_for(lambda: a_probe.count("start") == 1)
        await b.dispatcher.cancel(running)
        await b.dispatcher.cancel(waiting)
        await wait_until(lambda: not a.engine.in_flight, timeout=2)  # polls every 50 ms
        a_probe.gate("next").set()
        for tid in (running, waiting):
            assert (await wait_status(a, tid, Q.CANCELLED)) is Q.CANCELLED
    assert a_probe.calls == [("start", "long")]  # never finished, "next" never started


async def test_a_pause_made_on_one_node_applies_on_every_node() -> None:
    storage = MemoryTaskStorage()
    a, _ = node(storage)
    b, b_box = node(storage)
    b_probe = b_box.probe()
    async with a, b:
        await a.pause_queue("default")
        await wait_until(lambda: b.is_queue_paused("default"), timeout=2)  # b's heartbeat
        held = await b.dispatcher.dispatch(Ping(n=5))
        assert (await storage.get(held)).status is Q.QUEUED  # type: ignore[union-attr]
        assert b_probe.calls == []
        await a.resume_queue("default")
        await wait_status(b, held, Q.COMPLETED, timeout=3)
    assert b_probe.calls == [("ping", 5)]


async def test_a_node_whose_renewals_are_late_starts_nothing_before_its_lease_ends() -> None:
    storage = MemoryTaskStorage()
    host, box = node(storage)
    probe = box.probe()
    gate = asyncio.Event()
    renew = storage.renew_lease

    async def slow_renew(*args: Any) -> bool:
        await gate.wait()  # the database is slow to answer
        return await renew(*args)

    async with host:
        membership = host.engine.membership
        assert membership is not None
        storage.renew_lease = slow_renew  # type: ignore[method-assign]
        await wait_until(lambda: membership._held, timeout=2)  # lease 0.6 s, heartbeat 0.1 s
        old_id = membership.node.id
        tid = await host.dispatcher.dispatch(Ping(n=1))
        assert host.queue_length("default") == 1 and host.queue_running("default") == 0
        lease_end = membership._renewed + 0.6
        await wait_until(lambda: time.monotonic() > lease_end, timeout=2)
        gate.set()  # the late renewal comes after the lease ended: the node rejoins, runs it
        await wait_status(host, tid, Q.COMPLETED, timeout=3)
        row = await storage.get(tid)
        assert row is not None and row.owner_node == membership.node.id != old_id
    assert probe.calls == [("ping", 1)]


async def test_a_nodes_death_and_the_takeover_are_events_on_the_live_stream() -> None:
    storage = MemoryTaskStorage()
    a, _ = node(storage)
    b, _ = node(storage)
    seen: list[TaskEvent] = []
    async with b:
        b.subscribe(seen.append)
        await a.start()
        dead_id = a.node_id
        queued = await a.dispatcher.dispatch(Ping(n=1), timedelta(milliseconds=100))
        membership = a.engine.membership
        assert membership is not None
        for task in membership._tasks:  # a dies: no more heartbeats, no more timers
            task.cancel()
        a.engine.scheduler.stop()
        await wait_status(b, queued, Q.COMPLETED, timeout=5)
        await wait_until(lambda: {e.kind for e in seen} >= {"node_dead", "takeover"}, 2)
    dead = next(e for e in seen if e.kind is EventKind.NODE_DEAD)
    assert dead.task_id == dead_id and dead.task_type == NODE_EVENT_TYPE
    assert dead.severity == "Warning" and "is dead" in dead.message
    taken = next(e for e in seen if e.kind is EventKind.TAKEOVER)
    assert taken.task_id == b.node_id and "took over 1 task(s)" in taken.message
    assert json.loads(taken.parameters)["nodeId"] == str(b.node_id)
    await a.stop(grace_period=0.05)


async def test_a_worker_alone_on_sqlite_takes_a_dispatch_only_hosts_task_at_its_next_poll(
    tmp_path: Any,
) -> None:
    """No notices on SQLite: the worker polls although it was alone when the web host came
    (it learns of other nodes only at its heartbeat, here far off)."""
    path = str(tmp_path / "shared.db")

    def slow_heartbeat(o: EverTaskOptions) -> None:
        o.set_lease_duration(timedelta(minutes=10))
        o.set_heartbeat_interval(timedelta(minutes=5))
        o.set_cluster_poll_interval(timedelta(milliseconds=100))

    def on_sqlite(b: Any) -> None:
        b.add_sqlite_storage(path)

    worker, worker_box = build_host(
        [*ALL, TickHandler], slow_heartbeat, storage=False, builder=on_sqlite
    )
    web, _ = build_host(
        [*ALL, TickHandler],
        lambda o: (slow_heartbeat(o), o.set_run_workers(False)),
        storage=False,
        builder=on_sqlite,
    )
    async with worker:
        membership = worker.engine.membership
        assert membership is not None and membership.alone
        async with web:
            started = time.monotonic()
            tid = await web.dispatcher.dispatch(Ping(n=7))
            await wait_status(worker, tid, Q.COMPLETED, timeout=10)
            assert time.monotonic() - started < 5  # a poll, not the heartbeat (5 min)
            assert membership.alone  # still: no heartbeat has read the nodes since
    assert [n for name, n in worker_box.probe().calls if name == "ping"] == [7]
