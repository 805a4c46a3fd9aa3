"""Hosts starting together on a fresh database: one migrates, the others wait and see head."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from evertask_storage_efcore_like import SqlTaskStorage
from evertask_storage_mysql import MySqlTaskStorage, aiomysql_url
from evertask_storage_sqlite import SqliteTaskStorage

from .conftest import MYSQL_URL, require_mysql, run_blocking

CHILD = Path(__file__).with_name("migrate_child.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mysql_fresh() -> Iterator[str]:
    require_mysql()
    name = f"evertask_mig_{uuid.uuid4().hex[:10]}"

    async def run(statement: str) -> None:
        engine = create_async_engine(MYSQL_URL)
        try:
            async with engine.begin() as connection:
                await connection.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    run_blocking(run(f"CREATE DATABASE `{name}`"))
    try:
        yield aiomysql_url(MYSQL_URL).set(database=name).render_as_string(False)
    finally:
        run_blocking(run(f"DROP DATABASE IF EXISTS `{name}`"))


def _targets(kind: str, tmp_path: Path, mysql_url: str | None) -> str:
    return str(tmp_path / "shared.db") if kind == "sqlite" else str(mysql_url)


def _storage(kind: str, target: str) -> SqlTaskStorage:
    return SqliteTaskStorage(target) if kind == "sqlite" else MySqlTaskStorage(target)


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
async def test_storages_opening_together_in_one_process(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("mysql_fresh") if kind == "mysql" else None
    target = _targets(kind, tmp_path, url)
    storages = [_storage(kind, target) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in storages))
        assert {await s.count_by_status() == {} for s in storages} == {True}
    finally:
        for s in storages:
            await s.close()


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_processes_starting_together_on_a_fresh_database(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("mysql_fresh") if kind == "mysql" else None
    target = _targets(kind, tmp_path, url)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(3)]
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), kind, target, str(go), str(mark)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mark in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(mark.exists() for mark in ready):
            assert time.monotonic() < deadline, "children did not start"
            assert all(c.poll() is None for c in children), [c.communicate() for c in children]
            time.sleep(0.01)
        go.touch()
        outcomes = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
    assert [c.returncode for c in children] == [0, 0, 0], outcomes


def test_threads_migrating_their_own_databases_at_once(tmp_path: Path) -> None:
    # each thread runs its own event loop; Alembic's module globals allow one migration at
    # a time in the process, so the threads take turns (before, their runs mixed up)
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    async def open_and_count(path: Path) -> None:
        storage = SqliteTaskStorage(str(path))
        try:
            await storage.open()
            assert await storage.count_by_status() == {}
        finally:
            await storage.close()

    def work(i: int) -> None:
        barrier.wait()
        try:
            for r in range(3):
                asyncio.run(asyncio.wait_for(open_and_count(tmp_path / f"t{i}-{r}.db"), 60))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and failures == []
