"""Tasks and handlers of the process-pool tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from evertask_abstractions import (
    CancellationToken,
    CpuBoundHandler,
    EverTask,
    EverTaskHandler,
    LinearRetryPolicy,
    OnRetry,
    TaskTimeoutError,
)
from tests.helpers import Probe
from tests.processes import work


class Fib(EverTask):
    n: int


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class FibHandler(CpuBoundHandler[Fib]):
    def __init__(self, probe: Probe) -> None:  # a dependency of the host side
        super().__init__()
        self.probe = probe

    @staticmethod
    def compute(task: Fib) -> tuple[int, int]:
        return fib(task.n), work.pid()

    async def on_computed(self, task: Fib, result: tuple[int, int]) -> None:
        self.probe.record("fib", task.n, *result)


class Square(EverTask):
    x: int


class SquareHandler(EverTaskHandler[Square]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Square, cancellation: CancellationToken) -> None:
        self.probe.record("square", await self.run_in_process(work.square, task.x))


class Failing(EverTask):
    message: str


class FailingHandler(EverTaskHandler[Failing]):
    retry_policy = LinearRetryPolicy(2, timedelta(milliseconds=10))

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Failing, cancellation: CancellationToken) -> None:
        self.probe.record("attempt")
        await self.run_in_process(work.fail, task.message)

    async def on_error(self, task_id: Any, exception: BaseException | None, message: Any) -> None:
        self.probe.record("on_error", exception)


class Chatty(EverTask):
    tag: str


class ChattyHandler(EverTaskHandler[Chatty]):
    async def handle(self, task: Chatty, cancellation: CancellationToken) -> None:
        self.logger.info("%s before", task.tag)
        await self.run_in_process(work.log_lines, task.tag, 2)
        self.logger.info("%s after", task.tag)


class RetryTimeouts:
    """A custom policy that retries timeouts (the built-in ones never do)."""

    def __init__(self, retries: int) -> None:
        self.retries = retries

    async def execute(self, attempt: Callable[[], Awaitable[None]], on_retry: OnRetry) -> None:
        for number in range(self.retries + 1):
            try:
                await attempt()
                return
            except TaskTimeoutError as exc:
                if number == self.retries:
                    raise
                await on_retry(number + 1, exc, timedelta(0))

    def should_retry(self, exception: BaseException) -> bool:
        return isinstance(exception, TaskTimeoutError)


class Stuck(EverTask):
    pass


class StuckHandler(EverTaskHandler[Stuck]):
    """Spins forever in a worker; its 0.3 s timeout terminates the worker, twice retried."""

    timeout = timedelta(seconds=0.3)
    retry_policy = RetryTimeouts(2)

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Stuck, cancellation: CancellationToken) -> None:
        self.probe.record("attempt")
        await self.run_in_process(work.spin_forever)


class Endless(EverTask):
    pass


class EndlessHandler(EverTaskHandler[Endless]):
    """Spins forever in a worker, no timeout: only a cancel ends it."""

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Endless, cancellation: CancellationToken) -> None:
        self.probe.record("started")
        try:
            await self.run_in_process(work.spin_forever)
        except asyncio.CancelledError:
            self.probe.record("cancelled", cancellation.is_cancelled)
            raise


class Traced(EverTask):
    pass


class TracedHandler(EverTaskHandler[Traced]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Traced, cancellation: CancellationToken) -> None:
        from opentelemetry import trace

        here = format(trace.get_current_span().get_span_context().trace_id, "032x")
        self.probe.record("trace", here, await self.run_in_process(work.trace_id))


ALL = [FibHandler, SquareHandler, FailingHandler, ChattyHandler, StuckHandler, EndlessHandler]
