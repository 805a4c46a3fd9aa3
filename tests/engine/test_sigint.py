"""Ctrl-C with a long task running: one line says how long the host waits, and a second
Ctrl-C stops at once (the interrupted task becomes ServiceStopped and resumes later)."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from evertask import QueuedTask
from evertask_abstractions import QueuedTaskStatus
from evertask_storage_sqlite import SqliteTaskStorage

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def _wait_line(lines: queue.Queue[str], needle: str, seen: list[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no line containing {needle!r} within {timeout}s: {seen}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return line


def test_a_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    db = tmp_path / "sigint.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.sigint_child", str(db)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(child.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        ready = _wait_line(lines, "READY", seen, 30)
        task_id = uuid.UUID(ready.split()[1])
        child.send_signal(signal.SIGINT)
        waiting = _wait_line(lines, "Waiting up to", seen, 10)
        assert "30 s for 1 running task" in waiting and "set_shutdown_grace_period" in waiting
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        _wait_line(lines, "EXITED", seen, 10)
        assert child.wait(10) == 0
        assert time.monotonic() - started < 10  # not the 30 s grace period
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not any("Traceback" in line for line in seen), "".join(seen)
    row = asyncio.run(_read(db, task_id))
    assert row is not None and row.status is QueuedTaskStatus.SERVICE_STOPPED


async def _read(db: Path, task_id: uuid.UUID) -> QueuedTask | None:
    storage = SqliteTaskStorage(str(db))
    await storage.open()
    try:
        return await storage.get(task_id)
    finally:
        await storage.close()
