"""The suites' garbage-collector clock counts collections and their time, only while entered."""

from __future__ import annotations

import gc

from benchmarks.common import GcClock


def test_the_clock_counts_collections_while_entered_only() -> None:
    with GcClock() as clock:
        gc.collect()  # a full collection
        gc.collect(0)
    assert clock.collections[2] == 1
    assert clock.collections[0] >= 1
    assert clock.seconds > 0
    seen = (list(clock.collections), clock.seconds)
    gc.collect()
    assert (clock.collections, clock.seconds) == seen
