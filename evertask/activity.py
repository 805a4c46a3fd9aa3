"""What a host has in hand now, and a way to wait until it can do nothing more before its
clock moves (the testing kit's ``run_until_idle``).

A host is *busy* while it holds work it will go on with by itself: runs queued or executing
(the in-flight ids), hand-overs in progress (background admissions of timer-fired runs and
of the continuations a release handed to this node), and unowned rows released here
(continuations, batch members) until this node's claim has taken them. An execution
waiting for a retry on the host's clock is *waiting for the clock*, not busy, and so are
runs waiting in a paused queue. A host whose work is all waiting for the clock (or for
nothing) is *idle*: only moving the clock, or a new dispatch, gives it something to do.

While someone waits, the parts that end work tell the activity (their listener is set only
then), so waiting costs nothing while the host is busy, and nobody waiting costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

from evertask_abstractions import RetryWait

from .background import Background
from .clock import Clock
from .inflight import InFlight
from .queues import QueueManager

__all__ = ["HostActivity"]


def _never() -> bool:
    return False


_RECHECK = 0.05
"""Seconds between two checks of a waiter that was not woken (a safety net: every part
that ends work wakes the waiters)."""


class HostActivity:
    """Counts what a host is doing and lets a caller wait until it is idle (see the module
    docstring). One per host: ``host.activity``."""

    def __init__(
        self, *, clock: Clock, inflight: InFlight, background: Background, queues: QueueManager
    ) -> None:
        self._clock = clock
        self._inflight = inflight
        self._background = background
        self._queues = queues
        self._parked: set[asyncio.Task[object] | None] = set()
        self._parked_count = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.claim_pending: Callable[[], bool] = _never
        """Whether rows released here wait for this node's claim (set by the engine: the
        cluster membership's ``claim_pending``); they count as busy."""
        self.retry_waits_on_clock = False
        """Make the wait before a retry a timer of the host's clock (a manual clock then
        moves through retry delays), instead of a real sleep. The testing kit sets it."""

    # -- state -----------------------------------------------------------------------------
    @property
    def busy(self) -> int:
        """Units of work the host goes on with by itself (0: idle)."""
        held = sum(len(q) for q in self._queues.queues.values() if q.paused)
        claims = 1 if self.claim_pending() else 0
        return (
            max(0, len(self._inflight) - self._parked_count - held)
            + self._background.pending
            + claims
        )

    @property
    def idle(self) -> bool:
        """Nothing to do until the clock moves or something new is dispatched."""
        return self.busy == 0

    @property
    def waiting_for_clock(self) -> int:
        """Executions waiting for a retry on the host's clock."""
        return self._parked_count

    def describe(self) -> list[str]:
        """One line per kind of work in hand (what keeps the host busy, and what waits)."""
        lines: list[str] = []
        parked = self._parked
        for execution in list(self._inflight.running.values()):
            run = execution.run
            name = run.descriptor.task_type_name
            state = "waiting for a retry on the clock" if execution.task in parked else "running"
            lines.append(f"{state}: {name} {run.id}")
        for name, queue in self._queues.queues.items():
            if len(queue):
                state = "paused, waiting" if queue.paused else "waiting"
                lines.append(f"queue {name!r}: {len(queue)} {state} to start")
        pending = self._background.pending
        if pending:
            lines.append(f"{pending} due run(s) being handed to their queue")
        if self.claim_pending():
            lines.append("released rows (continuations, batch members) waiting for the claim")
        return lines

    # -- waiting ---------------------------------------------------------------------------
    def changed(self) -> None:
        """Something ended: wake the waiters if the host is idle now."""
        if self._waiters and self.idle:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_idle(self) -> None:
        """Return once the host is idle (bound it with ``asyncio.timeout``)."""
        loop = asyncio.get_running_loop()
        while not self.idle:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            self._listen(True)
            try:
                async with asyncio.timeout(_RECHECK):
                    await waiter
            except TimeoutError:
                pass
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if not self._waiters:
                    self._listen(False)

    def _listen(self, on: bool) -> None:
        listener = self.changed if on else None
        self._inflight.listener = listener
        self._background.listener = listener

    # -- retries -----------------------------------------------------------------------------
    def retry_wait(self) -> RetryWait:
        """The wait before a retry that the host's executions use."""
        return self._wait_before_retry

    async def _wait_before_retry(self, delay: timedelta) -> None:
        if not self.retry_waits_on_clock:
            await asyncio.sleep(delay.total_seconds())
            return
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        woken = loop.create_future()
        fired = False

        def wake() -> None:  # busy again from the moment the timer fires
            nonlocal fired
            fired = True
            self._unpark(task)
            if not woken.done():
                woken.set_result(None)

        self._parked.add(task)
        self._parked_count += 1
        timer = self._clock.call_at(self._clock.now() + delay, wake)
        self.changed()
        try:
            await woken
        finally:
            if not fired:
                timer.cancel()
                self._unpark(task)
                self.changed()

    def _unpark(self, task: asyncio.Task[object] | None) -> None:
        self._parked.discard(task)
        self._parked_count -= 1
