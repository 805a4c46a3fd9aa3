"""The engine suite: throughput against a bare-asyncio floor, start latency, timer lateness.

- throughput: N no-op tasks dispatched and executed on in-memory storage (audit Full,
  the default), against the floor: the same N items through ``asyncio.Queue`` with the same
  number of consumers, each item's no-op handler run as its own asyncio task;
- idle start latency: one task at a time on an idle host, from before ``dispatch`` to the
  first line of the handler;
- delayed lateness: tasks dispatched 1 s ahead (1 ms apart), from the scheduled instant to
  the first line of the handler;
- what the ratio is made of: the same engine with no storage, and the storage floor, the
  memory storage's own calls for one task (its row built as the dispatcher builds it, then
  ``persist``, ``set_in_progress``, ``set_completed`` at audit Full) in a loop with no
  engine. A perfect engine, costing only the asyncio floor, would still pay the storage
  floor: ``floor / (floor + storage floor)`` is the best ratio any engine could keep on this
  storage.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from dependency_injector import containers, providers

from evertask import EverTaskOptions, add_evertask
from evertask.ids import uuid7
from evertask.registry import dump_task, handler_type_name
from evertask.storage import MemoryTaskStorage, QueuedTask
from evertask_abstractions import (
    AuditLevel,
    CancellationToken,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
)

from .common import Results, median, percentile, report


class Recorder:
    """Collects handler start times; wakes the benchmark when the target count is reached."""

    def __init__(self) -> None:
        self.target = 0
        self.count = 0
        self.done = asyncio.Event()
        self.starts: list[float] = []
        self.wall: dict[int, datetime] = {}
        self.record_starts = False

    def reset(self, target: int, record: bool = False) -> None:
        self.target, self.count, self.record_starts = target, 0, record
        self.done = asyncio.Event()
        self.starts.clear()
        self.wall.clear()


class Noop(EverTask):
    """A task that does nothing."""

    n: int = 0


class NoopHandler(EverTaskHandler[Noop]):
    """Counts executions (and, when asked, records when each started)."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def handle(self, task: Noop, cancellation: CancellationToken) -> None:
        r = self.recorder
        if r.record_starts:
            r.starts.append(time.perf_counter())
            r.wall[task.n] = datetime.now(UTC)
        r.count += 1
        if r.count == r.target:
            r.done.set()


class Container(containers.DeclarativeContainer):
    """The benchmark's services."""

    recorder = providers.Singleton(Recorder)


def _host(container: Container, storage: bool = True) -> Any:
    builder = add_evertask(container, lambda o: o.register_handler(NoopHandler))
    return (builder.add_memory_storage() if storage else builder).build()


async def floor(n: int, consumers: int, capacity: int) -> float:
    """Bare asyncio: a bounded queue, ``consumers`` workers, one task per item."""
    queue: asyncio.Queue[int] = asyncio.Queue(capacity)
    done = asyncio.Event()
    count = 0

    async def noop(item: int) -> None:
        return None

    async def consumer() -> None:
        nonlocal count
        while True:
            item = await queue.get()
            await asyncio.get_running_loop().create_task(noop(item))
            count += 1
            if count == n:
                done.set()

    workers = [asyncio.create_task(consumer()) for _ in range(consumers)]
    start = time.perf_counter()
    for i in range(n):
        await queue.put(i)
    await done.wait()
    elapsed = time.perf_counter() - start
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return n / elapsed


async def engine_throughput(n: int, storage: bool = True) -> float:
    """EverTask on memory storage (or none): dispatch n tasks, wait until all ran."""
    container = Container()
    host = _host(container, storage)
    recorder = container.recorder()
    async with host:
        recorder.reset(n)
        dispatch = host.dispatcher.dispatch
        start = time.perf_counter()
        for i in range(n):
            await dispatch(Noop(n=i))
        await recorder.done.wait()
        elapsed = time.perf_counter() - start
    return n / elapsed


def storage_row(task_id: uuid.UUID, task: Noop, owner: uuid.UUID) -> QueuedTask:
    """The row the dispatcher persists for an immediate ``Noop`` (same fields, same values)."""
    return QueuedTask(
        id=task_id,
        type=Noop.evertask_type_name(),
        request=dump_task(task),
        handler=handler_type_name(NoopHandler),
        status=QueuedTaskStatus.QUEUED,
        created_at_utc=datetime.now(UTC),
        queue_name="default",
        audit_level=AuditLevel.FULL,
        owner_node=owner,
    )


async def storage_floor(n: int, storage: MemoryTaskStorage | None = None) -> float:
    """Microseconds per task of the memory storage's own calls for one task, no engine.

    The row is built as the dispatcher builds it, then persisted, marked InProgress and
    Completed. What the engine makes without a storage too (the task object, its id) is
    made in a first loop of its own and its time taken off.
    """
    storage = MemoryTaskStorage() if storage is None else storage
    full = AuditLevel.FULL
    node = uuid.uuid4()
    start = time.perf_counter()
    for i in range(n):
        Noop(n=i), uuid7()
    without = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(n):
        row = storage_row(uuid7(), Noop(n=i), node)
        await storage.persist(row)
        await storage.set_in_progress(row.id, full)
        await storage.set_completed(row.id, 0.01, full)
    return max(0.0, time.perf_counter() - start - without) / n * 1e6


async def idle_latency(samples: int) -> list[float]:
    """Milliseconds from before dispatch to handler start, one task at a time."""
    container = Container()
    host = _host(container)
    recorder = container.recorder()
    out: list[float] = []
    async with host:
        for i in range(samples):
            recorder.reset(1, record=True)
            await asyncio.sleep(0.001)  # let the host go idle between samples
            t0 = time.perf_counter()
            await host.dispatcher.dispatch(Noop(n=i))
            await recorder.done.wait()
            out.append((recorder.starts[0] - t0) * 1000)
    return out


async def delayed_lateness(count: int) -> list[float]:
    """Milliseconds between each task's scheduled instant and its handler's start."""
    container = Container()
    host = _host(container)
    recorder = container.recorder()
    async with host:
        recorder.reset(count, record=True)
        base = datetime.now(UTC) + timedelta(seconds=1)
        when = [base + timedelta(milliseconds=i) for i in range(count)]
        for i, at in enumerate(when):
            await host.dispatcher.dispatch(Noop(n=i), at)
        await asyncio.wait_for(recorder.done.wait(), 60)
    return [(recorder.wall[i] - at).total_seconds() * 1000 for i, at in enumerate(when)]


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it."""
    n = 20_000 if quick else 100_000
    reps = 1 if quick else 5
    samples = 300 if quick else 1000
    delayed = 300 if quick else 1000
    opts = EverTaskOptions()
    consumers, capacity = opts.max_degree_of_parallelism, opts.channel_capacity

    def measure(kind: str, *args: Any) -> Any:
        # each measurement in a fresh interpreter, so one does not inherit another's heap
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.engine", "--child", kind, *map(str, args)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    floors: list[float] = []
    engines: list[float] = []
    bare: list[float] = []  # the engine with no storage
    stored: list[float] = []  # the storage floor, microseconds per task
    for _ in range(reps):  # interleaved, so a change of the machine's speed hits all
        floors.append(measure("floor", n, consumers, capacity))
        engines.append(measure("engine", n))
        bare.append(measure("engine_no_storage", n))
        stored.append(measure("storage_floor", n))
    floor_us = 1e6 / median(floors)
    storage_us = median(stored)
    latency = measure("latency", samples)
    lateness = measure("lateness", delayed)
    results: Results = {
        "tasks": float(n),
        "consumers": float(consumers),
        "engine_tasks_per_s": round(median(engines), 1),
        "floor_tasks_per_s": round(median(floors), 1),
        "ratio_to_floor": round(median(engines) / median(floors), 4),
        "engine_no_storage_tasks_per_s": round(median(bare), 1),
        "no_storage_ratio_to_floor": round(median(bare) / median(floors), 4),
        "floor_us_per_task": round(floor_us, 3),
        "engine_us_per_task": round(1e6 / median(engines), 3),
        "storage_floor_us_per_task": round(storage_us, 3),
        "best_ratio_on_memory_storage": round(floor_us / (floor_us + storage_us), 4),
        "bound_ratio": round(floor_us / (1e6 / median(bare) + storage_us), 4),
        "idle_start_p50_ms": round(percentile(latency, 50), 4),
        "idle_start_p99_ms": round(percentile(latency, 99), 4),
        "delayed_lateness_p50_ms": round(percentile(lateness, 50), 4),
        "delayed_lateness_p99_ms": round(percentile(lateness, 99), 4),
    }
    rows = [
        ("tasks (no-op, memory storage, audit Full)", f"{n:,} x {reps} run(s), median"),
        ("consumers", f"{consumers}"),
        ("EverTask tasks/s", f"{results['engine_tasks_per_s']:,.0f}"),
        ("floor tasks/s (asyncio.Queue + task per item)", f"{results['floor_tasks_per_s']:,.0f}"),
        ("ratio to floor", f"{results['ratio_to_floor']:.1%}  (bar: >= 30%)"),
        (
            "  the same engine with no storage",
            f"{results['engine_no_storage_tasks_per_s']:,.0f} tasks/s, "
            f"{results['no_storage_ratio_to_floor']:.1%} of the floor",
        ),
        (
            "  per task: floor / engine",
            f"{results['floor_us_per_task']:.2f} / {results['engine_us_per_task']:.2f} us",
        ),
        (
            "  storage floor (memory storage's own calls)",
            f"{results['storage_floor_us_per_task']:.2f} us per task, no engine",
        ),
        (
            "  best ratio any engine could keep on it",
            f"{results['best_ratio_on_memory_storage']:.1%}  (floor / (floor + storage floor))",
        ),
        (
            "  best ratio this engine could keep on it",
            f"{results['bound_ratio']:.1%}  (floor / (engine with no storage + storage floor))",
        ),
        (
            "idle dispatch-to-start p50 / p99",
            f"{results['idle_start_p50_ms']:.3f} / "
            f"{results['idle_start_p99_ms']:.3f} ms  (bar: p50 < 0.5 ms)",
        ),
        (
            f"lateness of {delayed} delayed tasks p50 / p99",
            f"{results['delayed_lateness_p50_ms']:.3f} / "
            f"{results['delayed_lateness_p99_ms']:.3f} ms  (bar: p99 < 5 ms)",
        ),
    ]
    report("python -m benchmarks engine" + (" --quick" if quick else ""), rows, results, json_path)
    return results


def _child(kind: str, args: list[str]) -> Any:
    gc.collect()
    if kind == "floor":
        return asyncio.run(floor(int(args[0]), int(args[1]), int(args[2])))
    if kind == "engine":
        return asyncio.run(engine_throughput(int(args[0])))
    if kind == "engine_no_storage":
        return asyncio.run(engine_throughput(int(args[0]), storage=False))
    if kind == "storage_floor":
        return asyncio.run(storage_floor(int(args[0])))
    if kind == "latency":
        return asyncio.run(idle_latency(int(args[0])))
    return asyncio.run(delayed_lateness(int(args[0])))


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3:])))
    else:
        run("--quick" in sys.argv)
