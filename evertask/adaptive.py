"""Adaptive throttling: a node stops taking new work while its process is overloaded.

Every ``check_interval`` the host samples its process's CPU (CPU seconds per wall-clock
second over the interval: 1.0 is one core kept busy) and resident memory. When a sample is
at or above a configured threshold, the node **pauses**: its queues start no new run
(running ones finish; dispatches are still accepted and persisted) and, in a cluster, it
claims no rows of other nodes. It **resumes** once every measure is below
``resume_ratio`` times its threshold (hysteresis), so it does not flap around the line.

The default probe reads the process's CPU time from ``os.times()`` and its resident set
from ``/proc/self/statm`` (Linux), falling back to the peak resident set
(``resource.getrusage``) elsewhere; no third-party package is needed. Any object with a
``sample()`` method returning a :class:`ResourceSample` can replace it (tests use a fake).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .options import AdaptiveThrottlingOptions
from .queues import QueueManager
from .resources import ProcessResourceProbe, ResourceProbe, ResourceSample

__all__ = [
    "AdaptiveThrottle",
    "ProcessResourceProbe",
    "ResourceProbe",
    "ResourceSample",
    "ThrottleState",
]

log = logging.getLogger("evertask.throttling")


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """What adaptive throttling sees and does now (``host.adaptive_throttling.state``)."""

    paused: bool
    reason: str | None
    """``"cpu"``, ``"memory"`` or ``"cpu,memory"`` while paused."""
    since: datetime | None
    """When the current pause began."""
    cpu: float | None
    memory_bytes: int | None
    cpu_threshold: float | None
    memory_threshold_bytes: int | None
    pauses: int
    """Pauses since the host started."""


class AdaptiveThrottle:
    """Samples the process every check interval and holds or releases the node's work."""

    def __init__(
        self,
        options: AdaptiveThrottlingOptions,
        queues: QueueManager,
        now: Callable[[], datetime],
        on_change: Callable[[ThrottleState], None],
        set_claiming: Callable[[bool], None],
    ) -> None:
        self.options = options
        self._queues = queues
        self._now = now
        self._on_change = on_change
        self._set_claiming = set_claiming
        self.probe: ResourceProbe = options.probe or ProcessResourceProbe()
        self.paused = False
        self.reason: str | None = None
        self.since: datetime | None = None
        self.last: ResourceSample | None = None
        self.pauses = 0
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Begin sampling (the host started)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="evertask-adaptive-throttling"
            )

    async def stop(self) -> None:
        """Stop sampling and release the queues (the host stops)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.paused:
            self._resume(announce=False)

    async def _loop(self) -> None:
        interval = self.options.check_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:  # a broken probe never stops the node's work
                log.exception("Adaptive throttling: the resource probe failed.")

    # -- one check -------------------------------------------------------------------------
    def check(self, sample: ResourceSample | None = None) -> bool:
        """Sample (or use ``sample``), pause or resume; return whether the node is paused."""
        sample = self.probe.sample() if sample is None else sample
        self.last = sample
        opts = self.options
        over = []
        if opts.cpu_threshold is not None and sample.cpu >= opts.cpu_threshold:
            over.append("cpu")
        if (
            opts.memory_threshold_bytes is not None
            and sample.memory_bytes >= opts.memory_threshold_bytes
        ):
            over.append("memory")
        if not self.paused:
            if over:
                self._pause(",".join(over))
            return self.paused
        ratio = opts.resume_ratio
        below = (opts.cpu_threshold is None or sample.cpu < opts.cpu_threshold * ratio) and (
            opts.memory_threshold_bytes is None
            or sample.memory_bytes < opts.memory_threshold_bytes * ratio
        )
        if below:
            self._resume(announce=True)
        elif over and ",".join(over) != self.reason:
            self.reason = ",".join(over)
        return self.paused

    def _pause(self, reason: str) -> None:
        self.paused = True
        self.reason = reason
        self.since = self._now()
        self.pauses += 1
        for queue in self._queues.queues.values():
            queue.throttle(True)
        self._set_claiming(False)
        last = self.last
        log.warning(
            "Adaptive throttling: this node takes no new work (%s above its threshold: "
            "cpu %.2f, memory %d bytes); running tasks finish.",
            reason,
            last.cpu if last else float("nan"),
            last.memory_bytes if last else -1,
        )
        self._on_change(self.state)

    def _resume(self, *, announce: bool) -> None:
        self.paused = False
        self.reason = None
        self.since = None
        for queue in self._queues.queues.values():
            queue.throttle(False)
        self._set_claiming(True)
        if announce:
            log.info("Adaptive throttling: resources are below their thresholds; resuming.")
            self._on_change(self.state)

    @property
    def state(self) -> ThrottleState:
        """A snapshot of the throttle (for monitoring)."""
        last = self.last
        return ThrottleState(
            paused=self.paused,
            reason=self.reason,
            since=self.since,
            cpu=None if last is None else last.cpu,
            memory_bytes=None if last is None else last.memory_bytes,
            cpu_threshold=self.options.cpu_threshold,
            memory_threshold_bytes=self.options.memory_threshold_bytes,
            pauses=self.pauses,
        )
