"""Contract: task results and continuations (released with the parent's terminal write)."""

from __future__ import annotations

import uuid

import pytest

from evertask.storage import TaskStorage
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


async def status(storage: TaskStorage, task_id: uuid.UUID) -> QueuedTaskStatus:
    loaded = await storage.get(task_id)
    assert loaded is not None
    return loaded.status


async def test_result_round_trip_with_completed(storage: TaskStorage, clock: Clock) -> None:
    task = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(task)
    assert await storage.set_completed(task.id, 3.0, A.FULL, '{"total": 42}') == 0
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
    if outcome is Q.COMPLETED:
        released = await storage.set_completed(parent.id, 1.0, A.FULL, "1")
    elif outcome is Q.FAILED:
        released = await storage.set_status(parent.id, Q.FAILED, "boom", A.FULL, 1.0)
    else:
        released = await storage.set_cancelled_by_user(parent.id, A.FULL)
    assert released == len(runs)
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
    assert await storage.set_status(parent.id, Q.FAILED, "again", A.FULL) == 0


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
    assert await storage.set_completed(first.id, 1.0, A.FULL, '"a"') == 1
    assert (await status(storage, second.id), await status(storage, third.id)) == (
        Q.QUEUED,
        Q.WAITING_PARENT,
    )
    await storage.set_in_progress(second.id, A.FULL)
    assert await storage.set_status(second.id, Q.FAILED, "x", A.FULL, 1.0) == 1
    assert await status(storage, third.id) is Q.QUEUED


async def test_cancelled_child_is_not_released(storage: TaskStorage, clock: Clock) -> None:
    parent = row(clock.now, status=Q.IN_PROGRESS)
    await storage.persist(parent)
    c = child(clock, parent.id, W.SUCCEEDED)
    await storage.persist_continuation(c)
    await storage.set_cancelled_by_user(c.id, A.FULL)
    assert await storage.set_completed(parent.id, 1.0, A.FULL) == 0
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
