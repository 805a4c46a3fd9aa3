"""The workflows suite: what a continuation hand-over costs.

- Chain step overhead: a chain of N no-op steps (200; 50 with ``--quick``) on SQLite
  storage (a temporary file, audit Full, the defaults), every step dispatched up front as a
  continuation (``after=``, ``ContinueWhen.SUCCEEDED``) of the one before, while the first
  step is held at its first line, so each hand-over goes through the WaitingParent release
  of the parent's Completed write. Each handler records ``time.perf_counter()`` at its
  first and at its last line; a step's overhead is the start of step k+1 minus the end of
  step k (the parent's Completed write, the release in the same transaction, which hands
  the child to this node and returns its row, the child's adoption with its Queued
  compare-and-set, the child's start). ``chain_step_overhead_ms_p50``
  and ``_p99`` over the N-1 hand-overs. Bar: ``chain_step_overhead_ms_p50 <= 2``.
- Batch dispatch: ``dispatch_batch`` of 10,000 no-op tasks (1,000 with ``--quick``) on
  SQLite storage (a temporary file, audit Full, a running host): ``batch_10k_dispatch_s``
  is the time until the call returns, every row and the batch record committed in one
  transaction. Beside it, in the same run, the floor: the same number of rows of the same
  width inserted by one ``executemany`` in one transaction with the sqlite3 module, no
  library (``batch_floor_s``). ``batch_10k_run_s`` is the time from the dispatch until the
  continuation on the batch has run (every member run, counted, the batch finished).
  Bar: ``batch_10k_dispatch_s <= 2``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from typing import Any

from dependency_injector import containers, providers

from evertask import add_evertask
from evertask_abstractions import CancellationToken, ContinueWhen, EverTask, EverTaskHandler

from .common import Results, percentile, report

BAR_P50_MS = 2.0
BAR_BATCH_S = 2.0


class Recorder:
    """When each step started and ended (``perf_counter``), by step number."""

    def __init__(self) -> None:
        self.starts: dict[int, float] = {}
        self.ends: dict[int, float] = {}
        self.target = 0
        self.go = asyncio.Event()
        self.done = asyncio.Event()


class Container(containers.DeclarativeContainer):
    """The benchmark's services."""

    recorder = providers.Singleton(Recorder)


class Step(EverTask):
    """One no-op step of the chain."""

    k: int


class StepHandler(EverTaskHandler[Step]):
    """Records its start and end; step 0 waits until the whole chain is dispatched."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def handle(self, task: Step, cancellation: CancellationToken) -> None:
        r = self.recorder
        r.starts[task.k] = time.perf_counter()
        if task.k == 0:
            await r.go.wait()
        r.ends[task.k] = time.perf_counter()
        if task.k == r.target - 1:
            r.done.set()


class Done(EverTask):
    """The continuation on the benchmark's batch."""


class DoneHandler(EverTaskHandler[Done]):
    """Signals the end of the batch."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def handle(self, task: Done, cancellation: CancellationToken) -> None:
        self.recorder.done.set()


async def batch(n: int, directory: str | None = None) -> dict[str, Any]:
    """Dispatch ``n`` no-op steps as one batch on SQLite and wait for its continuation."""
    own = directory is None
    where = tempfile.mkdtemp(prefix="evertask-bench-") if directory is None else directory
    try:
        container = Container()
        host = (
            add_evertask(container, lambda o: o.register_handler(StepHandler, DoneHandler))
            .add_sqlite_storage(os.path.join(where, "batch.db"))
            .build()
        )
        recorder: Recorder = container.recorder()
        recorder.go.set()
        tasks = [Step(k=k) for k in range(n)]
        async with host:
            started = time.perf_counter()
            batch_id = await host.dispatcher.dispatch_batch(tasks)
            dispatched = time.perf_counter()
            await host.dispatcher.dispatch(Done(), after=batch_id)
            await asyncio.wait_for(recorder.done.wait(), timeout=60 + n / 100)
            finished = time.perf_counter()
            info = await host.dispatcher.get_batch(batch_id)
        floor = insert_floor(n, where)
    finally:
        if own:
            shutil.rmtree(where, ignore_errors=True)
    return {
        "dispatch_s": dispatched - started,
        "run_s": finished - started,
        "floor_s": floor,
        "succeeded": info.succeeded,
    }


def insert_floor(n: int, directory: str) -> float:
    """Seconds to insert ``n`` task-sized rows in one transaction with sqlite3 alone (WAL,
    synchronous NORMAL, a primary key and one secondary index, as the task table's)."""
    path = os.path.join(directory, "floor.db")
    cx = sqlite3.connect(path, isolation_level=None)
    try:
        cx.execute("PRAGMA journal_mode=WAL")
        cx.execute("PRAGMA synchronous=NORMAL")
        cx.execute(
            "CREATE TABLE t (id TEXT PRIMARY KEY, type TEXT, request TEXT, handler TEXT, "
            "status TEXT, created TEXT, queue TEXT, batch TEXT) WITHOUT ROWID"
        )
        cx.execute("CREATE INDEX t_batch ON t (batch)")
        batch_id = str(uuid.uuid4())
        started = time.perf_counter()
        rows = [
            (
                str(uuid.uuid4()),
                "benchmarks.workflows.Step",
                f'{{"k":{k}}}',
                "benchmarks.workflows.StepHandler",
                "Queued",
                "2026-12-04 12:00:00.000000",
                "default",
                batch_id,
            )
            for k in range(n)
        ]
        cx.execute("BEGIN IMMEDIATE")
        cx.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        cx.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        cx.close()


async def chain(n: int, directory: str | None = None) -> dict[str, Any]:
    """Run a chain of ``n`` steps on SQLite; the hand-over gaps in ms and the timings."""
    own = directory is None
    where = tempfile.mkdtemp(prefix="evertask-bench-") if directory is None else directory
    try:
        container = Container()
        host = (
            add_evertask(container, lambda o: o.register_handler(StepHandler))
            .add_sqlite_storage(os.path.join(where, "workflows.db"))
            .build()
        )
        recorder: Recorder = container.recorder()
        recorder.target = n
        dispatch = host.dispatcher.dispatch
        async with host:
            started = time.perf_counter()
            parent: uuid.UUID = await dispatch(Step(k=0))
            for k in range(1, n):
                parent = await dispatch(
                    Step(k=k), after=parent, continue_when=ContinueWhen.SUCCEEDED
                )
            dispatched = time.perf_counter()
            recorder.go.set()
            await asyncio.wait_for(recorder.done.wait(), timeout=60 + n)
            finished = time.perf_counter()
    finally:
        if own:
            shutil.rmtree(where, ignore_errors=True)
    gaps = [(recorder.starts[k + 1] - recorder.ends[k]) * 1000.0 for k in range(n - 1)]
    return {
        "gaps_ms": gaps,
        "dispatch_s": dispatched - started,
        "run_s": finished - dispatched,
    }


def bars(results: Results) -> list[tuple[str, bool, str]]:
    """(what, passed, figure) of the suite's bars."""
    p50 = results["chain_step_overhead_ms_p50"]
    found = [(f"chain_step_overhead_ms_p50 <= {BAR_P50_MS:g}", p50 <= BAR_P50_MS, f"{p50:.3f} ms")]
    if "batch_10k_dispatch_s" in results:
        took = results["batch_10k_dispatch_s"]
        found.append(
            (f"batch_10k_dispatch_s <= {BAR_BATCH_S:g}", took <= BAR_BATCH_S, f"{took:.3f} s")
        )
    return found


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it (and write ``json_path``)."""
    n = 50 if quick else 200
    out = asyncio.run(chain(n))
    size = 1_000 if quick else 10_000
    made = asyncio.run(batch(size))
    gaps = out["gaps_ms"]
    results: Results = {
        "chain_steps": float(n),
        "chain_step_overhead_ms_p50": round(percentile(gaps, 50), 3),
        "chain_step_overhead_ms_p99": round(percentile(gaps, 99), 3),
        "chain_step_overhead_ms_max": round(max(gaps), 3),
        "chain_dispatch_s": round(out["dispatch_s"], 4),
        "chain_run_s": round(out["run_s"], 4),
        "batch_size": float(size),
    }
    # (the bar's key names 10k: a --quick run's smaller batch is scaled to 10,000 rows)
    scale = 10_000 / size
    results["batch_10k_dispatch_s"] = round(made["dispatch_s"] * scale, 4)
    results["batch_floor_s"] = round(made["floor_s"] * scale, 4)
    results["batch_ratio_to_floor"] = round(made["dispatch_s"] / made["floor_s"], 2)
    results["batch_10k_run_s"] = round(made["run_s"] * scale, 4)
    rows = [
        (
            "chain",
            f"{n} no-op steps, each a continuation of the one before, all dispatched up front "
            "(SQLite file, audit Full)",
        ),
        (
            "step overhead (end of step k to start of step k+1) p50 / p99 / max",
            f"{results['chain_step_overhead_ms_p50']:.3f} / "
            f"{results['chain_step_overhead_ms_p99']:.3f} / "
            f"{results['chain_step_overhead_ms_max']:.3f} ms  ({len(gaps)} hand-overs)",
        ),
        (
            "dispatching the chain / running it",
            f"{results['chain_dispatch_s']:.3f} s / {results['chain_run_s']:.3f} s",
        ),
        (
            "batch",
            f"{size:,} no-op tasks in one dispatch_batch (SQLite file, audit Full)"
            + (", figures scaled to 10,000" if size != 10_000 else ""),
        ),
        (
            "dispatch_batch until committed / floor (sqlite3 executemany, no library)",
            f"{results['batch_10k_dispatch_s']:.3f} s / {results['batch_floor_s']:.3f} s "
            f"({results['batch_ratio_to_floor']:.1f}x the floor)",
        ),
        ("dispatch until the continuation on the batch ran", f"{results['batch_10k_run_s']:.2f} s"),
    ]
    for what, passed, figure in bars(results):
        rows.append((f"bar: {what}", f"{'PASS' if passed else 'FAIL'} ({figure})"))
    title = "python -m benchmarks workflows" + (" --quick" if quick else "")
    report(title, rows, results, json_path)
    return results


if __name__ == "__main__":  # pragma: no cover
    run("--quick" in sys.argv)
