"""EverTask's own driver (run with the project's interpreter): memory, SQLite or PostgreSQL.

Configuration: the defaults (audit level Full, lazy handler resolution, default retry
policy), ``max_degree_of_parallelism`` = the run's concurrency. For "enqueue" the default
queue is paused (public ``host.pause_queue``) and sized to hold every task, so dispatches
are measured without consumers; its default capacity is restored before the other workloads.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from dependency_injector import containers

from evertask import EverTaskOptions, add_evertask
from evertask.host import EverTaskHost
from evertask.version import __version__
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler

from . import _kit


class Noop(EverTask):
    """A task that only records that it ran."""

    tag: str
    i: int


class Sleep(EverTask):
    """A task that awaits ``sleep_ms`` and records when it started and ended."""

    tag: str
    i: int


class NoopHandler(EverTaskHandler[Noop]):
    """Records the execution."""

    async def handle(self, task: Noop, cancellation: CancellationToken) -> None:
        _kit.done(task.tag, task.i)


class SleepHandler(EverTaskHandler[Sleep]):
    """Awaits, then records the execution."""

    async def handle(self, task: Sleep, cancellation: CancellationToken) -> None:
        started = _kit.begin()
        await asyncio.sleep(_SLEEP)
        _kit.done(task.tag, task.i, started)


class Container(containers.DeclarativeContainer):
    """No services: the handlers need none."""


_SLEEP = 0.025


class Ours:
    """The adapter of :mod:`_kit` for EverTask on one storage."""

    in_process = True
    stoppable = True

    def __init__(self, request: _kit.Request) -> None:
        global _SLEEP
        _SLEEP = request.sleep_ms / 1000
        self.req = request
        self.backend = request.backend
        self.unsupported: dict[str, str] = {}
        self.host: EverTaskHost | None = None
        self._phase = 0
        self._default_capacity = EverTaskOptions().channel_capacity
        storage = {
            "memory": "in-memory storage",
            "sqlite": "SQLite storage (one file, WAL)",
            "postgres": "PostgreSQL storage",
        }[self.backend]
        self.settings = (
            f"{storage}; defaults (audit Full); max_degree_of_parallelism = concurrency; "
            "one process; for workload 1 the default queue is paused (`host.pause_queue`) "
            "and sized to hold every task"
        )
        self._check_storage()

    def _check_storage(self) -> None:
        if self.backend == "memory":
            return
        try:
            builder = add_evertask(None, lambda o: o.register_handler(NoopHandler))
            self._add_storage(builder, probe=True)
        except Exception as exc:
            reason = f"storage package not installed ({type(exc).__name__}: {exc})"
            self.unsupported = dict.fromkeys(_kit.WORKLOADS, reason[:240])

    def _add_storage(self, builder: Any, probe: bool = False) -> Any:
        if self.backend == "memory":
            return builder.add_memory_storage()
        if self.backend == "sqlite":
            path = os.path.join(self.req.workdir, f"evertask-{self._phase}.db")
            return builder.add_sqlite_storage(path)
        return builder.add_postgres_storage(self.req.pg_dsn)

    def versions(self) -> dict[str, str]:
        """EverTask (its own version: a checkout installs it as ``evertask-dev``) and the
        drivers its storage uses."""
        names: list[str] = []
        if self.backend == "sqlite":
            names += ["sqlalchemy", "aiosqlite"]
        elif self.backend == "postgres":
            names += ["sqlalchemy", "asyncpg"]
        return {"evertask": __version__, **_kit.package_versions(*names)}

    async def prepare(self, concurrency: int) -> None:
        """Build and start a host whose default queue is paused."""
        self._phase += 1
        capacity = self._default_capacity
        if self._phase == 1 and "enqueue" in self.req.workloads:
            capacity = max(capacity, self.req.enqueue + 16)  # "enqueue" runs paused

        def configure(o: EverTaskOptions) -> None:
            o.register_handler(NoopHandler, SleepHandler)
            o.set_max_degree_of_parallelism(concurrency)
            o.set_channel_capacity(capacity)

        self.host = self._add_storage(add_evertask(Container(), configure)).build()
        await self.host.start()
        await self.host.pause_queue("default")

    async def start(self) -> None:
        """Resume the default queue."""
        assert self.host is not None
        await self.host.resume_queue("default")

    def after_enqueue(self) -> None:
        """Back to the default capacity once the "enqueue" tasks have drained."""
        assert self.host is not None
        self.host.engine.queues.queues["default"].capacity = self._default_capacity

    async def close(self) -> None:
        """Stop the host."""
        if self.host is not None:
            await self.host.stop()
            self.host = None

    async def enqueue(self, tag: str, index: int, sleep: bool) -> None:
        """``dispatch`` one task."""
        assert self.host is not None
        task = Sleep(tag=tag, i=index) if sleep else Noop(tag=tag, i=index)
        await self.host.dispatcher.dispatch(task)

    async def schedule(self, tag: str, index: int, at: float) -> None:
        """``dispatch`` one task at an aware datetime."""
        assert self.host is not None
        await self.host.dispatcher.dispatch(Noop(tag=tag, i=index), datetime.fromtimestamp(at, UTC))


if __name__ == "__main__":
    _kit.run(Ours)
