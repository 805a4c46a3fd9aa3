"""Tasks and handlers shared by the engine tests; they report to the Probe."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler
from tests.helpers import Probe


class Ping(EverTask):
    n: int = 0


class PingHandler(EverTaskHandler[Ping]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Ping, cancellation: CancellationToken) -> None:
        self.probe.record("ping", task.n)


class Critical(EverTask):
    n: int = 0


class CriticalHandler(EverTaskHandler[Critical]):
    queue_name = "critical"

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Critical, cancellation: CancellationToken) -> None:
        self.probe.record(
            "critical", task.n, asyncio.current_task().get_name() if asyncio.current_task() else ""
        )


class Nowhere(EverTask):
    pass


class NowhereHandler(EverTaskHandler[Nowhere]):
    queue_name = "does-not-exist"

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Nowhere, cancellation: CancellationToken) -> None:
        self.probe.record("nowhere")


class Blocker(EverTask):
    name: str


class BlockerHandler(EverTaskHandler[Blocker]):
    """Waits on the probe gate named like the task; records start and end."""

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Blocker, cancellation: CancellationToken) -> None:
        self.probe.record("start", task.name)
        await self.probe.gate(task.name).wait()
        self.probe.record("end", task.name)


class Flaky(EverTask):
    fail_times: int
    error: str = "ConnectionError"
    key: str = "flaky"


_ERRORS: dict[str, type[Exception]] = {
    "ConnectionError": ConnectionError,
    "ValueError": ValueError,
    "KeyError": KeyError,
    "RuntimeError": RuntimeError,
}


class FlakyHandler(EverTaskHandler[Flaky]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Flaky, cancellation: CancellationToken) -> None:
        attempt = self.probe.count(("attempt", task.key)) + 1
        self.probe.record(("attempt", task.key), attempt)
        if attempt <= task.fail_times:
            raise _ERRORS[task.error](f"attempt {attempt} failed")
        self.probe.record("ok", task.key)

    async def on_retry(
        self, task_id: uuid.UUID, attempt: int, exception: BaseException, delay: timedelta
    ) -> None:
        self.probe.record("on_retry", attempt, type(exception).__name__, delay)

    async def on_error(
        self, task_id: uuid.UUID, exception: BaseException | None, message: str | None
    ) -> None:
        self.probe.record("on_error", type(exception).__name__, str(exception))


class Slow(EverTask):
    seconds: float


class SlowHandler(EverTaskHandler[Slow]):
    timeout = timedelta(milliseconds=100)

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Slow, cancellation: CancellationToken) -> None:
        self.probe.record("slow-start")
        try:
            await asyncio.sleep(task.seconds)
        except asyncio.CancelledError:
            self.probe.record("slow-cancelled", cancellation.is_cancelled)
            raise
        self.probe.record("slow-end")

    async def on_error(
        self, task_id: uuid.UUID, exception: BaseException | None, message: str | None
    ) -> None:
        self.probe.record("on_error", type(exception).__name__, message)


class SyncWork(EverTask):
    name: str
    spin_seconds: float = 0.0


class SyncWorkHandler(EverTaskHandler[SyncWork]):
    """A synchronous handler: runs in a worker thread; honours the token cooperatively."""

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    def handle(self, task: SyncWork, cancellation: CancellationToken) -> None:
        self.probe.calls.append(("sync-start", task.name, threading.current_thread().name))
        deadline = time.monotonic() + task.spin_seconds
        while time.monotonic() < deadline:
            if cancellation.is_cancelled:
                self.probe.calls.append(("sync-cancelled", task.name))
                cancellation.raise_if_cancelled()
            time.sleep(0.001)
        self.probe.calls.append(("sync-end", task.name))


class Hooked(EverTask):
    fail: str = ""  # "handle", "on_started", "on_completed", "on_error", "dispose"


class HookedHandler(EverTaskHandler[Hooked]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe
        self.fail = ""

    def _maybe(self, where: str) -> None:
        self.probe.record(where)
        if where in self.fail.split(","):
            raise RuntimeError(f"{where} exploded")

    async def on_started(self, task_id: uuid.UUID) -> None:
        self._maybe("on_started")

    async def handle(self, task: Hooked, cancellation: CancellationToken) -> None:
        self.fail = task.fail
        self._maybe("handle")

    async def on_completed(self, task_id: uuid.UUID) -> None:
        self._maybe("on_completed")

    async def on_error(
        self, task_id: uuid.UUID, exception: BaseException | None, message: str | None
    ) -> None:
        self._maybe("on_error")

    async def dispose(self) -> None:
        self._maybe("dispose")


class NotSerializable(EverTask):
    model_config = {"arbitrary_types_allowed": True, "frozen": True}
    thing: Any


class NotSerializableHandler(EverTaskHandler[NotSerializable]):
    async def handle(self, task: NotSerializable, cancellation: CancellationToken) -> None:
        return None


class Unregistered(EverTask):
    pass


ALL = [
    PingHandler,
    CriticalHandler,
    NowhereHandler,
    BlockerHandler,
    FlakyHandler,
    SlowHandler,
    SyncWorkHandler,
    HookedHandler,
    NotSerializableHandler,
]
