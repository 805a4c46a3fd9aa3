"""The history suite writes rows the storages read back as the engine's own, and runs.

A small history is bulk-loaded into SQLite (and PostgreSQL when it is reachable) and read
back through the storage: counts per status, a task of every status with its status
audits, logs and runs, the recurring rows' schedules, the payloads. Then the suite's
smallest path runs end to end on SQLite.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from benchmarks import history as bh
from benchmarks.__main__ import main
from evertask.registry import dump_task
from evertask.scheduling import RecurringSchedule
from evertask_abstractions import AuditLevel, QueuedTaskStatus
from evertask_storage_postgres import PostgresTaskStorage
from evertask_storage_sqlite import SqliteTaskStorage

S = QueuedTaskStatus
ROWS = 3_000
DAYS = 12


def test_every_payload_is_what_dump_task_writes() -> None:
    for kind in bh.KINDS:
        for n in (1, 7, 12_345):
            text = kind.payload(n)
            assert dump_task(kind.task.model_validate_json(text)) == text


def test_the_history_is_spread_like_a_live_service() -> None:
    now = datetime.now(UTC)
    history = bh.History(20_000, now, days=DAYS)
    tasks = [row for chunk in history.chunks(bh.NATIVE) for row in chunk.tasks]
    stats = history.stats
    assert stats.tasks == len(tasks) == 20_000 + len(bh.SERIES)
    created = [row[1] for row in tasks]
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert min(created) >= midnight - timedelta(days=DAYS) and max(created) <= now
    if now - midnight > timedelta(minutes=5):
        assert sum(c >= midnight for c in created) == round(20_000 * 0.03)
    column = bh.TASK_COLUMNS.index
    assert {row[column("QueueName")] for row in tasks} == set(bh.QUEUES)
    assert len({row[column("Type")] for row in tasks}) == len(bh.KINDS)
    finished = sum(stats.statuses[s] for s in ("Completed", "Failed", "Cancelled"))
    assert 0.96 < stats.statuses["Completed"] / finished < 0.98
    assert 0.015 < stats.statuses["Failed"] / finished < 0.025
    one_shot = tasks[len(bh.SERIES) :]
    ids = [row[0] for row in one_shot]
    assert ids == sorted(ids) and all(i.version == 7 for i in ids)
    millis = [(row[1] - bh.EPOCH) // timedelta(milliseconds=1) for row in one_shot]
    assert [i.int >> 80 for i in ids] == millis


def _history(now: datetime) -> bh.History:
    # the newest 2% of the day's rows pending (so a small history has some)
    return bh.History(ROWS, now, days=DAYS, pending_share=0.02)


async def _check_reads_back(storage: Any, stats: bh.HistoryStats, now: datetime) -> None:
    await bh.fold_counts(storage)
    counts = await storage.count_by_status()
    assert {s.value: n for s, n in counts.items() if n} == dict(stats.statuses)
    assert set(stats.samples) == {"Completed", "Failed", "Cancelled", "Queued", "Recurring"} | (
        {"WaitingQueue"} if stats.statuses["WaitingQueue"] > len(bh.SERIES) else set()
    )

    async def history_of(key: str) -> tuple[Any, list[tuple[QueuedTaskStatus, Any]]]:
        task = await storage.get(stats.samples[key])
        assert task is not None and task.audit_level is AuditLevel.FULL
        audits = await storage.get_status_audits(task.id)
        return task, [(a.new_status, a.exception) for a in audits]

    task, audits = await history_of("Completed")
    assert audits == [(S.QUEUED, None), (S.IN_PROGRESS, None), (S.COMPLETED, None)]
    assert task.status is S.COMPLETED and task.owner_node is not None
    assert task.last_execution_utc is not None and task.execution_time_ms > 0
    full = await storage.get_status_audits(task.id)
    assert [a.updated_at_utc for a in full] == sorted(a.updated_at_utc for a in full)
    assert max(a.updated_at_utc for a in full) == task.last_execution_utc
    task, audits = await history_of("Failed")
    assert task.exception and task.exception.endswith(
        next(k.error for k in bh.KINDS if k.task.evertask_type_name() == task.type)
    )
    assert audits == [(S.QUEUED, None), (S.IN_PROGRESS, None), (S.FAILED, task.exception)]
    assert await storage.count_execution_logs(task.id) == 3
    task, audits = await history_of("Cancelled")
    assert audits[-1] == (S.CANCELLED, None) and task.last_execution_utc is None
    task, audits = await history_of("Queued")
    assert audits == [(S.QUEUED, None)] and task.owner_node is None
    task, _ = await history_of("Recurring")
    assert task.is_recurring and task.status is S.WAITING_QUEUE and task.task_key
    assert task.next_run_utc is not None and task.next_run_utc > now
    assert task.recurring_task is not None
    RecurringSchedule.from_json(task.recurring_task)
    runs = await storage.get_runs_audits(task.id)
    assert len(runs) == task.current_run_count > 0


async def test_sqlite_reads_the_history_back(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    storage = SqliteTaskStorage(path)
    await storage.open()
    await storage.close()
    now = datetime.now(UTC)
    stats = await asyncio.to_thread(bh.load_sqlite, path, _history(now))
    assert stats.status_audits > 3 * ROWS * 0.97 and stats.runs_audits > 0
    with sqlite3.connect(path) as con:  # identity ids grow with time, as the engine's do
        for table, column in (("StatusAudit", "UpdatedAtUtc"), ("RunsAudit", "ExecutedAt")):
            back = con.execute(
                f'SELECT COUNT(*) FROM "{table}" a JOIN "{table}" b ON b."Id" = a."Id" + 1 '
                f'WHERE b."{column}" < a."{column}"'
            ).fetchone()[0]
            assert back == 0, table
    storage = SqliteTaskStorage(path)
    await storage.open()
    try:
        await _check_reads_back(storage, stats, now)
    finally:
        await storage.close()


async def test_postgres_reads_the_history_back() -> None:
    why = await bh.postgres_unreachable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    db = bh.PostgresDatabase()
    await db.create()
    try:
        now = datetime.now(UTC)
        stats = await db.load(_history(now))
        storage = PostgresTaskStorage(db.url, schema=db.schema)
        await storage.open()
        try:
            await _check_reads_back(storage, stats, now)
        finally:
            await storage.close()
    finally:
        await db.drop()


@pytest.mark.slow
def test_the_suite_runs_on_a_small_sqlite_history() -> None:
    plan = bh.Plan(
        rows=1_500,
        tasks=400,
        rounds=2,
        idle_dispatches=20,
        samples=3,
        warmups=1,
        retention_bound_s=20,
        stream_idle_s=0.3,
        databases=("sqlite",),
        days=DAYS,
        monitor_bound_s=2,
    )
    results, notes = bh.measure_all(plan)
    assert not notes
    for key in (
        "sqlite_0_tasks_per_s",
        "sqlite_1500_tasks_per_s",
        "sqlite_1500_overview_p95_ms",
        "sqlite_1500_counts_p95_ms",
        "sqlite_1500_list_p95_ms",
        "sqlite_1500_start_s",
        "sqlite_1500_dispatch_p99_ms",
        "sqlite_0_dispatch_p50_ms",
        "sqlite_dispatch_p99_during_retention_ms",
    ):
        assert results[key] > 0, key
    assert results["sqlite_1500_tasks_per_s_ratio_to_empty"] > 0
    assert results["sqlite_retention_tasks_deleted"] > 0
    assert results["sqlite_retention_rows_per_s"] > 0
    assert results["sqlite_retention_finished"] == 1.0
    assert [what for what, _, _ in bh.bars(results, plan)] == [
        "sqlite 1500 overview p95 <= 100 ms",
        "sqlite 1500 counts p95 <= 100 ms",
        "sqlite retention >= 5,000 task rows/s",
        "sqlite dispatch p99 during retention <= 10 ms",
        "sqlite 1500 tasks/s >= 90% of empty",
    ]


def test_rows_is_refused_by_suites_without_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["engine", "--rows", "10"])
    assert "has no --rows" in capsys.readouterr().err
    assert [bh.size_label(n) for n in (0, 1_500, 100_000, 1_000_000, 10_000_000)] == [
        "0",
        "1500",
        "100k",
        "1m",
        "10m",
    ]
