"""One process of the cluster suite: ``python -m benchmarks.cluster_node SPEC`` (JSON).

``SPEC``: ``dir``, ``name``, ``storage`` (``{"kind": "sqlite", "path": ...}`` or
``{"kind": "postgres", "url": ..., "schema": ...}``), ``role`` (``worker`` or
``dispatch``), ``count`` (tasks to dispatch, dispatch role), ``work_ms``, ``lease_s``,
``heartbeat_s``, ``poll_s``. A worker appends ``N EPOCH`` per finished task to
``done-NAME`` (flushed every 100 ms and at stop); the dispatcher writes ``N ID`` per task to
``dispatched-NAME`` and ``EPOCH`` to ``dispatch-start`` before its first dispatch. Every
process writes ``ready-NAME`` (its node id) once started and stops gracefully on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from evertask import EverTaskHost, EverTaskOptions, add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler

_CONCURRENT = 64
"""Dispatches in flight at once in the dispatch-only process."""


class Done:
    """The finished tasks of this process, written out in batches."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, n: int) -> None:
        self.lines.append(f"{n} {time.time():.6f}")

    def flush(self, path: Path) -> None:
        if self.lines:
            lines, self.lines = self.lines, []
            with path.open("a") as out:
                out.write("\n".join(lines) + "\n")


class Container(containers.DeclarativeContainer):
    """The suite's services."""

    done = providers.Singleton(Done)


class Job(EverTask, task_name="bench.cluster.Job"):
    """A task of the suite."""

    n: int
    ms: int = 0


class JobHandler(EverTaskHandler[Job]):
    """Sleeps ``ms`` (0: returns at once) and records the task as done."""

    def __init__(self, done: Done) -> None:
        super().__init__()
        self.done = done

    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        if task.ms:
            await asyncio.sleep(task.ms / 1000)
        self.done.add(task.n)


def build(spec: dict[str, Any], container: Container) -> EverTaskHost:
    """The host this process runs."""

    def configure(o: EverTaskOptions) -> None:
        o.register_handler(JobHandler)
        o.set_lease_duration(timedelta(seconds=spec.get("lease_s", 2.0)))
        o.set_heartbeat_interval(timedelta(seconds=spec.get("heartbeat_s", 0.5)))
        o.set_cluster_poll_interval(timedelta(seconds=spec.get("poll_s", 0.2)))
        o.set_shutdown_grace_period(1.0)
        # each no-op task waits for its commits: enough lanes to fill the group commits
        o.set_max_degree_of_parallelism(spec.get("parallelism", 32))
        o.set_run_workers(spec["role"] == "worker")

    builder = add_evertask(container, configure)
    storage = spec["storage"]
    if storage["kind"] == "sqlite":
        builder.add_sqlite_storage(storage["path"])
    else:
        builder.add_postgres_storage(storage["url"], schema=storage["schema"])
    return builder.build()


async def main(spec: dict[str, Any]) -> None:
    """Run one node until SIGTERM."""
    directory, name = Path(spec["dir"]), spec["name"]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    container = Container()
    done = container.done()
    host = build(spec, container)
    await host.start()
    try:
        (directory / f"ready-{name}").write_text(str(host.node_id))
        if spec["role"] == "dispatch":
            # as a web process does: many requests dispatching at once (group commit)
            lines: list[str] = []
            ms = spec.get("work_ms", 0)
            (directory / "dispatch-start").write_text(f"{time.time():.6f}")
            for first in range(0, spec["count"], _CONCURRENT):
                batch = range(first, min(first + _CONCURRENT, spec["count"]))
                ids = await asyncio.gather(
                    *(host.dispatcher.dispatch(Job(n=n, ms=ms)) for n in batch)
                )
                lines += [f"{n} {tid}" for n, tid in zip(batch, ids, strict=True)]
            (directory / f"dispatched-{name}").write_text("\n".join(lines) + "\n")
        path = directory / f"done-{name}"
        while not stop.is_set():
            done.flush(path)
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                pass
    finally:
        await host.stop()
        done.flush(directory / f"done-{name}")


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
