"""Background coroutines owned by the engine (timer hand-overs), drained at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Background"]

log = logging.getLogger("evertask.engine")


class Background:
    """Keeps background work referenced until it ends; logs its failures."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.listener: Callable[[], None] | None = None
        """Called when a piece of work ends (the host's activity: see evertask.activity)."""

    @property
    def pending(self) -> int:
        """Background work not finished yet."""
        return len(self._tasks)

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Background work failed: %r", task.exception(), exc_info=task.exception())
        if self.listener is not None:
            self.listener()

    async def drain(self, timeout: float = 1.0) -> None:
        """Wait up to ``timeout`` seconds for background work, then cancel what is left."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
