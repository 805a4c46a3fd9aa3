"""The storage suite's bound: the same engine and workload with no storage, plus the SQL
floor's time per task."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks import storage
from evertask_abstractions import AuditLevel


def test_the_no_storage_run_runs_every_task_and_writes_nothing() -> None:
    run = asyncio.run(storage.throughput("none", AuditLevel.NONE, 300))
    assert run.tasks_per_s > 0
    assert run.cpu_us_per_task > 0
    assert run.writes_per_batch == 0  # no writer: nothing was persisted


def test_an_unknown_backend_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="sqlite, postgres or none"):
        asyncio.run(storage.throughput("mysql", AuditLevel.NONE, 10))


def test_the_bound_adds_the_engine_and_the_statements_per_task() -> None:
    # 20 us of engine and 50 us of statements (20,000 tasks/s) per task: 70 us
    assert storage.bound_tasks_per_s(20.0, 20_000.0) == pytest.approx(1e6 / 70)
