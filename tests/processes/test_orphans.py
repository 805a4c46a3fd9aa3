"""A host process killed with SIGKILL leaves no worker process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_killing_the_host_process_ends_its_workers() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.processes.host_child"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        workers = json.loads(line)
        assert len(workers) == 2
        # every process the host started: the workers, the forkserver, the resource tracker
        descendants = {p.pid for p in psutil.Process(child.pid).children(recursive=True)}
        assert set(workers) <= descendants
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 5.0
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [pid for pid in workers if alive(pid)], "workers outlived their host"
        deadline = time.monotonic() + 10.0
        while any(alive(pid) for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in descendants if alive(pid)], "helper processes outlived it"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
