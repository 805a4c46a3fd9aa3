"""One node of a multi-process cluster test: ``python -m tests.cluster.node_child SPEC``.

``SPEC`` is a JSON object:

- ``dir``: the test's directory; ``storage``: ``{"kind": "sqlite"|"postgres"|"mysql", ...}``;
- ``name``: this node's name (files it writes carry it);
- ``role``: ``"worker"`` or ``"dispatch"`` (a dispatch-only host);
- ``dispatch``: ``[first, count]`` Work tasks to dispatch after start (optional), with
  ``delay_every`` (every k-th one is delayed by ``delay_s``) and ``work_ms``;
- ``recurring``: a task key to register ``every(1).seconds()`` (optional);
- ``cancel``: a file holding a task id to cancel once it exists (optional);
- ``batch``: ``[first, count]`` Work tasks dispatched as one batch, with a ``Gather``
  continuation on it (the batch id goes to ``batch-NAME``);
- ``limited``: ``[first, count]`` Limited tasks (one rate-limit key, 10 starts a second
  cluster-wide) to dispatch once the file ``go`` exists (optional);
- ``lease_s``, ``heartbeat_s``, ``poll_s``, ``parallelism``.

It writes ``ready-NAME`` (its node id) once started, ``dispatched-NAME`` (one id per line,
after each dispatch returned), then runs until SIGTERM (graceful stop, exit 0). Handlers
append to ``executed-NAME.log``: ``work N`` when a Work task finishes, ``tick ISO-TIME`` per
recurring run, ``long-start ID`` / ``long-stopped ID`` for the cancellable task,
``limited N START END`` (POSIX seconds) per Limited task, ``gather BATCH COUNT SUM`` when
the continuation of a batch runs (the number and the sum of the members' results).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from evertask import EverTaskOptions, add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler, RateLimitPolicy

SPEC: dict[str, Any] = json.loads(sys.argv[1]) if __name__ == "__main__" else {}


class Journal:
    """Appends lines to a file, flushed per line."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", buffering=1)  # noqa: SIM115

    def write(self, line: str) -> None:
        self._f.write(line + "\n")
        self._f.flush()


def _journal() -> Journal:
    return Journal(os.path.join(SPEC["dir"], f"executed-{SPEC['name']}.log"))


class Container(containers.DeclarativeContainer):
    executed = providers.Singleton(_journal)


class Work(EverTask, task_name="cluster.Work"):
    n: int
    ms: int = 2


class WorkHandler(EverTaskHandler[Work]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Work, cancellation: CancellationToken) -> int:
        await asyncio.sleep(task.ms / 1000)
        self.executed.write(f"work {task.n} {datetime.now(UTC).isoformat()}")
        return task.n


class Gather(EverTask, task_name="cluster.Gather"):
    pass


class GatherHandler(EverTaskHandler[Gather]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Gather, cancellation: CancellationToken) -> None:
        values = await self.parent_results(int)
        self.executed.write(f"gather {self.parent_task_id} {len(values)} {sum(values)}")


class Beat(EverTask, task_name="cluster.Beat"):
    pass


class BeatHandler(EverTaskHandler[Beat]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Beat, cancellation: CancellationToken) -> None:
        self.executed.write(f"tick {datetime.now(UTC).isoformat()}")


class Limited(EverTask, task_name="cluster.Limited"):
    n: int
    rate_limit_key: str = "one-key"


class LimitedHandler(EverTaskHandler[Limited]):
    rate_limit = RateLimitPolicy(10, timedelta(seconds=1))  # burst 10

    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Limited, cancellation: CancellationToken) -> None:
        started = datetime.now(UTC).timestamp()
        await asyncio.sleep(0.02)
        self.executed.write(f"limited {task.n} {started} {datetime.now(UTC).timestamp()}")


class Long(EverTask, task_name="cluster.Long"):
    pass


class LongHandler(EverTaskHandler[Long]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed
        self.id = ""

    async def on_started(self, task_id: uuid.UUID) -> None:
        self.id = str(task_id)

    async def handle(self, task: Long, cancellation: CancellationToken) -> None:
        self.executed.write(f"long-start {self.id}")
        try:
            await asyncio.sleep(60)
        finally:
            self.executed.write(f"long-stopped {self.id} {datetime.now(UTC).isoformat()}")


def configure(o: EverTaskOptions) -> None:
    o.register_handler(WorkHandler, BeatHandler, LongHandler, LimitedHandler, GatherHandler)
    o.set_lease_duration(timedelta(seconds=SPEC.get("lease_s", 3.0)))
    o.set_heartbeat_interval(timedelta(seconds=SPEC.get("heartbeat_s", 0.5)))
    o.set_cluster_poll_interval(timedelta(seconds=SPEC.get("poll_s", 0.2)))
    o.set_max_degree_of_parallelism(SPEC.get("parallelism", 4))
    o.set_shutdown_grace_period(SPEC.get("grace_s", 0.5))
    o.set_run_workers(SPEC["role"] == "worker")


def build() -> Any:
    builder = add_evertask(Container(), configure)
    storage = SPEC["storage"]
    kind = storage["kind"]
    if kind == "sqlite":
        builder.add_sqlite_storage(storage["path"])
    elif kind == "postgres":
        builder.add_postgres_storage(storage["url"], schema=storage["schema"])
    elif kind == "mysql":
        builder.add_mysql_storage(storage["url"])
    else:
        raise ValueError(kind)
    return builder.build()


def _dump_tasks() -> None:
    """SIGUSR1 (sent by the tests when a stop hangs): where every asyncio task waits."""
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


async def main() -> None:
    directory = Path(SPEC["dir"])
    name = SPEC["name"]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
    host = build()
    await host.start()
    try:
        (directory / f"ready-{name}").write_text(str(host.engine.node.id))
        dispatched = Journal(str(directory / f"dispatched-{name}"))
        if "recurring" in SPEC:
            await host.dispatcher.dispatch(
                Beat(), lambda b: b.schedule().every(1).seconds(), task_key=SPEC["recurring"]
            )
        if "long" in SPEC:
            tid = await host.dispatcher.dispatch(Long())
            (directory / SPEC["long"]).write_text(str(tid))
        if "dispatch" in SPEC:
            first, count = SPEC["dispatch"]
            every = SPEC.get("delay_every", 0)
            delay = timedelta(seconds=SPEC.get("delay_s", 1.0))
            for n in range(first, first + count):
                when = delay if every and n % every == 0 else None
                tid = await host.dispatcher.dispatch(Work(n=n, ms=SPEC.get("work_ms", 2)), when)
                dispatched.write(f"{n} {tid}")
        if "batch" in SPEC:  # a batch of Work tasks and a Gather continuation on it
            first, count = SPEC["batch"]
            batch_id = await host.dispatcher.dispatch_batch(
                [Work(n=n, ms=SPEC.get("work_ms", 2)) for n in range(first, first + count)]
            )
            await host.dispatcher.dispatch(Gather(), after=batch_id)
            (directory / f"batch-{name}").write_text(str(batch_id))
        if "limited" in SPEC:
            while not (directory / "go").exists():
                await asyncio.sleep(0.01)
            first, count = SPEC["limited"]
            for n in range(first, first + count):
                tid = await host.dispatcher.dispatch(Limited(n=n))
                dispatched.write(f"{n} {tid}")
        (directory / f"dispatched-done-{name}").write_text("1")
        if "cancel" in SPEC:
            target = directory / SPEC["cancel"]
            while not target.exists() or not target.read_text().strip():
                await asyncio.sleep(0.02)
            await host.dispatcher.cancel(uuid.UUID(target.read_text().strip()))
            (directory / f"cancelled-{name}").write_text(datetime.now(UTC).isoformat())
        await stop.wait()
    finally:
        await host.stop()


if __name__ == "__main__":
    asyncio.run(main())
