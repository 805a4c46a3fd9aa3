"""Who runs a released continuation: the parent's terminal write hands it to the node that
writes it while that node takes work (adopted as the rows a claim takes); otherwise it is an
unowned row, left to the claims (docs/workflows.md, durability)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from evertask.adaptive import ResourceSample
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler, QueuedTaskStatus
from tests.helpers import Probe, build_host, wait_status

Q = QueuedTaskStatus
GIB = 1 << 30


class Step(EverTask):
    name: str


class StepHandler(EverTaskHandler[Step]):
    """Records its start; a step whose gate exists waits for it first."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def handle(self, task: Step, cancellation: CancellationToken) -> None:
        self.probe.record("start", task.name)
        gate = self.probe.gates.get(task.name)
        if gate is not None:
            await gate.wait()
        self.probe.record("end", task.name)


class FakeProbe:
    def __init__(self) -> None:
        self.value = ResourceSample(cpu=0.1, memory_bytes=GIB // 4)

    def sample(self) -> ResourceSample:
        return self.value


async def _owner(host: Any, task_id: uuid.UUID) -> uuid.UUID | None:
    row = await host.storage.get(task_id)
    assert row is not None
    return row.owner_node  # type: ignore[no-any-return]


def _record_claims(host: Any) -> list[uuid.UUID]:
    """The ids of the rows the host's cluster claims take from now on."""
    claimed: list[uuid.UUID] = []
    storage = host.storage
    claim = storage.claim_orphans

    async def recording(*args: Any, **kwargs: Any) -> Any:
        rows = await claim(*args, **kwargs)
        claimed.extend(r.id for r in rows)
        return rows

    storage.claim_orphans = recording
    return claimed


def _one_slot_host() -> tuple[Any, Probe]:
    """A host whose queues each hold one run at a time, and its probe."""
    host, c = build_host(
        [StepHandler], lambda o: o.set_channel_options(1).set_max_degree_of_parallelism(1)
    )
    return host, c.probe()


def _fast_heartbeats(o: Any) -> Any:
    """(a node alone on a storage without notices claims at its heartbeats)"""
    return o.set_lease_duration(timedelta(seconds=3)).set_heartbeat_interval(timedelta(seconds=0.1))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_the_writing_node_runs_its_released_continuations_without_a_claim(
    kind: str, tmp_path: Path
) -> None:
    builder = None
    if kind == "sqlite":

        def builder(b: Any) -> Any:
            return b.add_sqlite_storage(str(tmp_path / "handover.db"))

    host, c = build_host([StepHandler], storage=kind == "memory", builder=builder)
    probe: Probe = c.probe()
    async with host:
        await host.wait_recovered(5)
        claimed = _record_claims(host)
        probe.gate("first")
        first = await host.dispatcher.dispatch(Step(name="first"))
        second = await host.dispatcher.dispatch(Step(name="second"), after=first)
        third = await host.dispatcher.dispatch(Step(name="third"), after=second)
        probe.gate("first").set()
        await wait_status(host, third, Q.COMPLETED)
        assert await _owner(host, second) == host.node_id
        assert await _owner(host, third) == host.node_id
    assert claimed == []
    assert [c[1] for c in probe.calls if c[0] == "start"] == ["first", "second", "third"]


async def test_a_paused_node_leaves_released_continuations_to_the_claims() -> None:
    """Adaptive throttling pauses the node while the parent runs: the parent finishes, its
    continuation is released without an owner and does not start until the node resumes
    (then its claim takes it)."""
    probe = FakeProbe()

    def configure(o: Any) -> Any:
        return _fast_heartbeats(o).configure_adaptive_throttling(
            lambda a: (
                a.set_cpu_threshold(0.85)
                .set_memory_threshold_bytes(GIB)
                .set_check_interval(timedelta(hours=1))
                .use_probe(probe)
            )
        )

    host, c = build_host([StepHandler], configure)
    recorder: Probe = c.probe()
    async with host:
        throttle = host.adaptive_throttling
        assert throttle is not None
        claimed = _record_claims(host)
        recorder.gate("parent")
        parent = await host.dispatcher.dispatch(Step(name="parent"))
        child = await host.dispatcher.dispatch(Step(name="child"), after=parent)
        await recorder.wait_for(lambda: ("start", "parent") in recorder.calls)
        probe.value = ResourceSample(cpu=0.95, memory_bytes=GIB // 4)
        assert throttle.check()  # paused
        recorder.gate("parent").set()
        await wait_status(host, parent, Q.COMPLETED)
        assert await wait_status(host, child, Q.QUEUED) is Q.QUEUED
        assert await _owner(host, child) is None
        await asyncio.sleep(0.3)  # (heartbeats came and went: the paused node claims nothing)
        assert ("start", "child") not in recorder.calls
        probe.value = ResourceSample(cpu=0.1, memory_bytes=GIB // 4)
        assert not throttle.check()  # resumed
        await wait_status(host, child, Q.COMPLETED)
        assert await _owner(host, child) == host.node_id
        assert claimed == [child]


async def test_a_node_without_room_leaves_the_continuation_to_its_claim() -> None:
    """One slot per queue, each held by a running task (the parent's among them): the
    release gives the continuation no owner, and the node's claim takes it once the
    parent's slot is free."""
    host, probe = _one_slot_host()
    async with host:
        await host.wait_recovered(5)
        claimed = _record_claims(host)
        membership = host.engine.membership
        assert membership.hand_over() == (host.node_id, 2)  # (two queues of one slot)
        for name in ("parent", "series"):
            probe.gate(name)
        series = await host.dispatcher.dispatch(
            Step(name="series"), lambda b: b.run_now().then().every(1).hours()
        )
        parent = await host.dispatcher.dispatch(Step(name="parent"))
        child = await host.dispatcher.dispatch(Step(name="child"), after=parent)
        await probe.wait_for(lambda: probe.count("start") == 2)
        assert membership.hand_over() == (None, 0)  # no room
        probe.gate("parent").set()
        await wait_status(host, parent, Q.COMPLETED)
        await wait_status(host, child, Q.COMPLETED)
        assert await _owner(host, child) == host.node_id
        assert claimed == [child]
        probe.gate("series").set()
        await host.dispatcher.cancel(series)


async def test_a_node_takes_no_more_released_continuations_than_it_has_room_for() -> None:
    """Three continuations of one parent, on a node with room for one more run (its
    recurring queue's slot, the parent holding the other): the release hands it one; the
    other two are unowned rows, which its claim takes as room comes."""
    host, probe = _one_slot_host()
    async with host:
        await host.wait_recovered(5)
        claimed = _record_claims(host)
        probe.gate("parent")
        parent = await host.dispatcher.dispatch(Step(name="parent"))
        children = [
            await host.dispatcher.dispatch(Step(name=f"child{n}"), after=parent) for n in range(3)
        ]
        await probe.wait_for(lambda: ("start", "parent") in probe.calls)
        assert host.engine.membership.hand_over() == (host.node_id, 1)
        probe.gate("parent").set()
        for child in children:
            await wait_status(host, child, Q.COMPLETED)
        assert sorted(claimed) == sorted(children[1:])  # the first was handed over
        assert [await _owner(host, child) for child in children] == [host.node_id] * 3


async def test_the_owner_is_this_node_only_while_it_takes_work() -> None:
    host, _ = build_host([StepHandler])
    async with host:
        await host.wait_recovered(5)
        membership = host.engine.membership
        owner, room = membership.hand_over()
        assert owner == host.node_id and room > 0
        membership.claiming = False  # (adaptive throttling's pause)
        assert membership.hand_over() == (None, 0)
        membership.claiming = True
        membership._hold()  # (a late lease)
        assert membership.hand_over() == (None, 0)
        membership._release_hold()
        assert membership.hand_over() == (host.node_id, room)
    assert membership.hand_over() == (None, 0)  # stopped
    dispatch_only, _ = build_host([StepHandler], lambda o: o.set_run_workers(False))
    async with dispatch_only:
        assert dispatch_only.engine.membership.hand_over() == (None, 0)
