"""SQLite's grouped statements (a declared fast path) against the canonical path.

The same concurrent writes, landing in one batch, run once with the fast path (the same
step of many operations as one statement) and once with ``EVERTASK_FAST_PATHS=0`` (each
operation's statements one by one): every caller gets the same outcome and the database
ends the same, row for row.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from evertask.ids import uuid7
from evertask.storage import TaskExecutionLog
from evertask.storage.models import BatchStatus, TaskBatch
from evertask.storage.protocol import FAST_PATHS_ENV
from evertask_abstractions import AuditLevel, BatchKind, QueuedTaskStatus
from evertask_storage_efcore_like.counts import FOLD_BATCH, FoldCountsOp
from evertask_storage_sqlite import SqliteTaskStorage
from evertask_storage_sqlite.grouped import GroupedSteps, _chunks, waiting_parents_sql

from .helpers import row

Q = QueuedTaskStatus
A = AuditLevel
_NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _ids(n: int) -> list[uuid.UUID]:
    return [uuid7() for _ in range(n)]


def _scenario_ids(new: int) -> dict[str, Any]:
    """The ids of :func:`_scenario`'s rows, ``new`` of them inserted in its batch."""
    return {
        "batch": uuid7(), "members": _ids(3), "parents": _ids(2), "children": _ids(2),
        "keyed": uuid7(), "running": _ids(4), "logs": _ids(9), "ghost": uuid7(), "new": _ids(new),
        "clash": uuid7(), "missing": uuid7(), "node": uuid.uuid4(),
    }  # fmt: skip


async def _scenario(path: Path, ids: dict[str, Any], *, fold: bool = False) -> list[Any]:
    """The scenario's batch; with ``fold``, a fold of the count deltas (maintenance) in its
    middle: after the members' completions, before the parents'."""
    storage = SqliteTaskStorage(path, now=lambda: _NOW)

    async def fold_counts() -> Any:
        return await storage._submit(FoldCountsOp(FOLD_BATCH, locked_read=False))

    await storage.open()
    try:
        batch = TaskBatch(
            id=ids["batch"], kind=BatchKind.BATCH, status=BatchStatus.RUNNING,
            created_at_utc=_NOW, total=3,
        )  # fmt: skip
        members = [row(_NOW, status=Q.QUEUED, task_id=i, batch_id=batch.id) for i in ids["members"]]
        await storage.persist_unit([batch], members)
        parents = [row(_NOW, status=Q.QUEUED, task_id=i) for i in ids["parents"]]
        for parent in parents:
            await storage.persist(parent)
        for parent, child in zip(parents, ids["children"], strict=True):
            waiting = row(
                _NOW, status=Q.WAITING_PARENT, task_id=child, parent_task_id=parent.id,
                continue_when="Succeeded",
            )  # fmt: skip
            await storage.persist_continuation(waiting)
        await storage.persist(row(_NOW, task_id=ids["keyed"], task_key="taken"))
        running = [row(_NOW, status=Q.QUEUED, task_id=i) for i in ids["running"]]
        for r in running:
            await storage.persist(r)
        # two records for each running task and one for a task that does not exist
        owners = [*(r.id for r in running for _ in range(2)), ids["ghost"]]
        logs = [
            TaskExecutionLog(
                id=log_id, task_id=owner, timestamp_utc=_NOW, level="Information",
                message=f"line {k}", sequence_number=k % 2,
            )
            for k, (log_id, owner) in enumerate(zip(ids["logs"], owners, strict=True))
        ]  # fmt: skip
        # one batch: everything below is submitted before the writer runs
        calls = [
            *(
                storage.persist(
                    row(
                        _NOW,
                        task_id=i,
                        task_key="dup" if k in (3, 7) else None,
                        audit_level=A.NONE if k % 2 else A.FULL,
                    )
                )
                for k, i in enumerate(ids["new"])
            ),
            storage.persist(row(_NOW, task_id=ids["clash"], task_key="taken")),
            *(storage.set_completed(m.id, 1.5, A.FULL, f'"{k}"') for k, m in enumerate(members)),
            *([fold_counts()] if fold else []),
            storage.set_completed(parents[0].id, 2.0, A.FULL, owner=ids["node"], room=4),
            storage.set_status(parents[1].id, Q.FAILED, "boom", A.FULL, 3.0),
            storage.set_completed(ids["missing"], 1.0, A.FULL),
            storage.set_status(ids["missing"], Q.FAILED, "gone", A.FULL, 1.0),
            *(storage.set_in_progress(r.id, A.FULL) for r in running),
            *(
                storage.save_execution_logs(owner, [log for log in logs if log.task_id == owner])
                for owner in dict.fromkeys(owners)
            ),
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        return [_comparable(r) for r in results]
    finally:
        await storage.close()


def _comparable(result: Any) -> Any:
    if isinstance(result, BaseException):
        return type(result).__name__
    if isinstance(result, list):
        return sorted((str(r.id), r.status.value, str(r.owner_node)) for r in result)
    return result


def _dump(path: Path) -> dict[str, list[Any]]:
    """Every table's rows, autoincrement ids left out (their order is the batch's)."""
    out: dict[str, list[Any]] = {}
    with sqlite3.connect(path) as cx:
        tables = [
            name
            for (name,) in cx.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith(("sqlite_", "alembic"))
        ]
        for table in tables:
            columns = [c[1] for c in cx.execute(f'PRAGMA table_info("{table}")')]
            keep = [c for c in columns if not (c == "Id" and table in _AUTOINCREMENT)]
            listed = ", ".join(f'"{c}"' for c in keep)
            out[table] = sorted(cx.execute(f'SELECT {listed} FROM "{table}"').fetchall(), key=repr)
    return out


_AUTOINCREMENT = {"StatusAudit", "RunsAudit", "TaskCountDeltas"}


def _fast_and_canonical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ids: dict[str, Any], **scenario: Any
) -> tuple[list[Any], list[Any]]:
    """The scenario's outcomes with the fast path (whose new rows must run as grouped
    inserts) and with the canonical path (no grouped statement); both databases must end
    alike, row for row."""
    sizes: list[int] = []
    inserts = GroupedSteps._inserts

    def counting(self: GroupedSteps, cx: Any, name: str, args: list[Any]) -> list[Any]:
        sizes.append(len(args))
        return inserts(self, cx, name, args)

    monkeypatch.setattr(GroupedSteps, "_inserts", counting)
    monkeypatch.delenv(FAST_PATHS_ENV, raising=False)
    fast = asyncio.run(_scenario(tmp_path / "fast.db", ids, **scenario))
    assert max(sizes) >= 32  # the new rows' inserts ran as grouped statements
    monkeypatch.setenv(FAST_PATHS_ENV, "0")
    sizes.clear()
    canonical = asyncio.run(_scenario(tmp_path / "canonical.db", ids, **scenario))
    assert not sizes
    assert _dump(tmp_path / "fast.db") == _dump(tmp_path / "canonical.db")
    return fast, canonical


def test_grouped_statements_match_the_canonical_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _scenario_ids(new=70)
    fast, canonical = _fast_and_canonical(tmp_path, monkeypatch, ids)
    assert fast == canonical
    # the outcomes are what the contract says, not only alike
    assert fast.count("TaskKeyConflictError") == 2  # the second "dup" and "taken"
    parent_done = len(ids["new"]) + 1 + len(ids["members"])  # its call's place in the list
    assert fast[parent_done] == [(str(ids["children"][0]), "Queued", str(ids["node"]))]


def test_maintenance_in_a_batch_runs_in_its_place_and_the_rest_is_grouped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fold of the count deltas lands in the middle of a batch of writes: the writes on
    # either side still run as grouped statements, and the fold sees exactly the writes
    # before it (the members' completions), not those after (the parents')
    ids = _scenario_ids(new=70)
    fast, canonical = _fast_and_canonical(tmp_path, monkeypatch, ids, fold=True)
    assert fast == canonical
    folded = len(ids["new"]) + 1 + len(ids["members"])  # the fold's place in the list
    assert fast[folded] == len(ids["members"])


def test_an_older_sqlite_runs_every_write_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _scenario_ids(new=10)
    monkeypatch.delenv(FAST_PATHS_ENV, raising=False)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))  # no RETURNING yet
    grouped: list[int] = []
    monkeypatch.setattr(GroupedSteps, "run_batch", lambda *a: grouped.append(1))
    outcomes = asyncio.run(_scenario(tmp_path / "old.db", ids))
    assert not grouped
    assert outcomes.count("TaskKeyConflictError") == 2


@pytest.mark.parametrize("count", [0, 1, 5, 64, 65, 127, 200])
def test_chunks_cover_every_row_once(count: int) -> None:
    pieces = _chunks(count)
    covered = [i for start, size in pieces for i in range(start, start + size)]
    assert covered == list(range(count))
    assert all(size in (64, 32, 16, 8, 4, 2, 1) for _, size in pieces)


async def test_the_waiting_continuations_read_seeks_the_parent_index(tmp_path: Path) -> None:
    storage = SqliteTaskStorage(tmp_path / "plan.db", now=lambda: _NOW)
    await storage.open()
    await storage.close()
    with sqlite3.connect(tmp_path / "plan.db") as cx:
        for rows in (1, 64):
            sql = waiting_parents_sql(rows)
            plan = " ".join(
                r[3] for r in cx.execute("EXPLAIN QUERY PLAN " + sql, [None] * sql.count("?"))
            )
            assert "USING INDEX IX_QueuedTasks_ParentTaskId (ParentTaskId=?)" in plan, plan


async def test_grouped_status_writes_report_missing_rows_and_keep_audit_order(
    tmp_path: Path,
) -> None:
    storage = SqliteTaskStorage(tmp_path / "t.db", now=lambda: _NOW)
    await storage.open()
    try:
        tasks = [row(_NOW, status=Q.QUEUED) for _ in range(6)]
        for task in tasks:
            await storage.persist(task)
        pending = [storage.begin_in_progress(t.id, A.FULL) for t in tasks[:3]]
        assert all(storage.withdraw_in_progress(p, A.FULL) for p in pending)
        missing = uuid7()
        # one batch: six status writes (three carrying their InProgress audit row) and one
        # for a row that does not exist
        results = await asyncio.gather(
            *(storage.set_completed(t.id, 1.0, A.FULL) for t in tasks[:4]),
            storage.set_status(tasks[4].id, Q.FAILED, "boom", A.FULL, 1.0),
            storage.set_in_progress(tasks[5].id, A.FULL),
            storage.set_completed(missing, 1.0, A.FULL),
        )
        assert results == [[], [], [], [], [], None, []]  # terminal writes list what they released
        for k, task in enumerate(tasks):
            audits = [a.new_status for a in await storage.get_status_audits(task.id)]
            ends = {4: [Q.FAILED], 5: [Q.IN_PROGRESS]}.get(k, [Q.COMPLETED])
            carried = [Q.IN_PROGRESS] if k < 3 else []
            assert audits == [Q.QUEUED, *carried, *ends], (k, audits)
        assert await storage.get(missing) is None
        assert await storage.get_status_audits(missing) == []
    finally:
        await storage.close()
