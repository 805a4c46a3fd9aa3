"""Multi-process cluster tests: a database per test, and node processes on it.

Backends: SQLite (one file shared by the processes), PostgreSQL (a fresh schema) and
MySQL/MariaDB (a fresh database), from the same environment variables as the storage
contract suite; an unreachable server skips its tests (fails them under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.storage.conftest import (
    MYSQL_URL,
    PG_URL,
    _mysql_execute,
    _pg_execute,
    require_mysql,
    require_postgres,
)

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("sqlite", "postgres", "mysql")


def open_storage(storage: dict[str, Any]) -> Any:
    """A (closed) storage on a node_child storage spec."""
    kind = storage["kind"]
    if kind == "sqlite":
        from evertask_storage_sqlite import SqliteTaskStorage

        return SqliteTaskStorage(storage["path"])
    if kind == "postgres":
        from evertask_storage_postgres import PostgresTaskStorage

        return PostgresTaskStorage(storage["url"], schema=storage["schema"])
    from evertask_storage_mysql import MySqlTaskStorage

    return MySqlTaskStorage(storage["url"])


def _migrate(storage: dict[str, Any]) -> None:
    async def run() -> None:
        store = open_storage(storage)
        await store.open()
        await store.close()

    asyncio.run(run())


@pytest.fixture(params=BACKENDS)
def storage_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A migrated, empty database for this test's nodes (as a node_child storage spec)."""
    kind = request.param
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if kind == "sqlite":
        spec: dict[str, Any] = {"kind": "sqlite", "path": str(tmp_path / "tasks.db")}
    elif kind == "postgres":
        require_postgres()
        schema = f"cluster_{uuid.uuid4().hex[:10]}"
        spec = {"kind": "postgres", "url": PG_URL, "schema": schema}

        def cleanup() -> None:
            asyncio.run(_pg_execute(PG_URL, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    else:
        require_mysql()
        from evertask_storage_mysql import aiomysql_url

        name = f"evertask_cluster_{uuid.uuid4().hex[:10]}"
        asyncio.run(_mysql_execute(f"CREATE DATABASE `{name}`"))
        url = aiomysql_url(MYSQL_URL).set(database=name).render_as_string(False)
        spec = {"kind": "mysql", "url": url}

        def cleanup() -> None:
            asyncio.run(_mysql_execute(f"DROP DATABASE IF EXISTS `{name}`"))

    try:
        _migrate(spec)
        yield spec
    finally:
        cleanup()


class Cluster:
    """Node processes of one test, and what they wrote."""

    def __init__(self, directory: Path, storage: dict[str, Any]) -> None:
        self.dir = directory
        self.storage = storage
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, role: str = "worker", **spec: Any) -> subprocess.Popen[str]:
        """Start node ``name`` and wait until it has started (``ready-NAME``)."""
        full = {"dir": str(self.dir), "storage": self.storage, "name": name, "role": role}
        full.update(spec)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.dir / f"out-{name}.txt", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.node_child", json.dumps(full)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs[name] = proc
        self.wait_file(f"ready-{name}", name)
        return proc

    def wait_file(self, file: str, name: str | None = None, timeout: float = 60) -> Path:
        """Wait for a file a node writes (fails with the node's output if it died)."""
        path = self.dir / file
        deadline = time.monotonic() + timeout
        while not path.exists():
            for proc_name, proc in self.procs.items():
                if (name is None or proc_name == name) and proc.poll() is not None:
                    raise AssertionError(f"node {proc_name} exited:\n{self.output(proc_name)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{file} not written within {timeout} s")
            time.sleep(0.02)
        return path

    def output(self, name: str) -> str:
        """What node ``name`` printed."""
        path = self.dir / f"out-{name}.txt"
        return path.read_text() if path.exists() else ""

    def stop(self, name: str, timeout: float = 30) -> None:
        """Stop a node gracefully (SIGTERM) and check it exited cleanly."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:  # a hung stop: where its tasks wait, then kill it
            proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)
            proc.kill()
            proc.wait(10)
            raise AssertionError(
                f"node {name} did not stop within {timeout} s:\n{self.output(name)}"
            ) from None
        assert code == 0, f"node {name} exited with {code}:\n{self.output(name)}"

    def kill(self, name: str) -> None:
        """SIGKILL a node."""
        proc = self.procs[name]
        proc.kill()
        proc.wait(10)

    def lines(self, file: str) -> list[str]:
        path = self.dir / file
        return path.read_text().splitlines() if path.exists() else []

    def executed(self, name: str) -> list[str]:
        """Lines of node ``name``'s execution log."""
        return self.lines(f"executed-{name}.log")

    def work(self, name: str) -> list[int]:
        """The Work task numbers node ``name`` finished, in order."""
        return [int(line.split()[1]) for line in self.executed(name) if line.startswith("work ")]

    def count_mismatches(self) -> dict[str, Any]:
        """Where the database's task counts differ from a recount (empty: exact), before
        and after folding the pending deltas."""
        from tests.storage.helpers import count_mismatches

        async def run() -> dict[str, Any]:
            store = open_storage(self.storage)
            await store.open()
            try:
                before = await count_mismatches(store)
                after = await count_mismatches(store, fold=True)
                return {**before, **{f"folded {k}": v for k, v in after.items()}}
            finally:
                await store.close()

        return asyncio.run(run())

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for name, proc in self.procs.items():
                if proc.poll() is not None and proc.returncode not in (0, -9):
                    raise AssertionError(f"node {name} died:\n{self.output(name)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}")
            time.sleep(0.05)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def cluster(tmp_path: Path, storage_spec: dict[str, Any]) -> Iterator[Cluster]:
    """Start nodes with ``cluster.start(name, role, **spec)``; all are killed at the end."""
    nodes = Cluster(tmp_path, storage_spec)
    try:
        yield nodes
    finally:
        nodes.close()
