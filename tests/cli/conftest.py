"""The ``evertask`` console script run in subprocesses, and databases to point it at.

Databases: a SQLite file per test, and PostgreSQL (``EVERTASK_TEST_POSTGRES_URL``, a fresh
schema per test; unreachable -> skipped, failed under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evertask.storage.protocol import TaskStorage
from evertask.storage.urls import storage_from_url
from tests.storage.conftest import PG_URL, _pg_execute, require_postgres

ROOT = Path(__file__).resolve().parents[2]
EVERTASK = Path(sys.executable).parent / "evertask"


def evertask(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the console script and wait for it."""
    assert EVERTASK.exists(), f"{EVERTASK} is missing: reinstall the project (make install)"
    return subprocess.run(
        [str(EVERTASK), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def evertask_json(*args: str, **kwargs: Any) -> Any:
    """Run a read command with ``--json`` through the console script; it must succeed."""
    done = evertask(*args, "--json", **kwargs)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str) -> Outcome:
    """Run the command line in this process (click's runner): the finer cases, faster."""
    from click.testing import CliRunner

    from evertask.cli.app import cli

    result = CliRunner().invoke(cli, list(args), prog_name="evertask", catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def invoke_json(*args: str) -> Any:
    """Run a read command with ``--json`` in this process; it must succeed."""
    done = invoke(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@dataclass
class Database:
    """A database the tests seed and the command line reads."""

    kind: str
    url: str
    schema: str | None

    @property
    def args(self) -> list[str]:
        return ["--storage", self.url, *(["--schema", self.schema] if self.schema else [])]

    def storage(self, migrate: bool = True) -> TaskStorage:
        return storage_from_url(
            self.url, self.schema, auto_apply_migrations=migrate, must_exist=False
        )

    def call(self, action: Callable[[TaskStorage], Any]) -> Any:
        """Run ``await action(storage)`` on an open (migrated) storage."""

        async def go() -> Any:
            storage = self.storage()
            await storage.open()
            try:
                return await action(storage)
            finally:
                await storage.close()

        return asyncio.run(go())


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, not yet migrated database of each kind."""
    if request.param == "sqlite":
        yield Database("sqlite", str(tmp_path / "tasks.db"), None)
        return
    require_postgres()
    schema = f"cli_{uuid.uuid4().hex[:10]}"
    try:
        yield Database("postgres", PG_URL, schema)
    finally:
        asyncio.run(_pg_execute(PG_URL, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


class Process:
    """A long-running ``evertask`` process whose stderr lines are read as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(EVERTASK), *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_line(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line with {needle!r} in {timeout}s:\n{self.output()}")
            try:
                line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise AssertionError(
                        f"exited ({self.proc.returncode}) before {needle!r}:\n{self.output()}"
                    ) from None
                continue
            self.seen.append(line)
            if needle in line:
                return line

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return "".join(self.seen)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes a test starts; any still running at its end are killed."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll ``predicate`` (every 50 ms) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)
