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
