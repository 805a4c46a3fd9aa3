"""Contract: batches and workflow records (BatchStore), counted by their members'
terminal writes and released once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from evertask.ids import uuid7
from evertask.storage import BatchStore, TaskStorage
from evertask.storage.models import QueuedTask, TaskBatch
from evertask_abstractions import (
    AuditLevel,
    BatchKind,
    BatchStatus,
    ContinueWhen,
    QueuedTaskStatus,
)

from .conftest import Clock
from .helpers import row

Q = QueuedTaskStatus
A = AuditLevel
W = ContinueWhen


def record(
    clock: Clock, total: int, kind: BatchKind = BatchKind.BATCH, **fields: object
) -> TaskBatch:
    return TaskBatch(
        id=uuid7(),
        kind=kind,
        status=BatchStatus.RUNNING,
        created_at_utc=clock.now,
        total=total,
        **fields,  # type: ignore[arg-type]
    )


def members(clock: Clock, batch: TaskBatch, n: int, **fields: object) -> list[QueuedTask]:
    return [row(clock.now, status=Q.QUEUED, batch_id=batch.id, **fields) for _ in range(n)]


def store(storage: TaskStorage) -> BatchStore:
    assert isinstance(storage, BatchStore)
    return storage


async def finish(storage: TaskStorage, task_id: uuid.UUID, status: QueuedTaskStatus) -> int:
    """The terminal write of a member; how many rows it made Queued."""
    if status is Q.COMPLETED:
        return len(await storage.set_completed(task_id, 1.0, A.FULL, "7"))
    if status is Q.FAILED:
        return len(await storage.set_status(task_id, Q.FAILED, "boom", A.FULL, 1.0))
    return await storage.set_cancelled_by_user(task_id, A.FULL)


async def test_unit_round_trip_and_listing(storage: TaskStorage, clock: Clock) -> None:
    batches = store(storage)
    first = record(clock, 2, name="first")
    wf = record(clock, 1, BatchKind.WORKFLOW, name="flow", definition='{"x": 1}')
    group = record(clock, 1, BatchKind.GROUP, workflow_id=wf.id)
    rows = members(clock, first, 2) + [
        row(clock.now, status=Q.QUEUED, batch_id=group.id, workflow_id=wf.id)
    ]
    await batches.persist_unit([first], rows[:2])
    clock.advance(seconds=1)
    await batches.persist_unit([wf, group], rows[2:])
    loaded = await batches.get_batch(wf.id)
    assert loaded is not None
    assert (loaded.kind, loaded.status, loaded.name, loaded.definition, loaded.total) == (
        BatchKind.WORKFLOW,
        BatchStatus.RUNNING,
        "flow",
        '{"x": 1}',
        1,
    )
    assert await batches.get_batch(uuid.uuid4()) is None
    assert [m.id for m in await batches.batch_members(first.id)] == [r.id for r in rows[:2]]
    assert [m.id for m in await batches.batch_members(wf.id)] == [rows[2].id]
    assert [m.id for m in await batches.batch_members(group.id)] == [rows[2].id]
    member = (await batches.batch_members(group.id))[0]
    assert (member.batch_id, member.workflow_id) == (group.id, wf.id)
    listed = await batches.list_batches()
    assert [b.id for b in listed][-1] == first.id and len(listed) == 3
    assert [b.id for b in await batches.list_batches(kinds=["Batch"])] == [first.id]
    assert [b.id for b in await batches.list_batches(workflow_id=wf.id)] == [group.id]
    assert len(await batches.list_batches(limit=1)) == 1
    assert len(await batches.list_batches(limit=10, offset=2)) == 1


async def test_unit_is_all_or_none(storage: TaskStorage, clock: Clock) -> None:
    batches = store(storage)
    existing = row(clock.now, status=Q.QUEUED)
    await storage.persist(existing)
    batch = record(clock, 2)
    rows = members(clock, batch, 1) + [existing]  # the second row's id already exists
    with pytest.raises(Exception):  # noqa: B017 (each storage raises its own error)
        await batches.persist_unit([batch], rows)
    assert await batches.get_batch(batch.id) is None
    assert await storage.get(rows[0].id) is None


@pytest.mark.parametrize(
    ("outcomes", "final", "runs"),
    [
        ((Q.COMPLETED, Q.COMPLETED, Q.COMPLETED), BatchStatus.COMPLETED, {W.SUCCEEDED, W.FINISHED}),
        ((Q.COMPLETED, Q.FAILED, Q.COMPLETED), BatchStatus.FAILED, {W.FAILED, W.FINISHED}),
        ((Q.CANCELLED, Q.COMPLETED, Q.COMPLETED), BatchStatus.FAILED, {W.FAILED, W.FINISHED}),
    ],
)
async def test_last_member_finishes_the_batch_and_releases_its_continuations(
    storage: TaskStorage,
    clock: Clock,
    outcomes: tuple[QueuedTaskStatus, ...],
    final: BatchStatus,
    runs: set[ContinueWhen],
) -> None:
    batches = store(storage)
    batch = record(clock, 3)
    rows = members(clock, batch, 3)
    await batches.persist_unit([batch], rows)
    children = {}
    for when in W:
        c = row(
            clock.now, status=Q.WAITING_PARENT, parent_task_id=batch.id, continue_when=when.value
        )
        assert await storage.persist_continuation(c) is Q.WAITING_PARENT
        children[when] = c
    released = 0
    for r, outcome in zip(rows, outcomes, strict=True):
        released += await finish(storage, r.id, outcome)
    assert released == len(runs)
    loaded = await batches.get_batch(batch.id)
    assert loaded is not None
    counts = (loaded.succeeded, loaded.failed, loaded.cancelled)
    assert counts == (
        outcomes.count(Q.COMPLETED),
        outcomes.count(Q.FAILED),
        outcomes.count(Q.CANCELLED),
    )
    assert loaded.status is final and loaded.finished_at_utc is not None
    for when, c in children.items():
        got = await storage.get(c.id)
        assert got is not None
        assert got.status is (Q.QUEUED if when in runs else Q.CANCELLED), when
    # the batch has finished: a new continuation is released (or skipped) at once
    late = row(
        clock.now, status=Q.WAITING_PARENT, parent_task_id=batch.id, continue_when="Succeeded"
    )
    expected = Q.QUEUED if final is BatchStatus.COMPLETED else Q.CANCELLED
    assert await storage.persist_continuation(late) is expected


async def test_a_member_counts_once(storage: TaskStorage, clock: Clock) -> None:
    batches = store(storage)
    batch = record(clock, 2)
    rows = members(clock, batch, 2)
    await batches.persist_unit([batch], rows)
    await storage.set_cancelled_by_user(rows[0].id, A.FULL)
    await storage.set_cancelled_by_user(rows[0].id, A.FULL)  # (a cancel, then the run ends)
    loaded = await batches.get_batch(batch.id)
    assert loaded is not None
    assert (loaded.cancelled, loaded.status) == (1, BatchStatus.RUNNING)


async def test_skipped_continuations_count_as_cancelled_members(
    storage: TaskStorage, clock: Clock
) -> None:
    """A chain into a group: the parent fails, so the group's members are skipped, which
    finishes the group, which skips its own continuation: every record ends."""
    batches = store(storage)
    wf = record(clock, 4, BatchKind.WORKFLOW)
    group = record(clock, 2, BatchKind.GROUP, workflow_id=wf.id)
    first = row(clock.now, status=Q.QUEUED, workflow_id=wf.id)
    in_group = [
        row(
            clock.now,
            status=Q.WAITING_PARENT,
            parent_task_id=first.id,
            continue_when="Succeeded",
            batch_id=group.id,
            workflow_id=wf.id,
        )
        for _ in range(2)
    ]
    last = row(
        clock.now,
        status=Q.WAITING_PARENT,
        parent_task_id=group.id,
        continue_when="Succeeded",
        workflow_id=wf.id,
    )
    on_failure = row(
        clock.now, status=Q.WAITING_PARENT, parent_task_id=wf.id, continue_when="Failed"
    )
    await batches.persist_unit([wf, group], [first, *in_group, last, on_failure])
    assert await finish(storage, first.id, Q.FAILED) == 1  # the workflow's failure handler
    for r in [*in_group, last]:
        got = await storage.get(r.id)
        assert got is not None and got.status is Q.CANCELLED
    g, w = await batches.get_batch(group.id), await batches.get_batch(wf.id)
    assert g is not None and (g.status, g.cancelled) == (BatchStatus.FAILED, 2)
    assert w is not None and (w.status, w.failed, w.cancelled) == (BatchStatus.FAILED, 1, 3)
    got = await storage.get(on_failure.id)
    assert got is not None and (got.status, got.owner_node) == (Q.QUEUED, None)


async def test_cancel_batch(storage: TaskStorage, clock: Clock) -> None:
    batches = store(storage)
    batch = record(clock, 4)
    rows = members(clock, batch, 4)
    await batches.persist_unit([batch], rows)
    await storage.set_in_progress(rows[0].id, A.FULL)
    await storage.set_completed(rows[1].id, 1.0, A.FULL)
    on_success = row(
        clock.now, status=Q.WAITING_PARENT, parent_task_id=batch.id, continue_when="Succeeded"
    )
    on_end = row(
        clock.now, status=Q.WAITING_PARENT, parent_task_id=batch.id, continue_when="Finished"
    )
    for c in (on_success, on_end):
        await storage.persist_continuation(c)
    cancelled = await batches.cancel_batch(batch.id)
    assert cancelled is not None
    assert set(cancelled) == {rows[0].id, rows[2].id, rows[3].id}
    for r in (rows[0], rows[2], rows[3], on_success, on_end):
        got = await storage.get(r.id)
        assert got is not None and got.status is Q.CANCELLED, r.id
    loaded = await batches.get_batch(batch.id)
    assert loaded is not None
    assert (loaded.status, loaded.succeeded, loaded.cancelled) == (BatchStatus.CANCELLED, 1, 3)
    # the running member's own Cancelled write when it stops counts nothing more
    await storage.set_cancelled_by_user(rows[0].id, A.FULL)
    loaded = await batches.get_batch(batch.id)
    assert loaded is not None and loaded.cancelled == 3
    assert await batches.cancel_batch(batch.id) == []
    assert await batches.cancel_batch(uuid.uuid4()) is None


async def test_the_last_members_write_hands_the_batchs_continuations_to_its_owner(
    storage: TaskStorage, clock: Clock
) -> None:
    """The write that finishes a batch releases its continuations as a task's terminal
    write does: handed to that write's owner, and returned as stored."""
    batches = store(storage)
    batch = record(clock, 2)
    rows = members(clock, batch, 2)
    await batches.persist_unit([batch], rows)
    after = [
        row(clock.now, status=Q.WAITING_PARENT, parent_task_id=batch.id, continue_when=when)
        for when in ("Succeeded", "Failed", "Finished")
    ]
    for c in after:
        await storage.persist_continuation(c)
    owner = uuid.uuid4()
    assert await storage.set_completed(rows[0].id, 1.0, A.FULL, owner=owner) == []
    released = await storage.set_completed(rows[1].id, 1.0, A.FULL, owner=owner)
    runs = sorted((after[0], after[2]), key=lambda c: c.id)  # (created at the same time)
    assert released == [await storage.get(c.id) for c in runs]  # every column, as stored
    assert all((r.status, r.owner_node) == (Q.QUEUED, owner) for r in released)


async def test_concurrent_last_members_finish_the_batch_once(
    storage: TaskStorage, clock: Clock
) -> None:
    batches = store(storage)
    batch = record(clock, 40)
    rows = members(clock, batch, 40)
    await batches.persist_unit([batch], rows)
    child = row(
        clock.now, status=Q.WAITING_PARENT, parent_task_id=batch.id, continue_when="Succeeded"
    )
    await storage.persist_continuation(child)
    released = await asyncio.gather(*(finish(storage, r.id, Q.COMPLETED) for r in rows))
    assert sum(released) == 1
    loaded = await batches.get_batch(batch.id)
    assert loaded is not None and (loaded.succeeded, loaded.status) == (40, BatchStatus.COMPLETED)


async def test_retry_member_in_place_revives_what_its_failure_skipped(
    storage: TaskStorage, clock: Clock
) -> None:
    """A workflow: a -> group(b1, b2) -> c. b2 fails: c is skipped, the group and the
    workflow fail. Retrying b2 in place makes every record Running again and c waits."""
    batches = store(storage)
    wf = record(clock, 4, BatchKind.WORKFLOW)
    group = record(clock, 2, BatchKind.GROUP, workflow_id=wf.id)
    a = row(clock.now, status=Q.QUEUED, workflow_id=wf.id)
    b1, b2 = (
        row(
            clock.now,
            status=Q.WAITING_PARENT,
            parent_task_id=a.id,
            continue_when="Succeeded",
            batch_id=group.id,
            workflow_id=wf.id,
        )
        for _ in range(2)
    )
    c = row(
        clock.now,
        status=Q.WAITING_PARENT,
        parent_task_id=group.id,
        continue_when="Succeeded",
        workflow_id=wf.id,
    )
    on_failure = row(
        clock.now, status=Q.WAITING_PARENT, parent_task_id=wf.id, continue_when="Failed"
    )
    await batches.persist_unit([wf, group], [a, b1, b2, c, on_failure])
    assert await finish(storage, a.id, Q.COMPLETED) == 2
    await finish(storage, b1.id, Q.COMPLETED)
    assert await finish(storage, b2.id, Q.FAILED) == 1  # on_failure released
    got = await storage.get(c.id)
    assert got is not None and got.status is Q.CANCELLED
    w = await batches.get_batch(wf.id)
    assert w is not None and (w.status, w.succeeded, w.failed, w.cancelled) == (
        BatchStatus.FAILED,
        2,
        1,
        1,
    )

    assert await batches.retry_member(b2.id) is True
    got = await storage.get(b2.id)
    assert got is not None and (got.status, got.owner_node, got.exception) == (Q.QUEUED, None, None)
    got = await storage.get(c.id)
    assert got is not None and (got.status, got.exception) == (Q.WAITING_PARENT, None)
    w, g = await batches.get_batch(wf.id), await batches.get_batch(group.id)
    assert w is not None and (w.status, w.succeeded, w.failed, w.cancelled) == (
        BatchStatus.RUNNING,
        2,
        0,
        0,
    )
    assert g is not None and (g.status, g.succeeded, g.failed) == (BatchStatus.RUNNING, 1, 0)
    # the retried member completes: the workflow goes on and completes; the failure
    # continuation, released earlier, is not released twice
    assert await finish(storage, b2.id, Q.COMPLETED) == 1  # c
    assert await finish(storage, c.id, Q.COMPLETED) == 0
    w = await batches.get_batch(wf.id)
    assert w is not None and (w.status, w.succeeded) == (BatchStatus.COMPLETED, 4)
    # not a member: retried as a new task by the caller; a member still running: refused
    loose = row(clock.now, status=Q.FAILED)
    await storage.persist(loose)
    assert await batches.retry_member(loose.id) is False
    with pytest.raises(ValueError, match="only Failed or Cancelled"):
        await batches.retry_member(c.id)


async def test_retry_member_refuses_a_cancelled_batch_and_a_failed_saga(
    storage: TaskStorage, clock: Clock
) -> None:
    batches = store(storage)
    batch = record(clock, 2)
    rows = members(clock, batch, 2)
    await batches.persist_unit([batch], rows)
    await batches.cancel_batch(batch.id)
    with pytest.raises(ValueError, match="was cancelled"):
        await batches.retry_member(rows[0].id)
    saga = record(clock, 1, BatchKind.WORKFLOW, definition='{"compensations": {}}')
    step = row(clock.now, status=Q.QUEUED, workflow_id=saga.id)
    await batches.persist_unit([saga], [step])
    await finish(storage, step.id, Q.FAILED)
    with pytest.raises(ValueError, match="saga"):
        await batches.retry_member(step.id)


async def test_cancel_racing_finishing_members_counts_each_member_once(
    storage: TaskStorage, clock: Clock
) -> None:
    batches = store(storage)
    batch = record(clock, 30)
    rows = members(clock, batch, 30)
    await batches.persist_unit([batch], rows)
    results = await asyncio.gather(
        *(finish(storage, r.id, Q.COMPLETED) for r in rows[:20]),
        batches.cancel_batch(batch.id),
        *(finish(storage, r.id, Q.COMPLETED) for r in rows[20:]),
    )
    cancelled = results[20]
    assert isinstance(cancelled, list)
    loaded = await batches.get_batch(batch.id)
    assert loaded is not None
    assert loaded.succeeded + loaded.cancelled == 30 and loaded.failed == 0
    assert loaded.cancelled == len(cancelled)
    assert loaded.status in (BatchStatus.CANCELLED, BatchStatus.COMPLETED)
    for r in rows:
        got = await storage.get(r.id)
        assert got is not None
        # a member cancelled before its completion write ends Completed over it (as a
        # task's completion overwrites a cancel), but counts once, as Cancelled
        assert got.status in (Q.CANCELLED, Q.COMPLETED)


async def test_continuations_of_a_record_or_a_task_in_any_status(
    storage: TaskStorage, clock: Clock
) -> None:
    """What the monitoring API lists under a batch: the rows waiting for it, released by
    it or skipped, oldest first and at most ``limit``; a task's continuations likewise."""
    batches = store(storage)
    batch = record(clock, 1)
    [member] = members(clock, batch, 1)
    await batches.persist_unit([batch], [member])
    assert await batches.continuations(batch.id) == []
    children = []
    for when in (W.SUCCEEDED, W.FAILED, W.FINISHED):
        clock.advance(seconds=1)
        c = row(clock.now, status=Q.WAITING_PARENT, parent_task_id=batch.id, continue_when=when)
        await storage.persist_continuation(c)
        children.append(c)
    clock.advance(seconds=1)
    after_member = row(
        clock.now, status=Q.WAITING_PARENT, parent_task_id=member.id, continue_when="Succeeded"
    )
    await storage.persist_continuation(after_member)
    found = await batches.continuations(batch.id)
    assert [c.id for c in found] == [c.id for c in children]
    assert all(c.status is Q.WAITING_PARENT and c.parent_task_id == batch.id for c in found)
    assert [c.id for c in await batches.continuations(batch.id, limit=2)] == [
        c.id for c in children[:2]
    ]
    await finish(storage, member.id, Q.COMPLETED)
    found = await batches.continuations(batch.id)
    statuses = [c.status for c in found]
    assert statuses == [Q.QUEUED, Q.CANCELLED, Q.QUEUED]  # released or skipped: still listed
    assert found[1].exception is not None and found[1].exception.startswith("Skipped")
    assert [c.id for c in await batches.continuations(member.id)] == [after_member.id]
    assert await batches.continuations(uuid.uuid4()) == []
    await storage.remove(children[0].id)
    assert [c.id for c in await batches.continuations(batch.id)] == [c.id for c in children[1:]]
