"""``evertask run MODULE:FACTORY``: a worker node started and stopped through the console
script, a task in flight becoming ServiceStopped and recovered by the next node."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evertask.cli.run import GC_YOUNG_THRESHOLD, tune_gc, untune_gc
from evertask.registry import dump_task, handler_type_name
from evertask.storage.models import QueuedTask
from evertask_abstractions import QueuedTaskStatus
from tests.cli.app import DB_ENV, HOLD_ENV, Hold, HoldHandler, create_builder
from tests.cli.conftest import Database, Process, evertask, invoke, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

S = QueuedTaskStatus
TARGET = "tests.cli.app:create_builder"


def _dispatch(path: Path, label: str) -> uuid.UUID:
    """Dispatch from this process as a dispatch-only node: a worker node claims the row."""

    async def go() -> uuid.UUID:
        host = create_builder(str(path), run_workers=False).build()
        async with host:
            return await host.dispatcher.dispatch(Hold(label=label))

    return asyncio.run(go())


def _status(db: Database, task_id: uuid.UUID) -> QueuedTaskStatus | None:
    row = db.call(lambda s: s.get(task_id))
    return None if row is None else row.status


def _start(processes: list[Process], path: Path, *args: str, hold: bool = False) -> Process:
    env = {DB_ENV: str(path), HOLD_ENV: "1" if hold else "0"}
    node = Process("run", TARGET, *args, env=env)
    processes.append(node)
    node.wait_line("started (worker")
    return node


def test_sigterm_stops_gracefully_and_the_next_node_recovers(
    tmp_path: Path, processes: list[Process]
) -> None:
    path = tmp_path / "tasks.db"
    db = Database("sqlite", str(path), None)
    first = _start(processes, path, "--grace-period", "0.2", hold=True)
    task_id = _dispatch(path, "in flight")
    wait_for(lambda: _status(db, task_id) is S.IN_PROGRESS, what="the task running")
    first.wait_line("handling in flight")

    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(30) == 0, first.output()
    out = first.output()
    assert "SIGTERM received: stopping gracefully" in out
    assert "Waiting up to 0.2 s for 1 running task" in out
    assert "stopped." in out and "Traceback" not in out
    assert _status(db, task_id) is S.SERVICE_STOPPED

    second = _start(processes, path)
    wait_for(lambda: _status(db, task_id) is S.COMPLETED, what="the task recovered")

    # a Failed task retried from the command line is claimed by the running node
    failed = QueuedTask(
        id=uuid.uuid4(),
        type="tests.cli.hold",
        request=dump_task(Hold(label="retried")),
        handler=handler_type_name(HoldHandler),
        status=S.FAILED,
        created_at_utc=datetime.now(UTC),
        exception="RuntimeError: first attempt",
    )
    db.call(lambda s: s.persist(failed))
    retried = evertask("tasks", "retry", str(failed.id), "--json", "--storage", str(path))
    assert retried.returncode == 0, retried.stderr
    new_id = uuid.UUID(json.loads(retried.stdout)["task_id"])
    wait_for(lambda: _status(db, new_id) is S.COMPLETED, what="the retried task run")
    second.wait_line("handling retried")

    second.proc.send_signal(signal.SIGINT)
    assert second.proc.wait(30) == 0, second.output()
    assert db.call(lambda s: s.list_nodes()) == []  # both nodes left the cluster


def test_a_second_ctrl_c_stops_the_running_tasks_at_once(
    tmp_path: Path, processes: list[Process]
) -> None:
    path = tmp_path / "tasks.db"
    db = Database("sqlite", str(path), None)
    node = _start(processes, path, hold=True)  # the builder's 30 s grace period
    task_id = _dispatch(path, "long")
    wait_for(lambda: _status(db, task_id) is S.IN_PROGRESS, what="the task running")
    node.proc.send_signal(signal.SIGINT)
    node.wait_line("Waiting up to 30 s")
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(10) == 0, node.output()
    assert "Interrupted: stopping the running tasks now" in node.output()
    assert _status(db, task_id) is S.SERVICE_STOPPED


def test_tune_gc_runs_the_node_with_a_tuned_collector(
    tmp_path: Path, processes: list[Process]
) -> None:
    path = tmp_path / "tasks.db"
    db = Database("sqlite", str(path), None)
    node = _start(processes, path, "--tune-gc")
    node.wait_line("Garbage collector tuned:")
    assert f"young generation threshold {GC_YOUNG_THRESHOLD}" in node.output()
    task_id = _dispatch(path, "tuned")
    wait_for(lambda: _status(db, task_id) is S.COMPLETED, what="the task run")
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(30) == 0, node.output()


def test_tune_gc_freezes_the_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        frozen = tune_gc()
        assert frozen == gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        untune_gc(before)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_bad_targets_and_factories_exit_with_documented_codes(tmp_path: Path) -> None:
    env = {DB_ENV: str(tmp_path / "tasks.db")}
    missing = evertask("run", "tests.cli.nowhere:create_builder", env=env)
    assert missing.returncode == 2 and "cannot import module" in missing.stderr
    # in this process: leave the test session's logging as it is
    assert invoke("run", "--no-log-config", "tests.cli.app").returncode == 2  # no :FACTORY
    no_attr = invoke("run", "--no-log-config", "tests.cli.app:nothing")
    assert no_attr.returncode == 2 and "has no attribute 'nothing'" in no_attr.stderr
    wrong = invoke("run", "--no-log-config", "tests.cli.app:not_a_builder")
    assert wrong.returncode == 1 and "returned int" in wrong.stderr
    broken = invoke("run", "--no-log-config", "tests.cli.app:broken")
    assert broken.returncode == 1 and "the factory is broken" in broken.stderr
    unreachable = tmp_path / "no-such-dir" / "tasks.db"
    refused = evertask("run", "tests.cli.app:create_builder_async", env={DB_ENV: str(unreachable)})
    assert refused.returncode == 3, refused.stderr
    assert "no-such-dir" in refused.stderr
