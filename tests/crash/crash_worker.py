"""A host process for the crash tests: ``python -m tests.crash.crash_worker MODE DIR BACKEND``.

MODE ``load``: register a recurring task, then dispatch one-shot and delayed tasks in a loop
until killed; each id is appended to ``dispatched.log`` only after ``dispatch`` returned.
MODE ``drain``: start a host on the same storage and run until ``drained`` (signalled by
the parent creating ``stop``), executing whatever was pending.
MODE ``slow``: dispatch slow tasks and wait; stopped gracefully by SIGTERM.
MODE ``parent``: dispatch a parent task and its continuation; the process SIGKILLs itself
right after the commit of the parent's Completed write (which released the continuation
and handed it to this node), before anything could run it, and writes to ``released`` this
node's id and the owners of the released rows. ``drain`` then runs the continuation.
MODE ``fan_in``: the same with a batch of 50 and a continuation on the batch: the kill
follows the commit of the member's write that finished the batch (and handed the
continuation to this node).
Handlers append to ``executed.log`` (one line per execution, flushed).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dependency_injector import containers, providers

from evertask import add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler

PARENT_GO = asyncio.Event()


class Journal:
    """Appends lines to a file, flushed (and fsynced) per line."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", buffering=1)  # noqa: SIM115

    def write(self, line: str) -> None:
        self._f.write(line + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())


class Container(containers.DeclarativeContainer):
    executed = providers.Singleton(Journal, path=os.path.join(sys.argv[2], "executed.log"))


class Work(EverTask):
    n: int
    due: str = ""


class WorkHandler(EverTaskHandler[Work]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Work, cancellation: CancellationToken) -> None:
        await asyncio.sleep(0.002)
        self.executed.write(f"work {task.n} {task.due} {datetime.now(UTC).isoformat()}")


class Tick(EverTask):
    pass


class TickHandler(EverTaskHandler[Tick]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Tick, cancellation: CancellationToken) -> None:
        self.executed.write(f"tick {datetime.now(UTC).isoformat()}")


class Slow(EverTask):
    n: int


class SlowHandler(EverTaskHandler[Slow]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Slow, cancellation: CancellationToken) -> None:
        self.executed.write(f"slow-start {task.n}")
        await asyncio.sleep(30)
        self.executed.write(f"slow-end {task.n}")


class Parent(EverTask):
    n: int


class ParentHandler(EverTaskHandler[Parent]):
    result_type = int

    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Parent, cancellation: CancellationToken) -> int:
        await PARENT_GO.wait()
        self.executed.write(f"parent {task.n}")
        return task.n * 10


class Child(EverTask):
    label: str


class ChildHandler(EverTaskHandler[Child]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Child, cancellation: CancellationToken) -> None:
        value = await self.parent_result(int)
        self.executed.write(f"child {task.label} {self.parent_task_id} {value}")


class Gather(EverTask):
    label: str


class GatherHandler(EverTaskHandler[Gather]):
    def __init__(self, executed: Journal) -> None:
        super().__init__()
        self.executed = executed

    async def handle(self, task: Gather, cancellation: CancellationToken) -> None:
        values = await self.parent_results(int)
        self.executed.write(
            f"gather {task.label} {self.parent_task_id} {len(values)} {sum(values)}"
        )


def build(directory: str, backend: str):  # type: ignore[no-untyped-def]
    builder = add_evertask(
        Container(),
        lambda o: (
            o.register_handler(
                WorkHandler, TickHandler, SlowHandler, ParentHandler, ChildHandler, GatherHandler
            )
            .set_shutdown_grace_period(0.5)
            # a killed host's tasks move to the next host once its lease ends
            .set_lease_duration(timedelta(seconds=2))
            .set_heartbeat_interval(timedelta(seconds=0.5))
            .set_cluster_poll_interval(timedelta(seconds=0.2))
        ),
    )
    if backend == "sqlite":
        builder.add_sqlite_storage(os.path.join(directory, "tasks.db"))
    else:
        schema = Path(directory, "schema").read_text().strip()
        builder.add_postgres_storage(os.environ["EVERTASK_TEST_POSTGRES_URL"], schema=schema)
    return builder.build()


async def load(directory: str, backend: str) -> None:
    host = build(directory, backend)
    dispatched = Journal(os.path.join(directory, "dispatched.log"))
    async with host:
        await host.dispatcher.dispatch(
            Tick(), lambda b: b.schedule().every(2).seconds(), task_key="tick"
        )
        Path(directory, "ready").write_text("1")
        n = 0
        while True:
            n += 1
            if n % 10 == 0:
                due = datetime.now(UTC) + timedelta(seconds=3)
                tid = await host.dispatcher.dispatch(Work(n=n, due=due.isoformat()), due)
            else:
                tid = await host.dispatcher.dispatch(Work(n=n))
            dispatched.write(f"{n} {tid}")
            if n % 50 == 0:
                await asyncio.sleep(0.01)


async def drain(directory: str, backend: str) -> None:
    host = build(directory, backend)
    stop = Path(directory, "stop")
    async with host:
        Path(directory, "drain-started").write_text(datetime.now(UTC).isoformat())
        while not stop.exists():
            await asyncio.sleep(0.05)


async def slow(directory: str, backend: str) -> None:
    host = build(directory, backend)
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    async with host:
        for n in range(3):
            await host.dispatcher.dispatch(Slow(n=n))
        Path(directory, "ready").write_text("1")
        await done.wait()
        await host.stop(grace_period=0.2)


async def parent(directory: str, backend: str) -> None:
    host = build(directory, backend)
    async with host:
        storage = host.storage
        complete = storage.set_completed
        parent_id = await host.dispatcher.dispatch(Parent(n=7))

        async def completed_then_killed(task_id, *args, **kwargs):  # type: ignore[no-untyped-def]
            released = await complete(task_id, *args, **kwargs)  # committed
            if task_id == parent_id:
                owners = " ".join(str(r.owner_node) for r in released)
                Path(directory, "released").write_text(f"{host.node_id} {owners}")
                os.kill(os.getpid(), signal.SIGKILL)
            return released

        storage.set_completed = completed_then_killed
        child_id = await host.dispatcher.dispatch(Child(label="c1"), after=parent_id)
        Path(directory, "ids").write_text(f"{parent_id} {child_id}")
        PARENT_GO.set()
        await asyncio.sleep(30)  # killed long before


async def fan_in(directory: str, backend: str) -> None:
    """A batch of 50 and a continuation on it: the process SIGKILLs itself right after the
    commit of the write that finished the batch (and released the continuation)."""
    host = build(directory, backend)
    async with host:
        storage = host.storage
        complete = storage.set_completed

        async def completed_then_killed(task_id, *args, **kwargs):  # type: ignore[no-untyped-def]
            released = await complete(task_id, *args, **kwargs)  # committed
            if released:
                owners = " ".join(str(r.owner_node) for r in released)
                Path(directory, "released").write_text(f"{host.node_id} {owners}")
                os.kill(os.getpid(), signal.SIGKILL)
            return released

        storage.set_completed = completed_then_killed
        batch_id = await host.dispatcher.dispatch_batch([Parent(n=n) for n in range(50)])
        child_id = await host.dispatcher.dispatch(Gather(label="g1"), after=batch_id)
        Path(directory, "ids").write_text(f"{batch_id} {child_id}")
        PARENT_GO.set()
        await asyncio.sleep(30)  # killed long before


if __name__ == "__main__":
    mode, directory, backend = sys.argv[1], sys.argv[2], sys.argv[3]
    started = time.monotonic()
    modes = {"load": load, "drain": drain, "slow": slow, "parent": parent, "fan_in": fan_in}
    asyncio.run(modes[mode](directory, backend))
