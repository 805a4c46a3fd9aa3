"""Test helpers: a probe handlers report to, and polling with deadlines (never bare sleeps)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from dependency_injector import containers, providers

from evertask import EverTaskHost, EverTaskOptions, add_evertask
from evertask_abstractions import QueuedTaskStatus


class Probe:
    """Records what handlers do; tests await conditions on it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._changed = asyncio.Event()
        self.gates: dict[str, asyncio.Event] = {}

    def record(self, *item: Any) -> None:
        self.calls.append(item)
        self._changed.set()

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def names(self) -> list[Any]:
        return [c[0] for c in self.calls]

    def count(self, name: Any) -> int:
        return sum(1 for c in self.calls if c[0] == name)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout}s; calls={self.calls!r}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass


class Container(containers.DeclarativeContainer):
    probe = providers.Singleton(Probe)


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005
) -> None:
    """Poll a (sync or async) predicate until it is truthy, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def wait_status(
    host: EverTaskHost, task_id: uuid.UUID, *statuses: QueuedTaskStatus, timeout: float = 5.0
) -> QueuedTaskStatus:
    storage = host.storage
    assert storage is not None
    found: list[QueuedTaskStatus] = []

    async def check() -> bool:
        row = await storage.get(task_id)
        if row is not None and row.status in statuses:
            found.append(row.status)
            return True
        return False

    try:
        await wait_until(check, timeout)
    except AssertionError:
        row = await storage.get(task_id)
        raise AssertionError(
            f"task {task_id} did not reach {statuses}; it is {row.status if row else None}"
        ) from None
    return found[-1]


def build_host(
    handlers: Iterable[type],
    configure: Callable[[EverTaskOptions], object] | None = None,
    *,
    container: Any = None,
    storage: bool = True,
    builder: Callable[[Any], Any] | None = None,
) -> tuple[EverTaskHost, Any]:
    container = container if container is not None else Container()

    def setup(opt: EverTaskOptions) -> None:
        opt.register_handler(*handlers)
        opt.set_default_retry_policy(_no_retry())
        if configure is not None:
            configure(opt)

    b = add_evertask(container, setup)
    if storage:
        b.add_memory_storage()
    if builder is not None:
        builder(b)
    return b.build(), container


def _no_retry() -> Any:
    from evertask_abstractions import NoRetryPolicy

    return NoRetryPolicy()
