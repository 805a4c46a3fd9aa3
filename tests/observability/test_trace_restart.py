"""A dispatch in one process and its execution in another share one trace (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def child(mode: str, db: Path, spans: Path, *extra: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.observability.trace_child",
            mode,
            str(db),
            str(spans),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_execution_after_a_restart_in_another_process_continues_the_dispatch_trace(
    tmp_path: Path,
) -> None:
    pytest.importorskip("evertask_storage_sqlite")
    db = tmp_path / "tasks.db"
    first, second = tmp_path / "dispatch.jsonl", tmp_path / "execute.jsonl"
    task_id = child("dispatch", db, first)
    dispatched = {s["name"]: s for s in read_spans(first)}
    assert set(dispatched) == {"client request", "default publish"}  # nothing ran here
    publish = dispatched["default publish"]
    assert publish["kind"] == "PRODUCER"
    assert publish["attributes"]["messaging.message.id"] == task_id
    assert publish["parent_span_id"] == dispatched["client request"]["span_id"]

    child("execute", db, second, task_id)
    (process,) = [s for s in read_spans(second) if s["name"] == "default process"]
    assert process["kind"] == "CONSUMER"
    assert process["attributes"]["messaging.message.id"] == task_id
    assert process["trace_id"] == publish["trace_id"]
    assert process["parent_span_id"] == publish["span_id"]
