"""Task ids: UUIDv7 layout, strictly increasing, unique across threads, clock steps."""

from __future__ import annotations

import itertools
import pickle
import threading
import time
import uuid

import pytest

from evertask import ids as ids_module
from evertask import uuid7


def test_layout_is_uuid_version_7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    u = uuid7()
    after = time.time_ns() // 1_000_000
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert before <= u.int >> 80 <= after
    assert uuid.UUID(str(u)) == u and hash(u) == hash(uuid.UUID(str(u)))


def test_ids_increase_strictly_and_are_unique_across_threads() -> None:
    per_thread, threads = 5_000, 8
    made: list[list[uuid.UUID]] = [[] for _ in range(threads)]

    def work(out: list[uuid.UUID]) -> None:
        for _ in range(per_thread):
            out.append(uuid7())

    workers = [threading.Thread(target=work, args=(out,)) for out in made]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for out in made:  # each thread sees increasing ids
        assert all(a.int < b.int for a, b in itertools.pairwise(out))
    assert len({u for out in made for u in out}) == per_thread * threads


def test_the_time_part_never_goes_back_with_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = uuid7()
    back = (first.int >> 80) - 5_000  # the wall clock steps back 5 s
    monkeypatch.setattr(ids_module.time, "time_ns", lambda: back * 1_000_000)
    later = [uuid7() for _ in range(100)]
    assert all(u.int >> 80 == first.int >> 80 for u in later)
    assert all(a.int < b.int for a, b in zip([first, *later], later, strict=False))


def test_every_id_is_a_plain_version_7_rfc_4122_uuid() -> None:
    made = [uuid7() for _ in range(10_000)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in made)
    assert all(a < b for a, b in itertools.pairwise(made))  # monotonic within the process
    u = made[-1]
    assert type(u) is uuid.UUID and u.is_safe is uuid.SafeUUID.unknown
    assert pickle.loads(pickle.dumps(u)) == u == uuid.UUID(bytes=u.bytes)
