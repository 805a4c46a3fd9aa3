"""Tasks and handlers of the observability tests."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from opentelemetry import trace

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler
from tests.helpers import Probe

library = logging.getLogger("tests.observability.somelib")


class Chatty(EverTask):
    """Logs ``lines`` lines tagged with ``tag``, yielding between them."""

    tag: str
    lines: int = 3
    library_lines: int = 0


class ChattyHandler(EverTaskHandler[Chatty]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Chatty, cancellation: CancellationToken) -> None:
        for i in range(task.lines):
            self.logger.info("%s line %d", task.tag, i)
            await asyncio.sleep(0)  # let the other tasks interleave
            if i < task.library_lines:
                library.warning("library says %s", task.tag)
        self.probe.record("chatty", task.tag)


class SyncChatty(EverTask):
    tag: str


class SyncChattyHandler(EverTaskHandler[SyncChatty]):
    def handle(self, task: SyncChatty, cancellation: CancellationToken) -> None:
        self.logger.info("sync %s", task.tag)
        library.warning("sync library %s", task.tag)


class Levels(EverTask):
    pass


class LevelsHandler(EverTaskHandler[Levels]):
    async def handle(self, task: Levels, cancellation: CancellationToken) -> None:
        log = self.logger
        log.debug("debug %s", "d")
        log.info("info %s", "i")
        log.warning("warning %(name)s", {"name": "w"})
        log.error("error with extra", extra={"order_id": 42})
        try:
            raise KeyError("boom")
        except KeyError:
            log.exception("caught %s", "it")
        log.critical("bad %d", "not a number")  # malformed: stays raw


class Failing(EverTask):
    pass


class FailingHandler(EverTaskHandler[Failing]):
    async def handle(self, task: Failing, cancellation: CancellationToken) -> None:
        self.logger.info("about to fail")
        raise RuntimeError("handler failed on purpose")


class Hanging(EverTask):
    pass


class HangingHandler(EverTaskHandler[Hanging]):
    timeout = timedelta(milliseconds=100)

    async def handle(self, task: Hanging, cancellation: CancellationToken) -> None:
        self.logger.warning("waiting forever")
        await asyncio.Event().wait()


class Parked(EverTask):
    """Waits until cancelled."""


class ParkedHandler(EverTaskHandler[Parked]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Parked, cancellation: CancellationToken) -> None:
        self.probe.record("parked")
        await asyncio.Event().wait()


class Flaky(EverTask):
    key: str
    failures: int


class FlakyHandler(EverTaskHandler[Flaky]):
    attempts: dict[str, int] = {}

    async def handle(self, task: Flaky, cancellation: CancellationToken) -> None:
        key = task.key
        FlakyHandler.attempts[key] = FlakyHandler.attempts.get(key, 0) + 1
        self.logger.info("attempt %d", FlakyHandler.attempts[key])
        if FlakyHandler.attempts[key] <= task.failures:
            raise ConnectionError(f"attempt {FlakyHandler.attempts[key]} failed")


class Job(EverTask):
    """Used by the cross-process trace test."""

    n: int = 0


class JobHandler(EverTaskHandler[Job]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        self.logger.info("job %d", task.n)
        self.probe.record("job", task.n, trace.get_current_span().get_span_context().span_id)


ALL: list[type[EverTaskHandler[Any]]] = [
    ChattyHandler,
    SyncChattyHandler,
    LevelsHandler,
    FailingHandler,
    HangingHandler,
    ParkedHandler,
    FlakyHandler,
    JobHandler,
]
