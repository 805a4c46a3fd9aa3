"""Contract: cluster mode (nodes and their leases, row ownership, claims of orphaned rows).

The memory storage is the reference; every backend passes the same tests. The last tests
run claimers concurrently: two storages on one database in one process, then several
processes on one SQLite file or PostgreSQL schema.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evertask.storage import NodeInfo, QueuedTask, TaskStorage
from evertask_abstractions import AuditLevel, QueuedTaskStatus

from .conftest import PG_URL, Clock, StorageFactory, _empty
from .helpers import recurring, row

Q = QueuedTaskStatus
CHILD = Path(__file__).with_name("claim_child.py")
REPO = Path(__file__).resolve().parents[2]
LEASE = timedelta(seconds=30)


def node(clock: Clock, *, started: timedelta = timedelta(0), lease: timedelta = LEASE) -> NodeInfo:
    """A node started ``started`` after the clock's now, its lease ``lease`` from then."""
    at = clock.now + started
    return NodeInfo(
        id=uuid.uuid4(),
        host_name="host-a",
        pid=4242,
        started_at_utc=at,
        last_heartbeat_utc=at,
        lease_expires_utc=at + lease,
        queues=("default", "mail, urgent"),
        runs_workers=True,
    )


async def _owners(storage: TaskStorage, *tasks: QueuedTask) -> list[uuid.UUID | None]:
    found = [await storage.get(t.id) for t in tasks]
    return [t.owner_node if t is not None else None for t in found]


# -- ownership and nodes ---------------------------------------------------------------------
async def test_a_persisted_row_keeps_its_owner(storage: TaskStorage, clock: Clock) -> None:
    owner = uuid.uuid4()
    owned = row(clock.now, owner_node=owner)
    free = row(clock.now, status=Q.QUEUED)
    await storage.persist(owned)
    await storage.persist(free)
    assert await _owners(storage, owned, free) == [owner, None]
    pending = await storage.retrieve_pending(None, None, 10)
    assert {t.id: t.owner_node for t in pending} == {owned.id: owner, free.id: None}


async def test_nodes_register_list_and_renew(storage: TaskStorage, clock: Clock) -> None:
    first = node(clock)
    second = node(clock, started=timedelta(seconds=1))
    second.queues, second.runs_workers = (), False
    await storage.register_node(second)
    await storage.register_node(first)
    assert await storage.list_nodes() == [first, second]

    now = clock.advance(seconds=10)
    assert await storage.renew_lease(first.id, now, now + LEASE) is True
    listed = {n.id: n for n in await storage.list_nodes()}
    assert listed[first.id].last_heartbeat_utc == now
    assert listed[first.id].lease_expires_utc == now + LEASE
    assert listed[second.id] == second

    expired = second.lease_expires_utc  # valid while lease > now: at its end it is gone
    assert await storage.renew_lease(second.id, expired, expired + LEASE) is False
    assert await storage.renew_lease(uuid.uuid4(), now, now + LEASE) is False
    listed = {n.id: n for n in await storage.list_nodes()}
    assert listed[second.id].lease_expires_utc == second.lease_expires_utc


async def test_deregister_releases_only_the_nodes_recoverable_rows(
    storage: TaskStorage, clock: Clock
) -> None:
    leaving, staying = node(clock), node(clock)
    await storage.register_node(leaving)
    await storage.register_node(staying)
    now = clock.now
    queued = row(now, status=Q.QUEUED, owner_node=leaving.id)
    waiting = recurring(now, now + timedelta(minutes=1), owner_node=leaving.id)
    done = row(now, status=Q.COMPLETED, owner_node=leaving.id)
    cancelled = row(now, status=Q.CANCELLED, owner_node=leaving.id)
    other = row(now, status=Q.QUEUED, owner_node=staying.id)
    for task in (queued, waiting, done, cancelled, other):
        await storage.persist(task)

    assert await storage.deregister_node(leaving.id) == 2
    assert await _owners(storage, queued, waiting, done, cancelled, other) == [
        None,
        None,
        leaving.id,
        leaving.id,
        staying.id,
    ]
    assert [n.id for n in await storage.list_nodes()] == [staying.id]
    assert await storage.deregister_node(leaving.id) == 0


async def test_remove_dead_nodes_keeps_nodes_owning_recoverable_rows(
    storage: TaskStorage, clock: Clock
) -> None:
    idle = node(clock, lease=timedelta(seconds=-60))  # expired a minute ago
    busy = node(clock, started=timedelta(seconds=1), lease=timedelta(seconds=-60))
    recent = node(clock, started=timedelta(seconds=2), lease=timedelta(seconds=-1))
    alive = node(clock, started=timedelta(seconds=3))
    for n in (idle, busy, recent, alive):
        await storage.register_node(n)
    await storage.persist(row(clock.now, status=Q.COMPLETED, owner_node=idle.id))
    await storage.persist(row(clock.now, status=Q.PENDING, owner_node=busy.id))

    removed = await storage.remove_dead_nodes(clock.now - timedelta(seconds=30))
    assert removed == 1
    assert [n.id for n in await storage.list_nodes()] == [busy.id, recent.id, alive.id]
    assert await storage.remove_dead_nodes(clock.now - timedelta(seconds=30)) == 0


# -- claims ----------------------------------------------------------------------------------
async def test_claim_orphans_takes_unowned_and_dead_owned_rows_oldest_first(
    storage: TaskStorage, clock: Clock
) -> None:
    me, live, dead = node(clock), node(clock), node(clock, lease=timedelta(seconds=-1))
    for n in (me, live, dead):
        await storage.register_node(n)
    t0 = clock.now - timedelta(minutes=10)
    at = [t0 + timedelta(seconds=i) for i in range(10)]
    dead_row = row(at[0], status=Q.IN_PROGRESS, owner_node=dead.id)
    unowned = row(at[1], status=Q.QUEUED)
    live_row = row(at[2], status=Q.QUEUED, owner_node=live.id)
    mine = row(at[3], status=Q.QUEUED, owner_node=me.id)
    finished = row(at[4], status=Q.COMPLETED)
    dead_finished = row(at[5], status=Q.FAILED, owner_node=dead.id)
    series = recurring(at[6], clock.now + timedelta(minutes=1), owner_node=dead.id)
    stopped = row(at[7], status=Q.SERVICE_STOPPED)
    for task in (stopped, series, dead_finished, finished, mine, live_row, unowned, dead_row):
        await storage.persist(task)

    claimed = await storage.claim_orphans(me.id, clock.now, 10)
    assert [t.id for t in claimed] == [dead_row.id, unowned.id, series.id, stopped.id]
    assert {t.owner_node for t in claimed} == {me.id}
    assert claimed[0].status is Q.IN_PROGRESS and claimed[2].is_recurring
    assert await _owners(storage, *claimed) == [me.id] * 4
    assert await _owners(storage, live_row, mine, finished, dead_finished) == [
        live.id,
        me.id,
        None,
        dead.id,
    ]
    assert await storage.claim_orphans(me.id, clock.now, 10) == []
    assert await storage.claim_orphans(live.id, clock.now, 10) == []  # all are owned by me now


async def test_claim_orphans_honours_take_and_due_before(
    storage: TaskStorage, clock: Clock
) -> None:
    me = node(clock)
    await storage.register_node(me)
    now = clock.now
    rows = [
        row(now - timedelta(seconds=5), status=Q.QUEUED),
        row(now - timedelta(seconds=4), scheduled_execution_utc=now + timedelta(hours=1)),
        row(now - timedelta(seconds=3), scheduled_execution_utc=now + timedelta(seconds=5)),
        row(now - timedelta(seconds=2), status=Q.QUEUED),
        row(now - timedelta(seconds=1), scheduled_execution_utc=now - timedelta(seconds=1)),
    ]
    for task in rows:
        await storage.persist(task)
    assert await storage.claim_orphans(me.id, now, 0) == []
    first = await storage.claim_orphans(me.id, now, 1, due_before=now + timedelta(seconds=5))
    assert [t.id for t in first] == [rows[0].id]
    due = await storage.claim_orphans(me.id, now, 10, due_before=now + timedelta(seconds=5))
    assert [t.id for t in due] == [rows[2].id, rows[3].id, rows[4].id]
    rest = await storage.claim_orphans(me.id, now, 10)
    assert [t.id for t in rest] == [rows[1].id]


async def test_claim_orphans_with_scheduled_after_takes_only_rows_not_due_yet(
    storage: TaskStorage, clock: Clock
) -> None:
    me, dead = node(clock), node(clock, lease=timedelta(seconds=-1))
    for n in (me, dead):
        await storage.register_node(n)
    now = clock.now
    rows = [
        row(now - timedelta(seconds=6), status=Q.QUEUED),
        row(now - timedelta(seconds=5), scheduled_execution_utc=now + timedelta(hours=1)),
        row(now - timedelta(seconds=4), scheduled_execution_utc=now - timedelta(seconds=1)),
        row(now - timedelta(seconds=3), scheduled_execution_utc=now),
        recurring(
            now - timedelta(seconds=2),
            now + timedelta(minutes=1),
            scheduled_execution_utc=now + timedelta(minutes=1),
            owner_node=dead.id,
        ),
        row(now - timedelta(seconds=1), scheduled_execution_utc=now + timedelta(seconds=5)),
    ]
    for task in rows:
        await storage.persist(task)
    first = await storage.claim_orphans(me.id, now, 1, scheduled_after=now)
    assert [t.id for t in first] == [rows[1].id]
    later = await storage.claim_orphans(me.id, now, 10, scheduled_after=now)
    assert [t.id for t in later] == [rows[4].id, rows[5].id]  # a dead node's series too
    assert await storage.claim_orphans(me.id, now, 10, scheduled_after=now) == []
    rest = await storage.claim_orphans(me.id, now, 10, due_before=now)
    assert [t.id for t in rest] == [rows[0].id, rows[2].id, rows[3].id]


async def test_claim_orphans_refuses_both_windows(storage: TaskStorage, clock: Clock) -> None:
    me = node(clock)
    await storage.register_node(me)
    await storage.persist(row(clock.now, status=Q.QUEUED))
    with pytest.raises(ValueError, match="not both"):
        await storage.claim_orphans(
            me.id, clock.now, 10, due_before=clock.now, scheduled_after=clock.now
        )
    assert len(await storage.claim_orphans(me.id, clock.now, 10)) == 1  # nothing was claimed


async def test_a_node_never_claims_its_own_rows_even_when_its_lease_expired(
    storage: TaskStorage, clock: Clock
) -> None:
    me = node(clock, lease=timedelta(seconds=-1))
    await storage.register_node(me)
    mine = row(clock.now, status=Q.QUEUED, owner_node=me.id)
    await storage.persist(mine)
    assert await storage.claim_orphans(me.id, clock.now, 10) == []
    other = uuid.uuid4()
    assert [t.id for t in await storage.claim_orphans(other, clock.now, 10)] == [mine.id]


async def test_owner_checked_compare_and_set(storage: TaskStorage, clock: Clock) -> None:
    owner, other = node(clock), node(clock)
    task = row(clock.now, owner_node=owner.id)
    await storage.persist(task)
    level = AuditLevel.FULL
    assert await storage.try_set_queued_if_recoverable(task.id, level, owner=other.id) is False
    found = await storage.get(task.id)
    assert found is not None and found.status is Q.WAITING_QUEUE
    assert await storage.try_set_queued_if_recoverable(task.id, level, owner=owner.id) is True
    found = await storage.get(task.id)
    assert found is not None and found.status is Q.QUEUED
    assert [a.new_status for a in await storage.get_status_audits(task.id)] == [Q.QUEUED]
    finished = row(clock.now, status=Q.COMPLETED, owner_node=owner.id)
    await storage.persist(finished)
    assert await storage.try_set_queued_if_recoverable(finished.id, level, owner=owner.id) is False
    assert await storage.try_set_queued_if_recoverable(task.id, level) is True  # no owner check


async def test_claim_task(storage: TaskStorage, clock: Clock) -> None:
    me, live, dead = node(clock), node(clock), node(clock, lease=timedelta(seconds=-1))
    for n in (me, live, dead):
        await storage.register_node(n)
    now = clock.now
    unowned = row(now)
    mine = row(now, owner_node=me.id)
    of_dead = row(now, status=Q.QUEUED, owner_node=dead.id)
    of_unknown = row(now, status=Q.QUEUED, owner_node=uuid.uuid4())  # owner not registered
    of_live = row(now, status=Q.QUEUED, owner_node=live.id)
    finished = row(now, status=Q.COMPLETED)
    for task in (unowned, mine, of_dead, of_unknown, of_live, finished):
        await storage.persist(task)
    for task in (unowned, mine, of_dead, of_unknown, finished):
        assert await storage.claim_task(task.id, me.id, now) is True, task
    assert await storage.claim_task(of_live.id, me.id, now) is False
    assert await storage.claim_task(uuid.uuid4(), me.id, now) is False
    assert await _owners(storage, unowned, mine, of_dead, of_unknown, of_live, finished) == [
        me.id,
        me.id,
        me.id,
        me.id,
        live.id,
        me.id,
    ]
    # at the end of its lease the live node's rows may be taken
    assert await storage.claim_task(of_live.id, me.id, live.lease_expires_utc) is True


async def test_claim_task_takes_a_finished_or_cancelled_row_of_a_live_node(
    storage: TaskStorage, clock: Clock
) -> None:
    me, live = node(clock), node(clock)
    for n in (me, live):
        await storage.register_node(n)
    cancelled = row(clock.now, status=Q.CANCELLED, owner_node=live.id)
    completed = row(clock.now, status=Q.COMPLETED, owner_node=live.id)
    running = row(clock.now, status=Q.IN_PROGRESS, owner_node=live.id)
    for task in (cancelled, completed, running):
        await storage.persist(task)
    assert await storage.claim_task(cancelled.id, me.id, clock.now) is True  # nobody runs it
    assert await storage.claim_task(completed.id, me.id, clock.now) is True
    assert await storage.claim_task(running.id, me.id, clock.now) is False
    assert await _owners(storage, cancelled, completed, running) == [me.id, me.id, live.id]


async def test_cancelled_among(storage: TaskStorage, clock: Clock) -> None:
    cancelled = row(clock.now, status=Q.CANCELLED)
    queued = row(clock.now, status=Q.QUEUED)
    for task in (cancelled, queued):
        await storage.persist(task)
    missing = uuid.uuid4()
    assert await storage.cancelled_among([cancelled.id, queued.id, missing]) == {cancelled.id}
    assert await storage.cancelled_among([]) == set()
    await storage.set_cancelled_by_user(queued.id, AuditLevel.FULL)
    assert await storage.cancelled_among([queued.id]) == {queued.id}


# -- concurrent claimers ---------------------------------------------------------------------
@pytest.fixture
async def second_storage(
    storage: TaskStorage, request: pytest.FixtureRequest, make_storage: StorageFactory
) -> AsyncIterator[TaskStorage]:
    """Another storage object (its own pools) on the same database; memory: the same one."""
    backend = request.node.callspec.params["storage"]
    if backend == "memory":
        yield storage
        return
    other = make_storage(backend)
    await other.open()
    try:
        yield other
    finally:
        await other.close()


async def test_concurrent_claimers_never_get_the_same_row(
    storage: TaskStorage, second_storage: TaskStorage, clock: Clock
) -> None:
    count = 300
    dead = node(clock, lease=timedelta(seconds=-1))
    await storage.register_node(dead)
    start = clock.now - timedelta(hours=1)
    for i in range(count):
        owner = dead.id if i % 3 == 0 else None
        await storage.persist(row(start + timedelta(milliseconds=i), owner_node=owner))
    a, b = node(clock), node(clock)
    await storage.register_node(a)
    await storage.register_node(b)
    got: dict[uuid.UUID, list[uuid.UUID]] = {a.id: [], b.id: []}
    for _ in range(200):
        results = await asyncio.gather(
            storage.claim_orphans(a.id, clock.now, 7),
            second_storage.claim_orphans(b.id, clock.now, 7),
            storage.claim_orphans(a.id, clock.now, 5),
            second_storage.claim_orphans(b.id, clock.now, 5),
        )
        for claimer, claimed in zip((a.id, b.id, a.id, b.id), results, strict=True):
            assert {t.owner_node for t in claimed} <= {claimer}
            got[claimer].extend(t.id for t in claimed)
        if len(got[a.id]) + len(got[b.id]) >= count and not any(results):
            break
    everything = got[a.id] + got[b.id]
    assert len(everything) == len(set(everything)) == count
    owners = {t.id: t.owner_node for t in await storage.retrieve_pending(None, None, count)}
    assert all(owners[i] == a.id for i in got[a.id])
    assert all(owners[i] == b.id for i in got[b.id])


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_claiming_processes_never_get_the_same_row(
    kind: str, make_storage: StorageFactory, clock: Clock, tmp_path: Path
) -> None:
    count, processes = 300, 3
    storage = make_storage(kind)
    await storage.open()
    try:
        if kind == "postgres":
            await _empty(storage)
            target = json.dumps([PG_URL, storage.schema])
        else:
            target = str(storage.path)
        start = clock.now - timedelta(hours=1)
        for i in range(count):
            await storage.persist(row(start + timedelta(milliseconds=i)))
        ids = await asyncio.to_thread(_run_claimers, kind, target, processes, clock.now, tmp_path)
        everything = [i for got in ids for i in got]
        assert len(everything) == len(set(everything)) == count
        pending = await storage.retrieve_pending(None, None, count)
        owners = {t.owner_node for t in pending}
        assert len(pending) == count and None not in owners and len(owners) <= processes
    finally:
        await storage.close()


def _run_claimers(
    kind: str, target: str, processes: int, now: datetime, tmp_path: Path
) -> list[list[uuid.UUID]]:
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(processes)]
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), kind, target, now.isoformat(), str(go), str(mark)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mark in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(mark.exists() for mark in ready):
            assert time.monotonic() < deadline, "children did not start"
            assert all(c.poll() is None for c in children), [c.communicate() for c in children]
            time.sleep(0.01)
        go.touch()
        outcomes = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
    assert [c.returncode for c in children] == [0] * processes, outcomes
    out: list[list[uuid.UUID]] = []
    for stdout, _ in outcomes:
        got: Any = json.loads(stdout.strip().splitlines()[-1])
        out.append([uuid.UUID(i) for i in got])
    return out
