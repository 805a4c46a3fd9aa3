"""The worker sample: ``evertask run samples.worker:create_builder`` runs what a
dispatch-only process (``python -m samples.worker dispatch N``) stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from evertask_abstractions import QueuedTaskStatus
from tests.cli.conftest import ROOT, Database, Process, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_the_worker_sample_runs_dispatched_tasks(tmp_path: Path, processes: list[Process]) -> None:
    path = tmp_path / "worker.db"
    env = {"EVERTASK_WORKER_DB": str(path)}
    worker = Process("run", "samples.worker:create_builder", env=env)
    processes.append(worker)
    worker.wait_line("started (worker")
    done = subprocess.run(
        [sys.executable, "-m", "samples.worker", "dispatch", "3"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ids = [uuid.UUID(line) for line in done.stdout.split()]
    assert len(ids) == 3
    db = Database("sqlite", str(path), None)

    def all_completed() -> bool:
        rows = [db.call(lambda s, i=i: s.get(i)) for i in ids]
        return all(r is not None and r.status is QueuedTaskStatus.COMPLETED for r in rows)

    wait_for(all_completed, what="the sample's tasks completed")
    worker.wait_line("Resizing photo-")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0, worker.output()
