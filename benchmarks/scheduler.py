"""The scheduler suite: scheduling rate, memory per timer and idle CPU with many timers.

Each variant runs in a fresh subprocess (so resident memory is measured cleanly):

- ``engine``: ``await dispatcher.dispatch(task, timedelta(hours=1))`` for N pre-built task
  objects on a host with no storage (the timers are all pending for the whole run);
- ``floor``: the same task objects, no library: for each one a ``uuid.uuid4()`` id, the due
  time ``datetime.now(UTC) + delay``, a ``heapq.heappush`` of ``(due, seq, task)`` and a dict
  index by id — the least any scheduler must do per entry.

Memory per task is the growth of resident memory across the scheduling loop divided by N
(the task objects are built before the loop and are not counted). Idle CPU is the CPU time
the process uses while the event loop idles with every timer pending.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from .common import Results, report

DELAY = timedelta(hours=1)


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu() -> float:
    return time.process_time()


def _tasks(n: int) -> list[Any]:
    from .engine import Noop

    return [Noop(n=i) for i in range(n)]


async def _engine(n: int, idle: float) -> dict[str, float]:
    from evertask import add_evertask

    from .engine import Container, NoopHandler

    def configure(o: Any) -> None:
        o.register_handler(NoopHandler)

    host = add_evertask(Container(), configure).build()
    tasks = _tasks(n)
    async with host:
        dispatch = host.dispatcher.dispatch
        gc.collect()
        rss0 = _rss()
        start = time.perf_counter()
        for task in tasks:
            await dispatch(task, DELAY)
        elapsed = time.perf_counter() - start
        gc.collect()
        rss1 = _rss()
        assert host.scheduled_count == n
        cpu0 = _cpu()
        await asyncio.sleep(idle)
        cpu1 = _cpu()
    return {"rate": n / elapsed, "bytes": (rss1 - rss0) / n, "idle_cpu": cpu1 - cpu0}


async def _floor(n: int, idle: float) -> dict[str, float]:
    tasks = _tasks(n)
    heap: list[tuple[datetime, int, Any]] = []
    index: dict[uuid.UUID, tuple[datetime, int, Any]] = {}
    seq = itertools.count()
    gc.collect()
    rss0 = _rss()
    start = time.perf_counter()
    for task in tasks:
        entry = (datetime.now(UTC) + DELAY, next(seq), task)
        heapq.heappush(heap, entry)
        index[uuid.uuid4()] = entry
    elapsed = time.perf_counter() - start
    gc.collect()
    rss1 = _rss()
    cpu0 = _cpu()
    await asyncio.sleep(idle)
    cpu1 = _cpu()
    return {"rate": n / elapsed, "bytes": (rss1 - rss0) / n, "idle_cpu": cpu1 - cpu0}


def _child(mode: str, n: int, idle: float) -> dict[str, float]:
    if mode == "floor":
        return asyncio.run(_floor(n, idle))
    return asyncio.run(_engine(n, idle))


def _spawn(mode: str, n: int, idle: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.scheduler", "--child", mode, str(n), str(idle)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it."""
    n = 100_000 if quick else 1_000_000
    idle = 2.0 if quick else 10.0
    floor = _spawn("floor", n, idle)
    engine = _spawn("engine", n, idle)
    results: Results = {
        "tasks": float(n),
        "idle_seconds": idle,
        "scheduled_per_s": round(engine["rate"], 1),
        "floor_scheduled_per_s": round(floor["rate"], 1),
        "ratio_to_floor": round(engine["rate"] / floor["rate"], 4),
        "bytes_per_scheduled_task": round(engine["bytes"], 1),
        "floor_bytes_per_scheduled_task": round(floor["bytes"], 1),
        "idle_cpu_s": round(engine["idle_cpu"], 4),
    }
    rows = [
        ("delayed tasks scheduled (no storage)", f"{n:,}"),
        ("EverTask scheduled/s", f"{engine['rate']:,.0f}"),
        ("floor scheduled/s (uuid4 + now() + heappush + dict)", f"{floor['rate']:,.0f}"),
        ("ratio to floor", f"{results['ratio_to_floor']:.1%}  (bar: >= 40% and >= 50,000/s)"),
        (
            "bytes per scheduled task (engine / floor)",
            f"{engine['bytes']:,.0f} / {floor['bytes']:,.0f}  (bar: < 1,536)",
        ),
        (f"CPU seconds over {idle:g} idle seconds", f"{engine['idle_cpu']:.4f}  (bar: < 0.05)"),
    ]
    report(
        "python -m benchmarks scheduler" + (" --quick" if quick else ""), rows, results, json_path
    )
    return results


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
    else:
        run("--quick" in sys.argv)
