"""Keyed rate limiters: the :class:`KeyedRateLimiter` seam and the in-memory GCRA limiter.

A limiter answers one question per task start: may this task of this type, with this
key, start now (``PROCEED``), at a reserved later slot (``DEFER``), or not at all
(``REJECT``)? It never touches storage and never blocks. The in-memory limiter is this
host's own (per-node budgets); a storage-backed, cluster-wide limiter implements the same
class and is installed with ``configure_rate_limiter(lambda r: r.use_limiter(...))``.

Times are POSIX seconds (floats) taken from the host's clock, so a manual clock drives
the limiter in tests exactly as it drives the scheduler.
"""

from __future__ import annotations

import logging
import math
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from evertask_abstractions import RateLimitOverflowBehavior, RateLimitPolicy

__all__ = [
    "PROCEED",
    "InMemoryKeyedRateLimiter",
    "KeyedRateLimiter",
    "RateLimitDecision",
    "RateLimitOutcome",
    "rejection",
]

log = logging.getLogger("evertask.ratelimit")

SWEEP_INTERVAL = 300.0
"""Seconds between sweeps of idle keys and expired reservations."""
RESERVATION_GRACE = 10.0
"""A reservation not redeemed ``period + RESERVATION_GRACE`` seconds after its slot expires."""
REDEEM_TOLERANCE = 0.001
"""A reservation is redeemed up to this many seconds before its slot (timers may fire
that much early)."""
FAIL_OPEN_WARNING_INTERVAL = 30.0


class RateLimitOutcome(str, Enum):
    """What a limiter decided for one start."""

    PROCEED = "Proceed"
    DEFER = "Defer"
    REJECT = "Reject"


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """A limiter's answer: the outcome and, for ``DEFER``/``REJECT``, the slot (POSIX
    seconds) the task had (or would have had)."""

    outcome: RateLimitOutcome
    slot: float | None = None
    reason: str | None = None
    """Why a task was rejected: ``"horizon"``, ``"discard"`` or ``"deadline"``."""


PROCEED = RateLimitDecision(RateLimitOutcome.PROCEED)
"""The one ``PROCEED`` decision (a start under budget allocates nothing)."""


def rejection(
    slot: float, now: float, discard: bool, horizon: float, not_after: float | None
) -> RateLimitDecision | None:
    """The rejection of a start whose budget is spent until ``slot``, or ``None`` when it may
    wait for that slot: DISCARD rejects at once, a slot beyond the reservation ``horizon``
    (seconds) or at/after ``not_after`` (a recurring series' end) is never booked."""
    if discard:
        return RateLimitDecision(RateLimitOutcome.REJECT, slot, "discard")
    if slot - now > horizon:
        return RateLimitDecision(RateLimitOutcome.REJECT, slot, "horizon")
    if not_after is not None and slot >= not_after:
        return RateLimitDecision(RateLimitOutcome.REJECT, slot, "deadline")
    return None


class KeyedRateLimiter(ABC):
    """The rate-limiter seam: budgets per (task type, key), reservations per task id.

    Implementations must be idempotent per task id: a task that was told ``DEFER`` and
    asks again (a redelivery, or its parked run coming back) gets the same slot, and
    ``PROCEED`` once that slot is reached; its reservation is then used up.

    A limiter whose decisions need I/O (a shared database, Redis) sets ``is_async = True``
    and implements :meth:`acquire_async`; the engine then awaits it.
    """

    is_async: ClassVar[bool] = False

    @abstractmethod
    def acquire(
        self,
        task_type: str,
        key: str,
        task_id: uuid.UUID,
        policy: RateLimitPolicy,
        now: float,
        *,
        not_after: float | None = None,
    ) -> RateLimitDecision:
        """Decide one start at ``now``; a slot at or after ``not_after`` is rejected
        (a recurring series' ``run_until``) and not booked."""

    async def acquire_async(
        self,
        task_type: str,
        key: str,
        task_id: uuid.UUID,
        policy: RateLimitPolicy,
        now: float,
        *,
        not_after: float | None = None,
    ) -> RateLimitDecision:
        """:meth:`acquire` for limiters that do I/O (the default calls :meth:`acquire`)."""
        return self.acquire(task_type, key, task_id, policy, now, not_after=not_after)

    def forget(self, task_id: uuid.UUID) -> None:
        """Drop the reservation of ``task_id`` (it was cancelled); its slot stays spent."""

    def reserved_slot(self, task_id: uuid.UUID) -> float | None:
        """The slot reserved for ``task_id``, if any (POSIX seconds)."""
        return None

    @property
    def tracked_key_count(self) -> int:
        """Keys whose state the limiter holds now."""
        return 0

    @property
    def fail_open_count(self) -> int:
        """Starts let through without a budget because the limiter was full."""
        return 0


class _Bucket:
    __slots__ = ("tat",)

    def __init__(self, tat: float) -> None:
        self.tat = tat  # the theoretical arrival time of the next start


class _TypeState:
    """One task type's policy in seconds, and its keys' buckets."""

    __slots__ = (
        "buckets",
        "discard",
        "emission",
        "horizon",
        "period",
        "policy",
        "start_empty",
        "tolerance",
    )

    def __init__(self, policy: RateLimitPolicy) -> None:
        self.policy = policy
        self.period = policy.period.total_seconds()
        self.emission = self.period / policy.permits
        self.tolerance = self.emission * (policy.burst - 1)
        self.horizon = policy.max_reservation_horizon.total_seconds()
        self.discard = policy.overflow_behavior is RateLimitOverflowBehavior.DISCARD
        self.start_empty = policy.start_empty
        self.buckets: dict[str, _Bucket] = {}


class _Reservation:
    __slots__ = ("expires", "key", "slot", "state")

    def __init__(self, state: _TypeState, key: str, slot: float, expires: float) -> None:
        self.state = state
        self.key = key
        self.slot = slot
        self.expires = expires


class InMemoryKeyedRateLimiter(KeyedRateLimiter):
    """GCRA per (task type, key), held in this process.

    Emission interval ``T = period / permits``, tolerance ``tau = T * (burst - 1)``, one
    theoretical arrival time (TAT) per key. A start at ``t`` conforms when
    ``max(TAT, t) - tau <= t`` (then ``TAT = max(TAT, t) + T``); otherwise its slot is
    ``max(TAT, t) - tau``, booked (``TAT += T``) for its task id unless it lies beyond the
    policy's horizon, at or after ``not_after``, or the policy discards overflow.

    Keys idle long enough to be full again are swept every 5 minutes; beyond
    ``max_tracked_keys`` keys a new key is let through (fail open) and a warning is logged
    at most every 30 s.
    """

    def __init__(self, max_tracked_keys: int = 100_000) -> None:
        if isinstance(max_tracked_keys, bool) or max_tracked_keys < 1:
            raise ValueError(f"max_tracked_keys must be >= 1, got {max_tracked_keys!r}.")
        self.max_tracked_keys = max_tracked_keys
        self._types: dict[str, _TypeState] = {}
        self._keys = 0
        self._reservations: dict[uuid.UUID, _Reservation] = {}
        self._next_sweep = -math.inf
        self._fail_open_total = 0
        self._last_fail_warning = -math.inf

    def acquire(
        self,
        task_type: str,
        key: str,
        task_id: uuid.UUID,
        policy: RateLimitPolicy,
        now: float,
        *,
        not_after: float | None = None,
    ) -> RateLimitDecision:
        """Decide one start (see the class docstring)."""
        state = self._types.get(task_type)
        if state is None or state.policy is not policy:
            state = self._state(task_type, policy)
        if now >= self._next_sweep:
            self.sweep(now)
        if self._reservations:
            held = self._reservations.get(task_id)
            if held is not None:
                if held.state is state and held.key == key and now <= held.expires:
                    if held.slot <= now + REDEEM_TOLERANCE:
                        del self._reservations[task_id]
                        return PROCEED
                    return RateLimitDecision(RateLimitOutcome.DEFER, held.slot)
                del self._reservations[task_id]  # another key now, or expired: afresh
        bucket = state.buckets.get(key)
        if bucket is None:
            if self._keys >= self.max_tracked_keys:
                return self._fail_open(task_type, now)
            # a full bucket (TAT = now) or, start_empty, one whose first start waits T
            bucket = _Bucket(now + state.emission + state.tolerance if state.start_empty else now)
            state.buckets[key] = bucket
            self._keys += 1
        tat = bucket.tat
        if tat < now:
            tat = now
        slot = tat - state.tolerance
        if slot <= now:
            bucket.tat = tat + state.emission
            return PROCEED
        rejected = rejection(slot, now, state.discard, state.horizon, not_after)
        if rejected is not None:
            return rejected
        bucket.tat = tat + state.emission
        self._reservations[task_id] = _Reservation(
            state, key, slot, slot + state.period + RESERVATION_GRACE
        )
        return RateLimitDecision(RateLimitOutcome.DEFER, slot)

    def _state(self, task_type: str, policy: RateLimitPolicy) -> _TypeState:
        old = self._types.get(task_type)
        state = _TypeState(policy)
        if old is not None:  # another policy for the type: its keys start afresh
            self._keys -= len(old.buckets)
        self._types[task_type] = state
        return state

    def _fail_open(self, task_type: str, now: float) -> RateLimitDecision:
        self._fail_open_total += 1
        if now - self._last_fail_warning >= FAIL_OPEN_WARNING_INTERVAL:
            self._last_fail_warning = now
            log.warning(
                "The rate limiter tracks %d keys (max_tracked_keys); tasks of %s with a new "
                "key run without a rate limit (%d so far). Raise max_tracked_keys with "
                "configure_rate_limiter(lambda r: r.set_max_tracked_keys(...)).",
                self._keys,
                task_type,
                self._fail_open_total,
            )
        return PROCEED

    def sweep(self, now: float) -> int:
        """Forget idle keys (full again) and expired reservations; return the keys dropped."""
        self._next_sweep = now + SWEEP_INTERVAL
        expired = [tid for tid, r in self._reservations.items() if now > r.expires]
        for tid in expired:
            del self._reservations[tid]
        dropped = 0
        for state in self._types.values():
            idle = [k for k, b in state.buckets.items() if b.tat <= now]
            for key in idle:
                del state.buckets[key]
            dropped += len(idle)
        self._keys -= dropped
        return dropped

    def forget(self, task_id: uuid.UUID) -> None:
        """Drop the reservation of ``task_id`` (its slot stays spent)."""
        self._reservations.pop(task_id, None)

    def reserved_slot(self, task_id: uuid.UUID) -> float | None:
        """The slot reserved for ``task_id``, if any."""
        held = self._reservations.get(task_id)
        return None if held is None else held.slot

    @property
    def tracked_key_count(self) -> int:
        """Keys tracked now (all task types)."""
        return self._keys

    @property
    def fail_open_count(self) -> int:
        """Starts let through because ``max_tracked_keys`` was reached."""
        return self._fail_open_total

    @property
    def reservation_count(self) -> int:
        """Reservations booked and not yet redeemed."""
        return len(self._reservations)
