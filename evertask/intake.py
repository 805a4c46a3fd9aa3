"""How a persisted run that is due (fired by a timer, or recovered at start) enters its queue.

Each one goes through the storage's compare-and-set, which never revives a finished or
cancelled row, and through the in-flight registry, which keeps one delivery of an id at a
time in this process.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from .background import Background
from .clock import Clock
from .cluster import Node
from .inflight import CancelRegistry, InFlight
from .lifecycle import Lifecycle
from .queues import QueueManager
from .run import TaskRun
from .scheduler import TimerScheduler
from .storage.protocol import TaskStorage

__all__ = ["Intake"]

log = logging.getLogger("evertask.engine")

_RETRY_DELAY = timedelta(seconds=2)


class Intake:
    """Hands due runs to their queues (see the module docstring)."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        queues: QueueManager,
        storage: TaskStorage | None,
        clock: Clock,
        inflight: InFlight,
        cancels: CancelRegistry,
        scheduler: TimerScheduler,
        background: Background,
        claim_lead: timedelta,
        node: Node,
    ) -> None:
        self._lifecycle = lifecycle
        self._queues = queues
        self._storage = storage
        self._clock = clock
        self._inflight = inflight
        self._cancels = cancels
        self._scheduler = scheduler
        self._background = background
        self._claim_lead = claim_lead
        self._node = node

    def on_due(self, runs: list[TaskRun]) -> None:
        """The scheduler's callback: admit the runs it fired, in the background."""
        self._background.spawn(self.admit_due(runs))

    async def admit_due(self, runs: list[TaskRun]) -> None:
        """Admit timer-fired runs; a storage error puts a run back on its timer (2 s)."""
        if not self._lifecycle.running:
            return  # rows stay WaitingQueue and resume at the next start
        sem = asyncio.Semaphore(256)

        async def one(run: TaskRun) -> None:
            async with sem:
                await self._admit_due_one(run)

        await asyncio.gather(*(one(r) for r in runs))

    async def _admit_due_one(self, run: TaskRun) -> None:
        try:
            await self.admit(run)
        except Exception as exc:
            log.warning("Could not mark task %s Queued (%r); retrying in 2 s.", run.id, exc)
            self._scheduler.schedule(run, self._clock.now() + _RETRY_DELAY)

    async def admit(self, run: TaskRun, *, wait_for_slot: bool = False) -> bool:
        """Put ``run`` into its queue if its row may run now; return whether it was.

        A stale run (cancelled since) is dropped; a run whose id is in flight waits for
        that delivery to end. A persisted run is first marked Queued by compare-and-set.
        ``wait_for_slot`` (recovery) waits for a free slot first; otherwise (timers) the
        run never waits for capacity. Storage errors propagate.
        """
        tid = run.id
        if self._cancels.is_stale(run):
            return False
        if tid in self._inflight:
            self._inflight.follow(tid, lambda: self._background.spawn(self._admit_due_one(run)))
            return False
        queue = self._queues.for_run(run)
        if wait_for_slot:
            await queue.reserve()
        claimed = False
        try:
            claimed = await self._claim(run)
        finally:
            if wait_for_slot and not claimed:
                queue.release()  # the slot goes back: not claimed, or the claim failed
        if not claimed:
            return False
        self._inflight.add(tid)
        if wait_for_slot:
            queue.put_reserved(run)
            return True
        due = run.due_at
        if due is not None and self._claim_lead and due > self._clock.now():
            # handed over ahead of time (claimed): it starts at its time, not before
            self._clock.call_at(due, lambda: self._release_claimed(run))
            return True
        queue.put_overflow(run)
        return True

    async def _claim(self, run: TaskRun) -> bool:
        """Mark a persisted run's row Queued if this node owns it (compare-and-set); whether
        it may run here."""
        storage = self._storage
        if not run.persisted or storage is None:
            return True
        if not await storage.try_set_queued_if_recoverable(
            run.id, run.audit_level, owner=self._node.id
        ):  # (a row another node took over is not this node's to run)
            return False
        # the await let others act: another delivery, a cancel, or the host stopping
        return not (
            run.id in self._inflight or self._cancels.is_stale(run) or not self._lifecycle.running
        )

    def _release_claimed(self, run: TaskRun) -> None:
        if not self._lifecycle.running or self._cancels.is_stale(run):
            # its row is Queued: it resumes at the next start, or a cancel wrote its status
            self._inflight.discard(run.id)
            return
        self._queues.for_run(run).put_overflow(run)
