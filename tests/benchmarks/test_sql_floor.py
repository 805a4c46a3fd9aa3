"""The storage suite's SQL floor runs exactly the statements SQLite storage commits."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect

from benchmarks import sql_floor as sf
from benchmarks.engine import Container, Noop, NoopHandler, storage_row
from evertask import add_evertask
from evertask.ids import uuid7
from evertask_abstractions import AuditLevel
from evertask_storage_efcore_like.precompiled import PrecompiledCache
from evertask_storage_sqlite import SqliteTaskStorage
from evertask_storage_sqlite.executor import SqliteExecutor

_NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> list[sf.Statement]:
    seen: list[sf.Statement] = []
    run_batch = SqliteExecutor._run_batch

    def recording(self: SqliteExecutor, cx: Any, *args: Any) -> Any:
        return run_batch(self, sf.Recording(cx, seen), *args)  # type: ignore[arg-type]

    monkeypatch.setattr(SqliteExecutor, "_run_batch", recording)
    return seen


def _task_statements(seen: list[sf.Statement]) -> list[sf.Statement]:
    """The statements of tasks: no transaction control, pragmas or count folds."""
    return [
        (sql, args)
        for sql, args in seen
        if not sql.startswith(("BEGIN", "PRAGMA")) and '"TaskCount' not in sql.split("WHERE")[0]
    ]


@pytest.mark.parametrize("level", [AuditLevel.NONE, AuditLevel.FULL])
def test_the_floor_runs_what_the_storage_commits_for_a_task(
    tmp_path: Path, executed: list[sf.Statement], level: AuditLevel
) -> None:
    node = uuid.uuid4()
    row = replace(storage_row(uuid7(), Noop(n=7), node), audit_level=level)

    async def through_the_storage() -> None:
        storage = SqliteTaskStorage(tmp_path / "t.db", now=lambda: _NOW)
        await storage.open()
        try:
            await storage.persist(row)
            # the engine's path for a no-op task: the InProgress write is withdrawn
            pending = storage.begin_in_progress(row.id, level)
            assert storage.withdraw_in_progress(pending, level)
            await storage.set_completed(row.id, 0.01, level, owner=node, room=4)
        finally:
            await storage.close()

    asyncio.run(through_the_storage())
    floor = _floor_statements(
        tmp_path, [[sf.persist_op(row, _NOW)], [sf.completed_op(row.id, level, _NOW, node)]]
    )
    assert _task_statements(executed) == floor
    # insert, update, probe; Full: the Queued, InProgress and Completed audit rows too
    assert len(floor) == (3 if level is AuditLevel.NONE else 6)


def _floor_statements(tmp_path: Path, transactions: list[list[Any]]) -> list[sf.Statement]:
    storage = SqliteTaskStorage(tmp_path / "floor.db")

    async def create() -> None:
        await storage.open()
        await storage.close()

    asyncio.run(create())
    sql = PrecompiledCache(storage.statements, aiosqlite_dialect())
    return [s for t in sf.record(str(tmp_path / "floor.db"), transactions, sql) for s in t]


def test_an_engine_run_commits_the_floors_kinds_of_statement(
    tmp_path: Path, executed: list[sf.Statement]
) -> None:
    async def run() -> None:
        container = Container()
        host = (
            add_evertask(container, lambda o: o.register_handler(NoopHandler))
            .add_sqlite_storage(tmp_path / "e.db")
            .build()
        )
        recorder = container.recorder()
        async with host:
            recorder.reset(20)
            for i in range(20):
                await host.dispatcher.dispatch(Noop(n=i))
            await asyncio.wait_for(recorder.done.wait(), 30)

    asyncio.run(run())
    node = uuid.uuid4()
    rows = [
        replace(storage_row(uuid7(), Noop(n=i), node), audit_level=AuditLevel.FULL)
        for i in range(3)
    ]
    floor = _floor_statements(
        tmp_path,
        [
            [sf.persist_op(r, _NOW) for r in rows],
            [sf.completed_op(r.id, AuditLevel.FULL, _NOW, node) for r in rows],
        ],
    )
    # the engine's batches vary in size: compare the statements with their sizes taken out
    assert {_shape(s) for s, _ in _task_statements(executed)} == {_shape(s) for s, _ in floor}


def _shape(sql: str) -> str:
    """A statement with its rows collapsed: grouped forms of any size compare equal."""
    return re.sub(r"(\((?:\?, )*\?\)(?:, )?)+", "(ROWS)", sql)


def test_the_floor_measures_a_positive_rate() -> None:
    assert sf.sql_floor(AuditLevel.FULL, 200, 16) > 0
