"""The ids a node holds, as the cluster's cancel check and its claims read them."""

from __future__ import annotations

import uuid

from evertask.inflight import InFlight


def test_id_chunks_give_every_held_id_once_in_chunks_of_the_size_asked() -> None:
    held = InFlight()
    ids = [uuid.uuid4() for _ in range(250)]
    for task_id in ids:
        held.add(task_id)
    chunks = list(held.id_chunks(100))
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert sorted(i for c in chunks for i in c) == sorted(ids)


def test_id_chunks_are_a_snapshot_taken_when_the_first_chunk_is_asked() -> None:
    held = InFlight()
    first, second, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    held.add(first)
    held.add(second)
    chunks = held.id_chunks(1)
    taken = next(chunks)
    held.discard(first if taken != [first] else second)  # a run ends between chunks
    held.add(later)  # and another starts
    rest = [i for c in chunks for i in c]
    assert sorted([*taken, *rest]) == sorted([first, second])
    assert list(InFlight().id_chunks(10)) == []


def test_claimed_counts_the_marked_ids_in_flight_until_their_runs_end() -> None:
    inflight = InFlight()
    a, b, c, outside = (uuid.uuid4() for _ in range(4))
    for task_id in (a, b, c):
        inflight.add(task_id)
    inflight.mark_claimed([a, b, outside])  # (an id not in flight here is not counted)
    assert inflight.claimed == 2
    inflight.finished(a)
    inflight.discard(c)  # not a claimed one
    assert inflight.claimed == 1
    inflight.discard(b)
    assert inflight.claimed == 0
    inflight.add(c)
    inflight.mark_claimed([c])
    inflight.clear()
    assert inflight.claimed == 0
