"""The throttling suite: CPU-bound work beside I/O tasks, and the cost of a rate limit.

- CPU-bound work and the event loop: 8 handlers each run 1 s of pure-Python CPU work
  (0.25 s with ``--quick``) on a queue of their own (parallelism 8) while a stream of
  no-op tasks is dispatched every 2 ms on the default queue, from the event loop, until
  the CPU work is done. The figure is the no-op tasks' dispatch-to-start p99 (from before
  ``dispatch`` to the first line of ``handle``; memory storage, audit Full). A no-op due
  while the loop was blocked is dispatched as soon as the loop runs again and measured
  from its due time, so a blocked loop cannot thin out its own samples:
  ``cpu_bound_io_start_p99_ms`` with the work in the host's worker processes
  (``CpuBoundHandler``, the default pool: one worker per CPU, so the 8 handlers queue for
  them), beside ``cpu_bound_inline_io_start_p99_ms`` with the same work run inline in an
  ``async def handle`` on the event loop. Bar: ``cpu_bound_io_start_p99_ms <= 5``. The
  processes figure is also measured with the workers at the host's own priority
  (``set_worker_nice(0)``; the default adds 10), as ``cpu_bound_nice0_*``. Three runs of
  each (one with ``--quick``), interleaved, each in a fresh interpreter; the percentiles
  are the medians of the runs' own.
- Rate-limit overhead: the same no-op handler with a rate limit whose one key stays under
  its budget (every run proceeds), and without one; tasks per CPU second of the benchmark
  process, each measurement in a fresh interpreter, interleaved, medians.
  ``ratelimit_overhead_us_per_task`` is the difference per task. Bar: ``<= 5`` us.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from dependency_injector import containers, providers

from evertask import EverTaskOptions, add_evertask
from evertask_abstractions import (
    CancellationToken,
    CpuBoundHandler,
    EverTask,
    EverTaskHandler,
    RateLimitPolicy,
)

from .common import Results, median, percentile, report

CPU_TASKS = 8
PING_INTERVAL = 0.002


def spin(seconds: float) -> int:
    """Pure-Python CPU work for ``seconds`` (it holds the GIL the whole time)."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        for _ in range(200):
            n += 1
    return n


class Recorder:
    """What the handlers report."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.spun = 0
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()

    def reset(self, target: int = 0) -> None:
        self.latencies.clear()
        self.spun = 0
        self.count = 0
        self.target = target
        self.done = asyncio.Event()


class Container(containers.DeclarativeContainer):
    """The benchmark's services."""

    recorder = providers.Singleton(Recorder)


class Spin(EverTask):
    """CPU work for ``seconds``."""

    seconds: float


class SpinHandler(CpuBoundHandler[Spin]):
    """The work in a worker process."""

    queue_name = "cpu"

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    @staticmethod
    def compute(task: Spin) -> int:
        return spin(task.seconds)

    async def on_computed(self, task: Spin, result: int) -> None:
        self.recorder.spun += 1


class InlineSpin(EverTask):
    """The same CPU work, run on the event loop."""

    seconds: float


class InlineSpinHandler(EverTaskHandler[InlineSpin]):
    """The work inline in ``async def handle`` (what the pool is for)."""

    queue_name = "cpu"

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def handle(self, task: InlineSpin, cancellation: CancellationToken) -> None:
        spin(task.seconds)
        self.recorder.spun += 1


class Ping(EverTask):
    """A no-op that records how long after its dispatch it started."""

    sent: float


class PingHandler(EverTaskHandler[Ping]):
    """Records the dispatch-to-start latency."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def handle(self, task: Ping, cancellation: CancellationToken) -> None:
        r = self.recorder
        r.latencies.append(time.perf_counter() - task.sent)
        r.count += 1
        if r.count == r.target:
            r.done.set()


class Limited(EverTask):
    """A no-op with a rate-limit key."""

    n: int = 0

    @property
    def rate_limit_key(self) -> str:
        return "tenant-1"


class Plain(EverTask):
    """The same no-op, no rate limit."""

    n: int = 0


class _Counting:
    recorder: Recorder

    async def handle(self, task: Any, cancellation: CancellationToken) -> None:
        r = self.recorder
        r.count += 1
        if r.count == r.target:
            r.done.set()


class LimitedHandler(_Counting, EverTaskHandler[Limited]):
    """Rate limited; its one key never runs out of budget."""

    rate_limit = RateLimitPolicy(100_000_000, timedelta(seconds=1))

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder


class PlainHandler(_Counting, EverTaskHandler[Plain]):
    """Not rate limited."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder


def _cpu_host(container: Container, nice: int | None) -> Any:
    def configure(o: EverTaskOptions) -> None:
        o.register_handler(SpinHandler, InlineSpinHandler, PingHandler)
        if nice is not None:
            o.configure_process_pool(lambda p: p.set_worker_nice(nice))

    return (
        add_evertask(container, configure)
        .add_queue("cpu", lambda q: q.set_max_degree_of_parallelism(CPU_TASKS))
        .add_memory_storage()
        .build()
    )


async def io_start_latencies(
    inline: bool, seconds: float, nice: int | None = None
) -> dict[str, Any]:
    """No-op dispatch-to-start latencies (ms) while ``CPU_TASKS`` handlers do CPU work."""
    container = Container()
    host = _cpu_host(container, nice)
    recorder: Recorder = container.recorder()
    dispatch = host.dispatcher.dispatch
    async with host:
        pool = host.process_pool
        if not inline:
            await pool.warm_up()
        recorder.reset(50)  # warm the no-op path
        for _ in range(50):
            await dispatch(Ping(sent=time.perf_counter()))
        await recorder.done.wait()
        recorder.reset()
        started = time.perf_counter()
        for _ in range(CPU_TASKS):
            await dispatch(InlineSpin(seconds=seconds) if inline else Spin(seconds=seconds))
        sent = 0
        due = time.perf_counter()
        while True:
            now = time.perf_counter()
            # no-ops that should have arrived while the loop was blocked arrive now, with
            # their due time (a blocked loop must not thin out its own samples)
            while due < now - PING_INTERVAL:
                await dispatch(Ping(sent=due))
                sent += 1
                due += PING_INTERVAL
            if recorder.spun >= CPU_TASKS:
                break
            await dispatch(Ping(sent=now))
            sent += 1
            due = now + PING_INTERVAL
            await asyncio.sleep(PING_INTERVAL)
        elapsed = time.perf_counter() - started
        recorder.target = sent
        if recorder.count < sent:
            await recorder.done.wait()
    return {
        "latencies_ms": [x * 1000.0 for x in recorder.latencies],
        "elapsed_s": elapsed,
        "pool_size": pool.size,
        "worker_nice": host.engine.options.process_pool.worker_nice,
    }


async def ratelimit_cost(limited: bool, n: int) -> float:
    """CPU microseconds of the benchmark process per task, ``n`` tasks."""
    container = Container()
    handler = LimitedHandler if limited else PlainHandler
    host = add_evertask(container, lambda o: o.register_handler(handler)).add_memory_storage()
    built = host.build()
    recorder: Recorder = container.recorder()
    dispatch = built.dispatcher.dispatch
    make = Limited if limited else Plain
    async with built:
        recorder.reset(500)  # warm up
        for i in range(500):
            await dispatch(make(n=i))
        await recorder.done.wait()
        recorder.reset(n)
        gc.collect()
        start = time.process_time()
        for i in range(n):
            await dispatch(make(n=i))
        await recorder.done.wait()
        cpu = time.process_time() - start
    return cpu / n * 1e6


def _child(kind: str, args: list[str]) -> Any:
    gc.collect()
    if kind == "cpu_processes":
        nice = int(args[1]) if len(args) > 1 else None
        return asyncio.run(io_start_latencies(False, float(args[0]), nice))
    if kind == "cpu_inline":
        return asyncio.run(io_start_latencies(True, float(args[0])))
    if kind == "limited":
        return asyncio.run(ratelimit_cost(True, int(args[0])))
    return asyncio.run(ratelimit_cost(False, int(args[0])))


def measure(kind: str, *args: Any) -> Any:
    """One measurement in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.throttling", "--child", kind, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bars(results: Results) -> list[tuple[str, bool, str]]:
    """(what, passed, figure) of the suite's bars."""
    return [
        (
            "cpu_bound_io_start_p99_ms <= 5",
            results["cpu_bound_io_start_p99_ms"] <= 5.0,
            f"{results['cpu_bound_io_start_p99_ms']:.2f} ms",
        ),
        (
            "ratelimit_overhead_us_per_task <= 5",
            results["ratelimit_overhead_us_per_task"] <= 5.0,
            f"{results['ratelimit_overhead_us_per_task']:.2f} us",
        ),
    ]


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it (and write ``json_path``)."""
    seconds = 0.25 if quick else 1.0
    n = 20_000 if quick else 50_000
    reps = 3 if quick else 7
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu_reps = 1 if quick else 3
    runs: list[dict[str, Any]] = []
    runs0: list[dict[str, Any]] = []
    for _ in range(cpu_reps):  # interleaved; the figures are the medians of the runs'
        runs.append(measure("cpu_processes", seconds))
        runs0.append(measure("cpu_processes", seconds, 0))  # with set_worker_nice(0)
    inline = measure("cpu_inline", seconds)
    limited: list[float] = []
    plain: list[float] = []
    for _ in range(reps):  # interleaved, so a change of the machine's speed hits both
        plain.append(measure("plain", n))
        limited.append(measure("limited", n))
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    processes = runs[0]
    lat = [x for r in runs for x in r["latencies_ms"]]
    lat0 = [x for r in runs0 for x in r["latencies_ms"]]

    def each(values: list[dict[str, Any]], pct: float) -> float:
        return median([percentile(r["latencies_ms"], pct) for r in values])

    inl = inline["latencies_ms"]
    results: Results = {
        "cpu_tasks": float(CPU_TASKS),
        "load_average_before": round(load_before, 2),
        "load_average_after_cpu_runs": round(load_after, 2),
        "cpu_seconds_per_task": seconds,
        "pool_size": float(processes["pool_size"]),
        "worker_nice": float(processes["worker_nice"]),
        "cpu_bound_io_samples": float(len(lat)),
        "cpu_runs": float(cpu_reps),
        "cpu_bound_io_start_p50_ms": round(each(runs, 50), 3),
        "cpu_bound_io_start_p99_ms": round(each(runs, 99), 3),
        "cpu_bound_io_start_worst_run_p99_ms": round(
            max(percentile(r["latencies_ms"], 99) for r in runs), 3
        ),
        "cpu_bound_io_start_max_ms": round(max(lat), 3),
        "cpu_bound_elapsed_s": round(median([r["elapsed_s"] for r in runs]), 3),
        "cpu_bound_nice0_io_start_p50_ms": round(each(runs0, 50), 3),
        "cpu_bound_nice0_io_start_p99_ms": round(each(runs0, 99), 3),
        "cpu_bound_nice0_io_start_max_ms": round(max(lat0), 3),
        "cpu_bound_inline_io_samples": float(len(inl)),
        "cpu_bound_inline_io_start_p50_ms": round(percentile(inl, 50), 3),
        "cpu_bound_inline_io_start_p99_ms": round(percentile(inl, 99), 3),
        "cpu_bound_inline_elapsed_s": round(inline["elapsed_s"], 3),
        "ratelimit_tasks": float(n),
        "unlimited_us_per_task": round(median(plain), 3),
        "ratelimited_us_per_task": round(median(limited), 3),
        "ratelimit_overhead_us_per_task": round(median(limited) - median(plain), 3),
    }
    rows = [
        (
            "CPU work",
            f"{CPU_TASKS} handlers x {seconds:g} s of pure-Python CPU, queue 'cpu' "
            f"(parallelism {CPU_TASKS})",
        ),
        (
            "no-op stream",
            f"one dispatch every {PING_INTERVAL * 1000:g} ms on the default queue until the "
            "CPU work is done",
        ),
        (
            "in worker processes: no-op dispatch-to-start p50 / p99 / max",
            f"{results['cpu_bound_io_start_p50_ms']:.3f} / "
            f"{results['cpu_bound_io_start_p99_ms']:.3f} / "
            f"{results['cpu_bound_io_start_max_ms']:.3f} ms  "
            f"({len(lat)} no-ops; pool of {processes['pool_size']}, worker nice "
            f"+{processes['worker_nice']}; CPU work done in "
            f"{results['cpu_bound_elapsed_s']:.2f} s; median of {cpu_reps} run(s), worst run's "
            f"p99 {results['cpu_bound_io_start_worst_run_p99_ms']:.3f} ms)",
        ),
        (
            "  the same with set_worker_nice(0): p50 / p99 / max",
            f"{results['cpu_bound_nice0_io_start_p50_ms']:.3f} / "
            f"{results['cpu_bound_nice0_io_start_p99_ms']:.3f} / "
            f"{results['cpu_bound_nice0_io_start_max_ms']:.3f} ms  ({len(lat0)} no-ops)",
        ),
        (
            "inline on the event loop: p50 / p99",
            f"{results['cpu_bound_inline_io_start_p50_ms']:.1f} / "
            f"{results['cpu_bound_inline_io_start_p99_ms']:.1f} ms  "
            f"({len(inl)} no-ops; CPU work done in {inline['elapsed_s']:.2f} s)",
        ),
        (
            "rate limit, key under budget vs none",
            f"{results['ratelimited_us_per_task']:.2f} vs {results['unlimited_us_per_task']:.2f} "
            f"CPU us per task ({n:,} no-ops x {reps} run(s) each, medians)",
        ),
        ("  overhead", f"{results['ratelimit_overhead_us_per_task']:+.2f} us per task"),
        (
            "machine load (1-min average) before / after the CPU runs",
            f"{load_before:.2f} / {load_after:.2f}  (other processes compete with the event "
            "loop too: compare figures from a quiet machine)",
        ),
    ]
    for what, passed, figure in bars(results):
        rows.append((f"bar: {what}", f"{'PASS' if passed else 'FAIL'} ({figure})"))
    title = "python -m benchmarks throttling" + (" --quick" if quick else "")
    report(title, rows, results, json_path)
    return results


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3:])))
    else:
        run("--quick" in sys.argv)
