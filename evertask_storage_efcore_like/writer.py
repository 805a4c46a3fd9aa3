"""Group commit: concurrent writes share transactions, each caller waits for its commit.

Callers submit operations and await their futures. One writer task takes everything
pending, lets the event loop run while more operations keep arriving (at most
``max_delay`` seconds, at most ``max_batch`` operations), executes the batch in one
transaction and resolves each future with its own outcome. While a batch commits, the
next one accumulates, so batches grow with the load and a lone write waits for no timer.

With several executors (each on its own connection, for servers that take concurrent
writers), up to that many batches are in flight at once: the database commits one while
the application prepares the next. Callers await each write, so two writes of one caller
are never in flight together.

If a whole batch fails, each of its operations is retried alone, so an error (a task
key conflict, a bad value) reaches only the caller whose operation caused it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from .errors import StorageClosedError, is_lock_conflict
from .ops import Op

__all__ = ["BatchExecutor", "GroupCommitWriter"]

CONFLICT_RETRIES = 3
"""Times a write the database rolled back as a deadlock's victim runs again in a
transaction of its own (after the batch it failed in, which may have held it alone)."""

log = logging.getLogger("evertask.storage.writer")


class BatchExecutor(Protocol):
    """Runs a batch of operations in one transaction (see :mod:`.ops`)."""

    async def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Execute ``ops`` atomically; return one outcome per op (a value or an exception
        instance for an op that failed on its own); raise if the whole batch failed."""
        ...

    def map_error(self, op: Op, error: BaseException) -> BaseException:
        """The error to hand to the caller of ``op`` when it failed alone with ``error``."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


class GroupCommitWriter:
    """Collects write operations from many coroutines and commits them in batches."""

    def __init__(
        self,
        executor: BatchExecutor | Sequence[BatchExecutor],
        *,
        max_batch: int = 512,
        max_delay: float = 0.0005,
        name: str = "evertask-writer",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1.")
        if max_delay < 0:
            raise ValueError("max_delay must not be negative.")
        executors = [executor] if not isinstance(executor, Sequence) else list(executor)
        if not executors:
            raise ValueError("At least one executor is needed.")
        self._executors = executors
        self._idle = list(reversed(executors))
        self._in_flight: set[asyncio.Task[None]] = set()
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._name = name
        # submitted operations no batch has taken yet, by their callers' futures, in
        # submission order (a dict: a withdrawal takes one out without a scan)
        self._pending: dict[asyncio.Future[Any], Op] = {}
        self._wakeup: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        """Batches committed (or attempted) so far."""
        self.operations = 0
        """Operations executed so far."""

    @property
    def running(self) -> bool:
        """Whether the writer accepts operations."""
        return self._task is not None and not self._closing

    def start(self) -> None:
        """Start the writer task on the running loop."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(loop), name=self._name)

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op``; the returned future resolves after its transaction commits."""
        task = self._task
        if task is None or self._closing:
            raise StorageClosedError(
                "The storage is not open; start the host (or call storage.open()) first."
            )
        # the writer's loop from its task: asyncio.get_running_loop() costs a getpid()
        # system call on Python 3.11, and every write comes here
        future: asyncio.Future[Any] = task.get_loop().create_future()
        self._pending[future] = op
        self._wake()
        return future

    def withdraw(self, future: asyncio.Future[Any]) -> Op | None:
        """Take back the operation of ``future`` if no batch has taken it yet.

        Returns the operation and resolves its future with ``None``; ``None`` when it is
        already being executed (or done), in which case the caller awaits it as usual.
        """
        op = self._pending.pop(future, None)
        if op is not None:
            future.set_result(None)
        return op

    async def close(self) -> None:
        """Commit everything already submitted, then stop."""
        task = self._task
        if task is None:
            return
        self._closing = True
        self._wake()
        try:
            await task
        finally:
            self._task = None
            self._fail_pending(StorageClosedError("The storage was closed."))

    # -- internals -------------------------------------------------------------------------
    def _fail_pending(self, error: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for future in pending:
            if not future.done():
                future.set_exception(error)

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _sleep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wakeup = loop.create_future()
        try:
            await self._wakeup
        finally:
            self._wakeup = None

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while True:
                if not self._pending or not self._idle:
                    if self._closing and not self._pending:
                        break
                    await self._sleep(loop)
                    continue
                await self._gather()
                futures, ops = self._take()
                executor = self._idle.pop()
                if len(self._executors) == 1:  # one connection: run inline, no task needed
                    await self._execute(executor, ops, futures)
                    self._idle.append(executor)
                    continue
                task = loop.create_task(self._execute(executor, ops, futures))
                self._in_flight.add(task)
                task.add_done_callback(functools.partial(self._done, executor=executor))
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
        except asyncio.CancelledError:
            for task in self._in_flight:
                task.cancel()
            self._fail_pending(StorageClosedError("The storage writer was cancelled."))
            raise

    def _done(self, task: asyncio.Task[None], *, executor: BatchExecutor) -> None:
        self._in_flight.discard(task)
        self._idle.append(executor)
        self._wake()

    async def _gather(self) -> None:
        """Let the loop run while new operations keep arriving (bounded by time and size)."""
        if self._max_delay == 0:
            return
        deadline = time.perf_counter() + self._max_delay
        pending = self._pending
        while len(pending) < self._max_batch:
            before = len(pending)
            await asyncio.sleep(0)
            if len(pending) == before or time.perf_counter() >= deadline:
                return

    def _take(self) -> tuple[list[asyncio.Future[Any]], list[Op]]:
        """The oldest pending operations, at most ``max_batch``, and their futures."""
        pending = self._pending
        if len(pending) <= self._max_batch:
            self._pending = {}
        else:
            pending = {f: pending.pop(f) for f in list(itertools.islice(pending, self._max_batch))}
        return list(pending), list(pending.values())

    async def _execute(
        self, executor: BatchExecutor, ops: list[Op], futures: list[asyncio.Future[Any]]
    ) -> None:
        self.batches += 1
        self.operations += len(ops)
        try:
            outcomes = await executor.execute(ops)
        except asyncio.CancelledError:
            for future in futures:
                if not future.done():
                    future.set_exception(StorageClosedError("The storage writer was cancelled."))
            raise
        except Exception as error:
            if len(ops) == 1 and not is_lock_conflict(error):
                outcomes = [executor.map_error(ops[0], error)]
            else:
                log.debug(
                    "A batch of %d writes failed (%r); retrying them one by one.", len(ops), error
                )
                outcomes = [await self._execute_alone(executor, op) for op in ops]
        for future, outcome in zip(futures, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    @staticmethod
    async def _execute_alone(executor: BatchExecutor, op: Op) -> Any:
        """One operation in a transaction of its own; a deadlock's victim (rolled back
        whole by the database) runs again up to :data:`CONFLICT_RETRIES` times."""
        attempt = 0
        while True:
            try:
                return (await executor.execute([op]))[0]
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if attempt < CONFLICT_RETRIES and is_lock_conflict(error):
                    attempt += 1
                    log.debug("A write lost a deadlock (%r); running it again.", error)
                    continue
                return executor.map_error(op, error)
