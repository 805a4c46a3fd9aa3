"""The storage suite's run with ``evertask run --tune-gc``'s collector settings applies them
once its host has started and gives the process its own settings back afterwards."""

from __future__ import annotations

import asyncio
import gc

import pytest

from benchmarks import storage
from evertask.cli.run import GC_YOUNG_THRESHOLD, tune_gc
from evertask_abstractions import AuditLevel


def test_a_tuned_run_tunes_the_collector_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int, int]] = []

    def spy() -> int:
        frozen = tune_gc()
        seen.append(gc.get_threshold())
        return frozen

    monkeypatch.setattr(storage, "tune_gc", spy)
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    run = asyncio.run(storage.throughput("sqlite", AuditLevel.NONE, 200, tuned_gc=True))
    assert run.tasks_per_s > 0
    assert [t[0] for t in seen] == [GC_YOUNG_THRESHOLD]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_a_run_starts_from_a_collected_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not partway to a full collection because of what ran before it in the process."""
    counts: list[tuple[int, int, int]] = []
    enter = storage.GcClock.__enter__

    def spy(self: storage.GcClock) -> storage.GcClock:
        counts.append(gc.get_count())
        return enter(self)

    monkeypatch.setattr(storage.GcClock, "__enter__", spy)
    for _ in range(4):  # each collects the two younger generations: the oldest's count + 1
        gc.collect(1)
    assert gc.get_count()[2] >= 4
    run = asyncio.run(storage.throughput("none", AuditLevel.NONE, 200))
    assert run.tasks_per_s > 0
    assert len(counts) == 1 and counts[0][1:] == (0, 0)
