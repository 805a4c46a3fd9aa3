"""The cluster suite: worker processes sharing one database with a dispatch-only process.

- throughput: ``N`` no-op tasks dispatched by a dispatch-only process and executed by 1 and
  by 2 worker processes (PostgreSQL and SQLite), from the first dispatch to the last
  completion; their ratio is the scaling;
- duplicates and losses over every run (both must be 0);
- failover: two workers run 5 ms tasks; one is killed (SIGKILL); the time from the kill to
  the first completion, on the survivor, of a task the killed node owned.

Each node is its own process (``benchmarks/cluster_node.py``), with a 3 s lease, 0.5 s
heartbeats and 0.2 s polls.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .common import Results, report

PG_URL = os.environ.get("EVERTASK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LEASE_S, HEARTBEAT_S, POLL_S = 3.0, 0.5, 0.2
ROOT = Path(__file__).resolve().parents[1]


class Run:
    """The processes of one measurement and the files they write."""

    def __init__(self, storage: dict[str, Any]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="evertask-cluster-"))
        self.storage = storage
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.keep = False

    def start(self, name: str, role: str, **spec: Any) -> None:
        full = {
            "dir": str(self.dir),
            "name": name,
            "role": role,
            "storage": self.storage,
            "lease_s": LEASE_S,
            "heartbeat_s": HEARTBEAT_S,
            "poll_s": POLL_S,
            **spec,
        }
        out = (self.dir / f"out-{name}").open("w")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.cluster_node", json.dumps(full)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.wait(lambda: (self.dir / f"ready-{name}").exists(), 60, f"{name} started")

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for name, proc in self.procs.items():
                if proc.poll() not in (None, 0, -signal.SIGKILL):
                    raise RuntimeError(f"{name} died: {(self.dir / f'out-{name}').read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {timeout} s: {what}")
            time.sleep(0.02)

    def done(self, name: str) -> list[tuple[int, float]]:
        path = self.dir / f"done-{name}"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            n, at = line.split()
            out.append((int(n), float(at)))
        return out

    def node_id(self, name: str) -> uuid.UUID:
        return uuid.UUID((self.dir / f"ready-{name}").read_text())

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def _storage(kind: str, directory: Path) -> tuple[dict[str, Any], Any]:
    """A fresh database (migrated) and the function that drops it."""
    if kind == "sqlite":
        spec: dict[str, Any] = {"kind": "sqlite", "path": str(directory / "tasks.db")}
        drop: Any = lambda: None  # noqa: E731
    else:
        schema = f"bench_cluster_{uuid.uuid4().hex[:8]}"
        spec = {"kind": "postgres", "url": PG_URL, "schema": schema}

        def drop() -> None:
            async def run() -> None:
                import asyncpg  # type: ignore[import-untyped]

                conn = await asyncpg.connect(PG_URL)
                try:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                finally:
                    await conn.close()

            asyncio.run(run())

    asyncio.run(_open(spec))
    return spec, drop


def _open_storage(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "sqlite":
        from evertask_storage_sqlite import SqliteTaskStorage

        return SqliteTaskStorage(spec["path"])
    from evertask_storage_postgres import PostgresTaskStorage

    return PostgresTaskStorage(spec["url"], schema=spec["schema"])


async def _open(spec: dict[str, Any]) -> None:
    storage = _open_storage(spec)
    await storage.open()
    await storage.close()


def throughput(kind: str, workers: int, n: int) -> dict[str, float]:
    """``n`` no-op tasks from a dispatch-only process, run by ``workers`` processes."""
    scratch = Path(tempfile.mkdtemp(prefix="evertask-db-"))
    spec, drop = _storage(kind, scratch)
    run = Run(spec)
    try:
        names = [f"w{i}" for i in range(workers)]
        for name in names:
            run.start(name, "worker")
        run.start("web", "dispatch", count=n)

        def finished() -> set[int]:
            return {t for name in names for t, _ in run.done(name)}

        run.wait(lambda: len(finished()) >= n, 600, f"{n} tasks done")
        start = float((run.dir / "dispatch-start").read_text())
        end = max(at for name in names for _, at in run.done(name))
        run.stop_all()
        runs = [t for name in names for t, _ in run.done(name)]
        if len(runs) != n or len(set(runs)) != n:
            run.keep = True  # for inspection: the nodes' output and what each ran
            print(f"kept {run.dir} ({len(runs) - len(set(runs))} duplicates)", file=sys.stderr)
        return {
            "tasks_per_s": n / (end - start),
            "duplicates": float(len(runs) - len(set(runs))),
            "lost": float(n - len(set(runs) & set(range(n)))),
            "busy_workers": float(sum(1 for name in names if run.done(name))),
        }
    finally:
        run.close()
        drop()
        shutil.rmtree(scratch, ignore_errors=True)


def failover(kind: str, n: int) -> dict[str, float]:
    """Kill one of two workers running 5 ms tasks; time until its tasks run elsewhere."""
    scratch = Path(tempfile.mkdtemp(prefix="evertask-db-"))
    spec, drop = _storage(kind, scratch)
    run = Run(spec)
    try:
        run.start("w0", "worker")
        run.start("w1", "worker")
        run.start("web", "dispatch", count=n, work_ms=5)
        run.wait(lambda: len(run.done("w0")) >= 50, 120, "w0 ran 50 tasks")
        run.procs["w0"].send_signal(signal.SIGKILL)
        killed = time.time()
        run.procs["w0"].wait()
        run.wait(lambda: (run.dir / "dispatched-web").exists(), 120, "all dispatched")
        ids = {
            int(n_): uuid.UUID(tid)
            for n_, tid in (
                line.split() for line in (run.dir / "dispatched-web").read_text().splitlines()
            )
        }
        dead = run.node_id("w0")
        done_before = {t for t, _ in run.done("w0")}
        owned = asyncio.run(_owned_by(spec, dead, [ids[t] for t in ids if t not in done_before]))
        owned_n = {t for t in ids if ids[t] in owned}

        def taken() -> list[float]:
            return [at for t, at in run.done("w1") if t in owned_n]

        run.wait(lambda: bool(taken()), 60, "a task of the dead node ran elsewhere")
        failover_s = min(taken()) - killed
        deadline = time.monotonic() + 300
        while (completed := asyncio.run(_completed(spec))) < n and time.monotonic() < deadline:
            time.sleep(0.5)  # (the killed node's last completions never reached its file)
        run.stop_all()
        return {
            "failover_s": failover_s,
            "lost": float(n - completed),
            "dead_node_tasks": float(len(owned_n)),
        }
    finally:
        run.close()
        drop()
        shutil.rmtree(scratch, ignore_errors=True)


async def _completed(spec: dict[str, Any]) -> int:
    from evertask_abstractions import QueuedTaskStatus

    storage = _open_storage(spec)
    await storage.open()
    try:
        counts = await storage.count_by_status()
    finally:
        await storage.close()
    return int(counts.get(QueuedTaskStatus.COMPLETED, 0))


async def _owned_by(spec: dict[str, Any], node: uuid.UUID, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    storage = _open_storage(spec)
    await storage.open()
    try:
        rows = [await storage.get(tid) for tid in ids]
    finally:
        await storage.close()
    return {row.id for row in rows if row is not None and row.owner_node == node}


def _postgres_reachable() -> bool:
    async def probe() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_URL, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it."""
    n = 2_000 if quick else 10_000
    kinds = ["sqlite"] + (["postgres"] if _postgres_reachable() else [])
    results: Results = {"tasks": float(n)}
    rows: list[tuple[str, str]] = [("tasks (no-op, one dispatch-only process)", f"{n:,}")]
    duplicates = lost = 0.0
    for kind in kinds:
        key = "pg" if kind == "postgres" else "sqlite"
        one = throughput(kind, 1, n)
        two = throughput(kind, 2, n)
        duplicates += one["duplicates"] + two["duplicates"]
        lost += one["lost"] + two["lost"]
        results[f"{key}_duplicates"] = one["duplicates"] + two["duplicates"]
        results[f"{key}_1_worker_tasks_per_s"] = round(one["tasks_per_s"], 1)
        results[f"{key}_2_workers_tasks_per_s"] = round(two["tasks_per_s"], 1)
        results[f"{key}_scaling_ratio"] = round(two["tasks_per_s"] / one["tasks_per_s"], 3)
        rows += [
            (f"{kind}: 1 worker tasks/s", f"{one['tasks_per_s']:,.0f}"),
            (
                f"{kind}: 2 workers tasks/s",
                f"{two['tasks_per_s']:,.0f} ({two['busy_workers']:.0f} of 2 ran tasks)",
            ),
            (
                f"{kind}: scaling (2 / 1)",
                f"{results[f'{key}_scaling_ratio']:.2f}"
                + ("  (bar: >= 1.25)" if key == "pg" else ""),
            ),
        ]
    kind = kinds[-1]
    fail = failover(kind, 1_000 if quick else 3_000)
    lost += fail["lost"]
    results["duplicates"] = duplicates
    results["lost"] = lost
    results["failover_s"] = round(fail["failover_s"], 3)
    results["lease_s"] = LEASE_S
    rows += [
        ("duplicates (all runs)", f"{duplicates:.0f}  (bar: 0)"),
        ("lost (all runs)", f"{lost:.0f}  (bar: 0)"),
        (
            f"failover on {kind} (SIGKILL to a dead node's task done elsewhere)",
            f"{fail['failover_s']:.2f} s, lease {LEASE_S:g} s, heartbeat {HEARTBEAT_S:g} s  "
            f"(bar: <= {LEASE_S + HEARTBEAT_S + 2:g} s)",
        ),
    ]
    report("python -m benchmarks cluster" + (" --quick" if quick else ""), rows, results, json_path)
    return results


if __name__ == "__main__":  # pragma: no cover
    run("--quick" in sys.argv)
