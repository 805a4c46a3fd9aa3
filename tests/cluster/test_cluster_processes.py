"""Several host processes on one database (SQLite file, PostgreSQL, MariaDB): each task once.

Nodes run with a 3 s lease, 0.5 s heartbeats and 0.2 s polls (tests/cluster/node_child.py).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime

import pytest

from tests.cluster.conftest import ROOT, Cluster

LEASE_S, HEARTBEAT_S, POLL_S = 3.0, 0.5, 0.2


def _dispatched(cluster: Cluster, name: str) -> list[int]:
    return [int(line.split()[0]) for line in cluster.lines(f"dispatched-{name}")]


def test_three_workers_and_a_dispatch_only_node_run_every_task_once(cluster: Cluster) -> None:
    workers = ["w1", "w2", "w3"]
    for i, name in enumerate(workers):
        cluster.start(name, dispatch=[i * 500, 500], delay_every=10, delay_s=1.0)
    cluster.start("web", role="dispatch", dispatch=[1500, 1500], delay_every=10, delay_s=1.0)
    for name in [*workers, "web"]:
        cluster.wait_file(f"dispatched-done-{name}", timeout=120)
    dispatched = sorted(n for name in [*workers, "web"] for n in _dispatched(cluster, name))
    assert dispatched == list(range(3000))

    def ran() -> list[int]:
        return [n for name in workers for n in cluster.work(name)]

    cluster.wait_until(lambda: len(set(ran())) == 3000, 120, "all 3000 tasks ran")
    for name in [*workers, "web"]:
        cluster.stop(name)
    counts = collections.Counter(ran())
    assert [n for n, c in counts.items() if c > 1] == []  # every task once
    assert set(counts) == set(range(3000))
    assert cluster.work("web") == []  # the dispatch-only node ran nothing
    assert cluster.count_mismatches() == {}  # four hosts wrote and folded the counts
    web_tasks = set(range(1500, 3000))
    busy = [name for name in workers if web_tasks & set(cluster.work(name))]
    assert len(busy) >= 2, {name: len(web_tasks & set(cluster.work(name))) for name in workers}


def test_a_rolling_restart_moves_the_old_nodes_rest_to_the_new_one(cluster: Cluster) -> None:
    # a: a backlog of 10 ms tasks, 2 at a time (about 2 s of work) and delayed ones
    cluster.start("a", parallelism=2, work_ms=10, dispatch=[0, 400], delay_every=20, delay_s=2.5)
    cluster.wait_file("dispatched-done-a")
    cluster.start("b")
    cluster.wait_until(lambda: len(cluster.work("a")) >= 20, 30, "a ran some tasks")
    assert cluster.work("b") == []  # b takes none of a live node's rows
    stopped = datetime.now().astimezone()
    cluster.stop("a")  # graceful: a's pending rows are released to b
    cluster.wait_until(
        lambda: len(set(cluster.work("a")) | set(cluster.work("b"))) == 400, 60, "all ran"
    )
    counts = collections.Counter(cluster.work("a") + cluster.work("b"))
    assert [n for n, c in counts.items() if c > 1] == []
    for line in cluster.executed("b"):
        assert datetime.fromisoformat(line.split()[2]) >= stopped  # b only after a left
    cluster.stop("b")


def test_sigkill_of_a_worker_moves_its_tasks_to_the_survivors(cluster: Cluster) -> None:
    for i, name in enumerate(["w1", "w2", "w3"]):
        cluster.start(
            name,
            parallelism=2,
            # w1's tasks take longer (150 of them, 2 at a time: 22 s): it still holds most of
            # its 150 when it is killed, even on a loaded machine where starting the three
            # nodes and dispatching took several seconds (survivors run them at 20 ms)
            work_ms=300 if name == "w1" else 20,
            dispatch=[i * 150, 150],
            delay_every=5,
            delay_s=3,
        )
    for name in ["w1", "w2", "w3"]:
        cluster.wait_file(f"dispatched-done-{name}")
    cluster.wait_until(lambda: len(cluster.work("w1")) >= 5, 30, "w1 ran some tasks")
    cluster.kill("w1")
    killed_at = datetime.now().astimezone()
    finished_by_w1 = set(cluster.work("w1"))
    assert len(finished_by_w1) < 150, "w1 finished its tasks before it was killed"

    def ran() -> set[int]:
        return finished_by_w1 | set(cluster.work("w2")) | set(cluster.work("w3"))

    cluster.wait_until(lambda: len(ran()) == 450, 60, "every acknowledged task ran")
    counts = collections.Counter(list(finished_by_w1) + cluster.work("w2") + cluster.work("w3"))
    duplicates = [n for n, c in counts.items() if c > 1]
    assert len(duplicates) <= 2, duplicates  # at most w1's in-flight tasks (parallelism 2)
    # w1's tasks resumed on a survivor within lease + heartbeat (+ a poll and slack)
    taken = [
        datetime.fromisoformat(line.split()[2])
        for name in ["w2", "w3"]
        for line in cluster.executed(name)
        if line.startswith("work ") and int(line.split()[1]) < 150
    ]
    assert taken
    first = min(taken)
    assert (first - killed_at).total_seconds() <= LEASE_S + HEARTBEAT_S + POLL_S + 2.0
    for name in ["w2", "w3"]:
        cluster.stop(name)
    # the counts the killed node's writes left behind are exact (triggers, one transaction)
    assert cluster.count_mismatches() == {}


def test_a_recurring_key_on_three_nodes_runs_once_per_occurrence(cluster: Cluster) -> None:
    for name in ["a", "b", "c"]:
        cluster.start(name, recurring="beat")

    def ticks() -> list[datetime]:
        return sorted(
            datetime.fromisoformat(line.split()[1])
            for name in ["a", "b", "c"]
            for line in cluster.executed(name)
            if line.startswith("tick ")
        )

    cluster.wait_until(lambda: len(ticks()) >= 4, 30, "four ticks")
    owners = [name for name in ["a", "b", "c"] if cluster.executed(name)]
    assert len(owners) == 1, owners  # one node runs the series
    cluster.kill(owners[0])
    killed = len(ticks())
    cluster.wait_until(lambda: len(ticks()) >= killed + 4, 30, "four ticks after the kill")
    times = ticks()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    # occurrences are on a 1 s grid: one run each at most (a run after the takeover may be
    # late, so two runs can be closer than a second; a duplicate adds a run)
    slots = round((times[-1] - times[0]).total_seconds()) + 1
    assert len(times) <= slots, gaps
    assert max(gaps) <= LEASE_S + HEARTBEAT_S + POLL_S + 2.0, gaps
    for name in ["a", "b", "c"]:
        if name != owners[0]:
            cluster.stop(name)


def test_a_running_task_cancelled_on_another_node_stops(cluster: Cluster) -> None:
    cluster.start("runner", long="long-id")
    cluster.wait_until(
        lambda: any(line.startswith("long-start") for line in cluster.executed("runner")),
        30,
        "the long task started",
    )
    cluster.start("canceller", role="dispatch", cancel="long-id")
    cancelled = datetime.fromisoformat(cluster.wait_file("cancelled-canceller").read_text())
    cluster.wait_until(
        lambda: any(line.startswith("long-stopped") for line in cluster.executed("runner")),
        10,
        "the long task stopped",
    )
    stopped = next(
        datetime.fromisoformat(line.split()[2])
        for line in cluster.executed("runner")
        if line.startswith("long-stopped")
    )
    assert (stopped - cancelled).total_seconds() <= POLL_S + 1.0
    cluster.stop("runner")
    cluster.stop("canceller")


def test_uvicorn_workers_registering_one_recurring_key_run_it_once_per_occurrence(
    cluster: Cluster,
) -> None:
    ticks_file = cluster.dir / "ticks.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EVERTASK_CLUSTER_SPEC": json.dumps(cluster.storage),
        "EVERTASK_CLUSTER_TICKS": str(ticks_file),
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = open(cluster.dir / "uvicorn.txt", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.cluster.uvicorn_app:app",
            "--workers",
            "2",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:

        def ticks() -> list[datetime]:
            lines = ticks_file.read_text().splitlines() if ticks_file.exists() else []
            return sorted(datetime.fromisoformat(line.split()[1]) for line in lines)

        deadline = time.monotonic() + 60
        while len(ticks()) < 6:
            assert server.poll() is None, (cluster.dir / "uvicorn.txt").read_text()
            assert time.monotonic() < deadline, "six ticks within 60 s"
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    times = ticks()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.5, gaps  # one run per occurrence, not one per worker process


@pytest.mark.parametrize("storage_spec", ["postgres"], indirect=True)
def test_postgres_notifications_wake_the_other_nodes_at_once(cluster: Cluster) -> None:
    # LISTEN/NOTIFY is PostgreSQL's; on the other databases nodes poll (tested above)
    slow_poll = {"poll_s": 10.0, "heartbeat_s": 5.0, "lease_s": 20.0}
    cluster.start("runner", long="long-id", **slow_poll)
    cluster.wait_until(
        lambda: any(line.startswith("long-start") for line in cluster.executed("runner")),
        30,
        "the long task started",
    )
    # a dispatch-only node's work and its cancel reach the runner long before a poll
    cluster.start("web", role="dispatch", dispatch=[0, 20], cancel="long-id", **slow_poll)
    cancelled = datetime.fromisoformat(cluster.wait_file("cancelled-web").read_text())
    cluster.wait_until(lambda: len(cluster.work("runner")) == 20, 5, "the web node's tasks ran")
    cluster.wait_until(
        lambda: any(line.startswith("long-stopped") for line in cluster.executed("runner")),
        5,
        "the long task stopped",
    )
    stopped = next(
        datetime.fromisoformat(line.split()[2])
        for line in cluster.executed("runner")
        if line.startswith("long-stopped")
    )
    assert (stopped - cancelled).total_seconds() < 2.0  # the poll interval is 10 s
    cluster.stop("runner")
    cluster.stop("web")
