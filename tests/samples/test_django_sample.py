"""The Django sample: sync views dispatch with dispatch_sync; a management command runs a
worker node that executes what the web side dispatched, through one shared SQLite file."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runtime() -> ModuleType:
    """Django, set up with the sample's settings when these tests run (not at collection:
    importing Django's test client also imports modules other tests expect absent)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "samples.django_app.settings"
    import django

    django.setup()
    from samples.django_app.reports import runtime

    return runtime


def web_settings(db: Path, *, runs_workers: bool) -> Any:
    from django.test import override_settings

    return override_settings(
        EVERTASK_SQLITE_PATH=str(db),
        EVERTASK_WEB_RUNS_WORKERS=runs_workers,
        EVERTASK_POLL_INTERVAL=0.05,
        EVERTASK_GRACE_PERIOD=5.0,
    )


@pytest.fixture
def client(runtime: ModuleType) -> Iterator[Client]:
    from django.test import Client

    yield Client()
    runtime.stop_web_host(timeout=30)


def poll_status(client: Client, status_url: str, wanted: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(status_url)
        assert response.status_code == 200, response.content
        body = response.json()
        if body["status"] == wanted:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task did not become {wanted} within {timeout}s: {body}")
        time.sleep(0.02)


def test_a_web_process_that_runs_workers_dispatches_and_runs(
    client: Client, tmp_path: Path
) -> None:
    with web_settings(tmp_path / "evertask.db", runs_workers=True):
        response = client.post("/reports", {"name": "q3", "rows": "500"})
        assert response.status_code == 202, response.content
        created = response.json()
        assert created["status_url"] == f"/tasks/{created['task_id']}"
        body = poll_status(client, created["status_url"], "Completed")
        assert body["type"] == "samples.django.generate-report"
        assert any("Report q3: 500 rows" in line for line in body["logs"]), body


def test_views_reject_bad_requests(client: Client, tmp_path: Path) -> None:
    with web_settings(tmp_path / "evertask.db", runs_workers=True):
        assert client.post("/reports", {"rows": "many"}).status_code == 400
        assert client.get("/reports").status_code == 405
        missing = "/tasks/00000000-0000-7000-8000-000000000000"
        assert client.get(missing).status_code == 404
        assert client.post(missing).status_code == 405


class Worker:
    """``python -m samples.django_app evertask_worker`` in a subprocess, its output read by a
    thread so the test can wait for a line with a deadline."""

    def __init__(self, db: Path, cwd: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "samples.django_app.settings",
            "EVERTASK_SQLITE_PATH": str(db),
            "EVERTASK_POLL_INTERVAL": "0.05",
            "EVERTASK_GRACE_PERIOD": "5",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "samples.django_app", "evertask_worker"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout}s: {self.lines}") from None
            if line is None:
                raise AssertionError(f"the worker exited before {text!r}: {self.lines}")
            self.lines.append(line)
            if text in line:
                return line

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_the_worker_command_runs_what_the_web_side_dispatched(
    client: Client, runtime: ModuleType, tmp_path: Path
) -> None:
    db = tmp_path / "evertask.db"
    with web_settings(db, runs_workers=False):
        # dispatch-only web process: the row waits in the database for a worker
        first = client.post("/reports", {"name": "early", "rows": "100"}).json()
        assert client.get(first["status_url"]).json()["status"] in ("WaitingQueue", "Queued")
        assert not runtime.web_host().host.runs_workers

        worker = Worker(db, tmp_path)
        try:
            worker.wait_line("EverTask worker node")
            body = poll_status(client, first["status_url"], "Completed")
            assert any("Report early: 100 rows" in line for line in body["logs"]), body
            second = client.post("/reports", {"name": "late", "rows": "100"}).json()
            poll_status(client, second["status_url"], "Completed")
            # a web process that restarts while the worker runs (a deploy): the worker
            # finds its dispatches at its next poll and runs them
            runtime.stop_web_host(timeout=30)
            third = client.post("/reports", {"name": "after-restart", "rows": "100"}).json()
            poll_status(client, third["status_url"], "Completed")

            worker.process.send_signal(signal.SIGTERM)
            worker.wait_line("EverTask worker stopped.")
            assert worker.process.wait(30) == 0, worker.lines
        finally:
            worker.kill()
        assert not any("Traceback" in line for line in worker.lines), worker.lines
