"""Contract: task results and continuations (released with the parent's terminal write)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from evertask.storage import NodeInfo, TaskStorage
from evertask.storage.models import QueuedTask
from evertask_abstractions import AuditLevel, ContinueWhen, QueuedTaskStatus, TaskNotFoundError

from .conftest import Clock
from .helpers import row

Q = QueuedTaskStatus
A = AuditLevel
W = ContinueWhen


def child(clock: Clock, parent: uuid.UUID, when: ContinueWhen) -> QueuedTask:
    task = row(clock.now, status=Q.WAITING_PARENT)
    task.parent_task_id = parent
    task.continue_when = when.value
    return task


def node(clock: Clock, name: str, lease: timedelta = timedelta(seconds=30)) -> NodeInfo:
    return NodeInfo(
        id=uuid.uuid4(),
        host_name=name,
        pid=4242,
        started_at_utc=clock.now,
        last_heartbeat_utc=clock.now,
        lease_expires_utc=clock.now + lease,
        queues=("default",),
        runs_workers=True,
    )


async def status(storage: TaskStorage, task_id: uuid.UUID) -> QueuedTaskStatus:
    loaded = await storage.get(task_id)
    assert loaded is not None
    return loaded.status


async def test_result_round_trip_with_completed(storage: TaskStorage, clock: Clock) -> None:
    task = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(task)
    assert await storage.set_completed(task.id, 3.0, A.FULL, '{"total": 42}') == []
    loaded = await storage.get(task.id)
    assert loaded is not None
    assert (loaded.status, loaded.result) == (Q.COMPLETED, '{"total": 42}')


@pytest.mark.parametrize(
    ("outcome", "runs"),
    [
        (Q.COMPLETED, {W.SUCCEEDED, W.FINISHED}),
        (Q.FAILED, {W.FAILED, W.FINISHED}),
        (Q.CANCELLED, set()),
    ],
)
async def test_terminal_write_releases_matching_children(
    storage: TaskStorage, clock: Clock, outcome: QueuedTaskStatus, runs: set[ContinueWhen]
) -> None:
    parent = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(parent)
    children = {w: child(clock, parent.id, w) for w in W}
    for c in children.values():
        assert await storage.persist_continuation(c) is Q.WAITING_PARENT
    assert await storage.retrieve_pending(None, None, 100) == [] or all(
        r.id == parent.id for r in await storage.retrieve_pending(None, None, 100)
    )  # a waiting child is never recovered
    released: list[QueuedTask] = []
    if outcome is Q.COMPLETED:
        released = await storage.set_completed(parent.id, 1.0, A.FULL, "1")
    elif outcome is Q.FAILED:
        released = await storage.set_status(parent.id, Q.FAILED, "boom", A.FULL, 1.0)
    else:
        assert await storage.set_cancelled_by_user(parent.id, A.FULL) == 0
    assert {r.id for r in released} == {children[w].id for w in runs}
    for when, c in children.items():
        loaded = await storage.get(c.id)
        assert loaded is not None
        if when in runs:
            assert (loaded.status, loaded.owner_node, loaded.exception) == (Q.QUEUED, None, None)
        else:
            assert loaded.status is Q.CANCELLED
            assert loaded.exception is not None and str(parent.id) in loaded.exception
    found = await storage.released_children(parent.id)
    assert {r.id for r in found} == {children[w].id for w in runs}
    assert all(r.parent_task_id == parent.id for r in found)
    # released once: a second terminal write releases nothing more
    assert await storage.set_status(parent.id, Q.FAILED, "again", A.FULL) == []


@pytest.mark.parametrize("outcome", [Q.COMPLETED, Q.FAILED])
async def test_release_hands_the_children_to_the_owner(
    storage: TaskStorage, clock: Clock, outcome: QueuedTaskStatus
) -> None:
    """With an owner (the writing node), the children that run become its rows in the same
    transaction, which returns them as stored, oldest first; the others are cancelled."""
    owner = uuid.uuid4()
    parent = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(parent)
    children = []
    for when in (W.FINISHED, W.SUCCEEDED, W.FAILED, W.FINISHED):
        clock.advance(seconds=1)
        children.append(child(clock, parent.id, when))
        await storage.persist_continuation(children[-1])
    if outcome is Q.COMPLETED:
        released = await storage.set_completed(parent.id, 1.0, A.FULL, "1", owner=owner)
    else:
        released = await storage.set_status(parent.id, Q.FAILED, "boom", A.FULL, 1.0, owner=owner)
    runs = [c for c in children if ContinueWhen(c.continue_when).matches(outcome)]
    assert [r.id for r in released] == [c.id for c in runs]
    assert released == [await storage.get(c.id) for c in runs]  # every column, as stored
    assert all((r.status, r.owner_node) == (Q.QUEUED, owner) for r in released)
    assert await storage.released_children(parent.id) == []  # none left unowned
    for c in children:
        if c not in runs:
            assert await status(storage, c.id) is Q.CANCELLED


async def test_release_hands_no_more_than_the_owners_room(
    storage: TaskStorage, clock: Clock
) -> None:
    """With ``room``, the first children that run go to the owner; the others are given
    back in the same transaction: unowned, as any node's claim takes them."""
    owner = uuid.uuid4()
    parent = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(parent)
    children = []
    for _ in range(3):
        clock.advance(seconds=1)
        children.append(child(clock, parent.id, W.SUCCEEDED))
        await storage.persist_continuation(children[-1])
    released = await storage.set_completed(parent.id, 1.0, A.FULL, owner=owner, room=2)
    assert [(r.id, r.owner_node) for r in released] == [
        (children[0].id, owner),
        (children[1].id, owner),
        (children[2].id, None),
    ]
    assert released == [await storage.get(c.id) for c in children]  # as stored
    assert [r.id for r in await storage.released_children(parent.id)] == [children[2].id]


async def test_children_handed_to_a_node_are_claimable_once_it_is_dead(
    storage: TaskStorage, clock: Clock
) -> None:
    """The writer of the release owns its children: no live node takes them, and once its
    lease has run out they are orphans like any of a dead node's rows."""
    writer, other = node(clock, "writer"), node(clock, "other", lease=timedelta(hours=1))
    await storage.register_node(writer)
    await storage.register_node(other)
    parent = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(parent)
    c = child(clock, parent.id, W.SUCCEEDED)
    await storage.persist_continuation(c)
    released = await storage.set_completed(parent.id, 1.0, A.FULL, owner=writer.id)
    assert [r.id for r in released] == [c.id]
    assert await storage.claim_orphans(other.id, clock.now, 10) == []
    assert not await storage.claim_task(c.id, other.id, clock.now)
    clock.advance(minutes=1)  # the writer died: its lease ran out
    claimed = await storage.claim_orphans(other.id, clock.now, 10)
    assert [(r.id, r.owner_node) for r in claimed] == [(c.id, other.id)]


async def test_parent_already_finished_releases_at_dispatch(
    storage: TaskStorage, clock: Clock
) -> None:
    parent = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(parent)
    await storage.set_completed(parent.id, 1.0, A.FULL, None)
    ok = child(clock, parent.id, W.SUCCEEDED)
    skipped = child(clock, parent.id, W.FAILED)
    assert await storage.persist_continuation(ok) is Q.QUEUED
    assert await storage.persist_continuation(skipped) is Q.CANCELLED
    loaded = await storage.get(ok.id)
    assert loaded is not None and loaded.owner_node is None
    assert [r.id for r in await storage.released_children(parent.id)] == [ok.id]
    assert [r.id for r in await storage.retrieve_pending(None, None, 10)] == [ok.id]


async def test_continuation_of_missing_parent_is_refused(
    storage: TaskStorage, clock: Clock
) -> None:
    with pytest.raises(TaskNotFoundError):
        await storage.persist_continuation(child(clock, uuid.uuid4(), W.SUCCEEDED))


async def test_chain_of_three(storage: TaskStorage, clock: Clock) -> None:
    first = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(first)
    second = child(clock, first.id, W.SUCCEEDED)
    third = child(clock, second.id, W.FINISHED)
    await storage.persist_continuation(second)
    await storage.persist_continuation(third)
    assert len(await storage.set_completed(first.id, 1.0, A.FULL, '"a"')) == 1
    assert (await status(storage, second.id), await status(storage, third.id)) == (
        Q.QUEUED,
        Q.WAITING_PARENT,
    )
    await storage.set_in_progress(second.id, A.FULL)
    assert len(await storage.set_status(second.id, Q.FAILED, "x", A.FULL, 1.0)) == 1
    assert await status(storage, third.id) is Q.QUEUED


async def test_cancelled_child_is_not_released(storage: TaskStorage, clock: Clock) -> None:
    parent = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(parent)
    c = child(clock, parent.id, W.SUCCEEDED)
    await storage.persist_continuation(c)
    await storage.set_cancelled_by_user(c.id, A.FULL)
    assert await storage.set_completed(parent.id, 1.0, A.FULL) == []
    assert await status(storage, c.id) is Q.CANCELLED


async def test_cancelled_parent_cancels_the_whole_chain(storage: TaskStorage, clock: Clock) -> None:
    parent = row(clock.now, status=Q.QUEUED)
    await storage.persist(parent)
    second = child(clock, parent.id, W.FINISHED)
    third = child(clock, second.id, W.FINISHED)
    await storage.persist_continuation(second)
    await storage.persist_continuation(third)
    assert await storage.set_cancelled_by_user(parent.id, A.FULL) == 0
    for task in (second, third):
        loaded = await storage.get(task.id)
        assert loaded is not None and loaded.status is Q.CANCELLED
        assert loaded.exception is not None and "Cancelled" in loaded.exception
