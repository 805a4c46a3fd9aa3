"""The throttle gate: keyed rate limits and per-handler concurrency, between queue and handler.

A run of a handler that declares ``rate_limit`` or ``max_concurrency`` passes the gate
when a lane picks it up, before anything is written for it:

- ``PROCEED``: it runs now (a start under budget costs a float update, no lock, no I/O);
- ``DEFER``: the budget is spent; it is parked in the scheduler at its reserved slot and
  the lane moves on. Nothing is written: its row stays Queued; at the slot it comes back
  through the scheduler (the usual compare-and-set that never revives a cancelled row)
  and redeems its reservation;
- ``REJECT``: no slot it may wait for (beyond the horizon, ``DISCARD``, or past a
  recurring series' ``run_until``): a one-shot task fails with ``RateLimitRejectedError``,
  a recurring occurrence is skipped;
- ``WAIT`` (``max_concurrency``): as many runs of its handler as allowed run already; it
  waits here without a lane and starts on the lane of the run it replaces.

In cluster mode (a storage shared by several nodes) the limiter is the storage's
(:class:`~evertask.cluster_limits.StorageKeyedRateLimiter`) and a ``max_concurrency``
permit is also a slot in the storage (:class:`~evertask.cluster_limits.ClusterConcurrency`):
runs waiting for one are retried every cluster poll interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from evertask_abstractions import RateLimitRejectedError

from .clock import Clock
from .cluster_limits import ClusterConcurrency, StorageKeyedRateLimiter
from .events import EventBus, EventKind, TaskEvent
from .inflight import CancelRegistry
from .options import RateLimiterOptions
from .ratelimit import (
    PROCEED,
    InMemoryKeyedRateLimiter,
    KeyedRateLimiter,
    RateLimitDecision,
    RateLimitOutcome,
)
from .registry import HandlerDescriptor
from .run import TaskRun
from .scheduler import TimerScheduler

__all__ = ["Admission", "ParkedTask", "RateLimitGate"]

log = logging.getLogger("evertask.ratelimit")

EVENT_WINDOW = 30.0
"""Deferral events are aggregated per (task type, key) over this many seconds."""
ROOM_WAIT = 5.0
"""How long a lane waits for room in a full parking lot before parking anyway."""


class Admission(Enum):
    """The gate's verdict for one run."""

    PROCEED = 0
    DEFER = 1
    REJECT = 2
    WAIT = 3


@dataclass(frozen=True, slots=True)
class ParkedTask:
    """A run parked until its reserved slot (``host.rate_limiter.parked_snapshot()``)."""

    task_id: uuid.UUID
    task_type: str
    queue_name: str
    rate_limit_key: str
    until: datetime
    parked_at: datetime


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class RateLimitGate:
    """The host's throttle gate and its introspection (``host.rate_limiter``)."""

    def __init__(
        self,
        *,
        options: RateLimiterOptions,
        clock: Clock,
        scheduler: TimerScheduler,
        events: EventBus,
        cancels: CancelRegistry,
        default_capacity: int,
        limiter: KeyedRateLimiter | None = None,
        concurrency: ClusterConcurrency | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self._options = options
        self.limiter: KeyedRateLimiter = (
            options.limiter or limiter or InMemoryKeyedRateLimiter(options.max_tracked_keys)
        )
        self.concurrency = concurrency
        """The cluster-wide ``max_concurrency`` slots (``None``: per node)."""
        self._poll_interval = poll_interval
        self._poller: asyncio.Task[None] | None = None
        self.on_ready: Callable[[TaskRun], None] | None = None
        """Starts a waiting run that got a cluster-wide permit (set by the executor)."""
        self._async = self.limiter.is_async or concurrency is not None
        self._clock = clock
        self._scheduler = scheduler
        self._events = events
        self._cancels = cancels
        self.max_parked_tasks = options.max_parked_tasks or min(5000, 2 * default_capacity)
        self._parked: dict[uuid.UUID, ParkedTask] = {}
        self._room: deque[asyncio.Future[None]] = deque()
        self._running: dict[HandlerDescriptor, int] = {}
        self._waiting: dict[HandlerDescriptor, deque[TaskRun]] = {}
        self._warned: set[str] = set()
        self._windows: dict[tuple[str, str], list[float]] = {}

    # -- admission -------------------------------------------------------------------------
    def admit(self, run: TaskRun) -> tuple[Admission, RateLimitDecision | None]:
        """The verdict for a run a lane picked up (in-memory limiters: no await)."""
        desc = run.descriptor
        policy = desc.rate_limit
        if policy is not None:
            key = run.rate_key
            if key is None:
                key = self._resolve_key(run)
            if key:
                decision = self.limiter.acquire(
                    desc.task_type_name,
                    key,
                    run.id,
                    policy,
                    self._clock.now().timestamp(),
                    not_after=self._not_after(run),
                )
                if decision is not PROCEED:
                    return self._verdict(decision)
        if desc.max_concurrency is not None and not self._take_permit(run):
            return Admission.WAIT, None
        run.admitted = True
        return Admission.PROCEED, None

    async def admit_async(self, run: TaskRun) -> tuple[Admission, RateLimitDecision | None]:
        """:meth:`admit` with a limiter that does I/O."""
        desc = run.descriptor
        policy = desc.rate_limit
        if policy is not None:
            key = run.rate_key if run.rate_key is not None else self._resolve_key(run)
            if key:
                decision = await self.limiter.acquire_async(
                    desc.task_type_name,
                    key,
                    run.id,
                    policy,
                    self._clock.now().timestamp(),
                    not_after=self._not_after(run),
                )
                if decision.outcome is not RateLimitOutcome.PROCEED:
                    return self._verdict(decision)
        if desc.max_concurrency is not None:
            if self.concurrency is not None:
                if not await self._take_cluster_permit(run):
                    return Admission.WAIT, None
            elif not self._take_permit(run):
                return Admission.WAIT, None
        run.admitted = True
        return Admission.PROCEED, None

    @property
    def is_async(self) -> bool:
        """Whether :meth:`admit_async` must be used."""
        return self._async

    @staticmethod
    def _verdict(decision: RateLimitDecision) -> tuple[Admission, RateLimitDecision]:
        if decision.outcome is RateLimitOutcome.DEFER:
            return Admission.DEFER, decision
        return Admission.REJECT, decision

    @staticmethod
    def _not_after(run: TaskRun) -> float | None:
        schedule = run.schedule
        if schedule is None or schedule.run_until is None or not schedule.is_recurring:
            return None
        return schedule.run_until.timestamp()

    def _resolve_key(self, run: TaskRun) -> str:
        """The run's key ("" : ungated), cached on the run; long keys become their SHA-256."""
        desc = run.descriptor
        selector = desc.key_selector
        try:
            raw = (
                selector(run.task)
                if selector is not None
                else getattr(run.task, "rate_limit_key", None)
            )
        except Exception as exc:
            log.warning(
                "The rate-limit key of task %s (%s) could not be computed (%r); it runs "
                "without a rate limit.",
                run.id,
                desc.task_type_name,
                exc,
                exc_info=exc,
            )
            raw = None
            self._warned.add(desc.task_type_name)  # the empty-key warning would mislead
        key = "" if raw is None else raw if isinstance(raw, str) else str(raw)
        if not key:
            if desc.task_type_name not in self._warned:
                self._warned.add(desc.task_type_name)
                log.warning(
                    "%s declares a rate limit but task %s has no rate-limit key, so it runs "
                    "without one (logged once per task type). Give the task a rate_limit_key "
                    "field or property, or override %s.get_rate_limit_key.",
                    desc.handler_type_name,
                    run.id,
                    desc.handler_class.__qualname__,
                )
        elif len(key) > self._options.max_key_length:
            key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        run.rate_key = key
        return key

    # -- deferral --------------------------------------------------------------------------
    async def park(self, run: TaskRun, decision: RateLimitDecision) -> None:
        """Park ``run`` in the scheduler until its slot (no storage write)."""
        assert decision.slot is not None
        if len(self._parked) >= self.max_parked_tasks and run.id not in self._parked:
            await self._wait_for_room()
        if self._cancels.is_stale(run):
            self.forget(run.id)
            return
        now = self._clock.now()
        until = max(_instant(decision.slot), now)
        key = run.rate_key or ""
        self._parked[run.id] = ParkedTask(
            task_id=run.id,
            task_type=run.descriptor.task_type_name,
            queue_name=run.queue_name,
            rate_limit_key=key,
            until=until,
            parked_at=now,
        )
        self._scheduler.schedule(run, until)
        if self._options.emit_deferral_events and self._events.has_subscribers:
            self._deferred_event(run, key, until, now)

    async def _wait_for_room(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._room.append(fut)
        try:
            async with asyncio.timeout(ROOM_WAIT):
                await fut
        except TimeoutError:
            log.warning(
                "%d tasks are parked for their rate-limit slot (max_parked_tasks); parking "
                "one more after waiting %g s for room.",
                len(self._parked),
                ROOM_WAIT,
            )
        finally:
            if fut in self._room:
                self._room.remove(fut)

    def unparked(self, runs: list[TaskRun]) -> None:
        """The scheduler fired these runs: those parked here leave the parking lot."""
        parked = self._parked
        if not parked:
            return
        for run in runs:
            if parked.pop(run.id, None) is not None:
                self._make_room()

    def forget(self, task_id: uuid.UUID) -> None:
        """``task_id`` was cancelled: drop its parked entry and its reservation."""
        if self._parked.pop(task_id, None) is not None:
            self._make_room()
        self.limiter.forget(task_id)

    def _make_room(self) -> None:
        while self._room and len(self._parked) < self.max_parked_tasks:
            fut = self._room.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _deferred_event(self, run: TaskRun, key: str, until: datetime, now: datetime) -> None:
        desc = run.descriptor
        stamp = now.timestamp()
        windows = self._windows
        scope = (desc.task_type_name, key)
        window = windows.get(scope)
        if window is not None and stamp - window[0] < EVENT_WINDOW:
            window[1] += 1
            return
        more = int(window[1]) if window is not None else 0
        if len(windows) > 10_000:  # forget closed windows
            for old in [s for s, w in windows.items() if stamp - w[0] >= EVENT_WINDOW]:
                del windows[old]
        windows[scope] = [stamp, 0.0]
        message = (
            f"Task with id {run.id} was deferred by its rate limit (key {key!r}) "
            f"until {until.isoformat()}."
        )
        if more:
            message += f" {more} more deferral(s) of this key in the previous window."
        self._events.publish(
            TaskEvent(
                task_id=run.id,
                timestamp=now,
                severity="Information",
                kind=EventKind.RATE_LIMITED,
                task_type=desc.task_type_name,
                handler_type=desc.handler_type_name,
                parameters=run.task.model_dump_json(),
                message=message,
                queue_name=run.queue_name,
                extra={"rateLimitKey": key, "throttledUntil": until.isoformat(), "more": more},
            )
        )

    def rejection(self, run: TaskRun, decision: RateLimitDecision) -> RateLimitRejectedError:
        """The error a rejected run fails with."""
        policy = run.descriptor.rate_limit
        assert policy is not None
        slot = None if decision.slot is None else _instant(decision.slot)
        return RateLimitRejectedError(run.rate_key or "", slot, policy)

    # -- retries ---------------------------------------------------------------------------
    def throttled_attempts(
        self, run: TaskRun, attempt: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """``attempt`` whose retries (every call after the first) draw from the budget:
        a retry waits for its slot (in its lane, like a retry delay); a slot it may not
        wait for fails it with ``RateLimitRejectedError`` (never retried)."""
        first = True

        async def throttled() -> None:
            nonlocal first
            if first:
                first = False
            else:
                await self._retry_slot(run)
            await attempt()

        return throttled

    async def _retry_slot(self, run: TaskRun) -> None:
        desc = run.descriptor
        policy = desc.rate_limit
        key = run.rate_key
        assert policy is not None and key
        while True:
            now = self._clock.now().timestamp()
            decision = await self.limiter.acquire_async(
                desc.task_type_name, key, run.id, policy, now, not_after=self._not_after(run)
            )
            if decision.outcome is RateLimitOutcome.PROCEED:
                return
            if decision.outcome is RateLimitOutcome.REJECT:
                raise self.rejection(run, decision)
            assert decision.slot is not None
            await self._sleep_until(_instant(decision.slot))

    async def _sleep_until(self, when: datetime) -> None:
        fut = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = self._clock.call_at(when, wake)
        try:
            await fut
        finally:
            handle.cancel()

    # -- concurrency -----------------------------------------------------------------------
    def _take_permit(self, run: TaskRun) -> bool:
        desc = run.descriptor
        limit = desc.max_concurrency
        assert limit is not None
        running = self._running.get(desc, 0)
        if running < limit:
            self._running[desc] = running + 1
            run.permit = True
            return True
        waiting = self._waiting.get(desc)
        if waiting is None:
            waiting = self._waiting[desc] = deque()
        waiting.append(run)
        return False

    async def _take_cluster_permit(self, run: TaskRun) -> bool:
        """A permit that is also a slot in the storage (cluster-wide ``max_concurrency``)."""
        desc = run.descriptor
        limit = desc.max_concurrency
        assert limit is not None and self.concurrency is not None
        waiting = self._waiting.get(desc)
        if not waiting and self._running.get(desc, 0) < limit:
            scope = ClusterConcurrency.scope(desc.handler_type_name)
            if await self.concurrency.acquire(scope, limit):
                self._running[desc] = self._running.get(desc, 0) + 1
                run.permit = True
                return True
        waiting = self._waiting.get(desc)  # (again: another admission may have made it)
        if waiting is None:
            waiting = self._waiting[desc] = deque()
        waiting.append(run)
        self._poll_soon()
        return False

    def _poll_soon(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_permits(), name="evertask-concurrency-poll"
            )

    async def _poll_permits(self) -> None:
        """While runs wait for a cluster-wide permit: try for slots every poll interval."""
        concurrency = self.concurrency
        assert concurrency is not None
        while any(self._waiting.values()):
            await asyncio.sleep(self._poll_interval)
            for desc, waiting in list(self._waiting.items()):
                limit = desc.max_concurrency
                assert limit is not None
                scope = ClusterConcurrency.scope(desc.handler_type_name)
                while waiting and self._running.get(desc, 0) < limit:
                    if not await concurrency.acquire(scope, limit):
                        break
                    if not waiting:  # (emptied meanwhile: a stop)
                        concurrency.release(scope)
                        break
                    follow = waiting.popleft()
                    self._running[desc] = self._running.get(desc, 0) + 1
                    follow.permit = True
                    follow.admitted = True
                    if self.on_ready is not None:
                        self.on_ready(follow)

    def release(self, run: TaskRun) -> TaskRun | None:
        """``run`` ended: its permit goes to the next waiting run of its handler (returned:
        start it), or back to the pool (cluster-wide: its slot goes back to the storage)."""
        run.permit = False
        desc = run.descriptor
        waiting = self._waiting.get(desc)
        if waiting:
            follow = waiting.popleft()
            follow.permit = True
            follow.admitted = True
            return follow
        self._running[desc] -= 1
        if self.concurrency is not None:
            self.concurrency.release(ClusterConcurrency.scope(desc.handler_type_name))
        return None

    def clear(self) -> None:
        """The host stopped: forget parked and waiting runs (their rows resume at the next
        start) and the permits (a departed node's cluster-wide slots are free again)."""
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        self._parked.clear()
        self._waiting.clear()
        self._running.clear()
        while self._room:
            fut = self._room.popleft()
            if not fut.done():
                fut.set_result(None)

    # -- introspection ---------------------------------------------------------------------
    @property
    def cluster_wide(self) -> bool:
        """Whether budgets or ``max_concurrency`` permits are shared through the storage."""
        return self.concurrency is not None or isinstance(self.limiter, StorageKeyedRateLimiter)

    @property
    def parked_task_count(self) -> int:
        """Runs parked until their reserved slot now."""
        return len(self._parked)

    @property
    def tracked_key_count(self) -> int:
        """Keys the limiter holds state for."""
        return self.limiter.tracked_key_count

    @property
    def fail_open_count(self) -> int:
        """Starts let through without a budget because the limiter tracked too many keys."""
        return self.limiter.fail_open_count

    def parked_snapshot(self) -> list[ParkedTask]:
        """The parked runs, earliest slot first."""
        return sorted(self._parked.values(), key=lambda p: p.until)

    def throttled_until(self, task_id: uuid.UUID) -> datetime | None:
        """When a parked (or retry-waiting) task may start, or ``None``."""
        parked = self._parked.get(task_id)
        if parked is not None:
            return parked.until
        slot = self.limiter.reserved_slot(task_id)
        return None if slot is None else _instant(slot)

    def running_count(self, handler: type) -> int:
        """Runs of a handler class holding a ``max_concurrency`` permit now."""
        return next((n for d, n in self._running.items() if d.handler_class is handler), 0)

    def waiting_count(self, handler: type) -> int:
        """Runs of a handler class waiting for a ``max_concurrency`` permit now."""
        return next((len(q) for d, q in self._waiting.items() if d.handler_class is handler), 0)
