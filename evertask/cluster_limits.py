"""Cluster-wide throttling: rate-limit budgets and ``max_concurrency`` permits in the database.

:class:`StorageKeyedRateLimiter` keeps each (task type, key) budget as one GCRA theoretical
arrival time (TAT) in the storage's ``RateLimitBuckets`` table. An admission computes the
GCRA step locally, with this node's clock, from the TAT it last saw, and writes the new TAT
with one compare-and-set (``UPDATE ... WHERE Tat = :seen``): one round trip when nobody
else drew from the key since. When another node did, the update matches no row; the node
re-reads the TAT and tries again (a few times, then it defers the run briefly without
booking anything). Reservations (a deferred run's slot, idempotent per task id) stay in
this node's memory: the slot is booked in the shared TAT, so a run taken over by another
node books a new slot and the old one stays spent (never more starts, at most a wasted
slot).

:class:`ClusterConcurrency` holds a handler's ``max_concurrency`` permits as rows of
``ConcurrencySlots`` owned by this node; a slot held by a node whose lease ended is free
again, so a crashed node's permits come back with its lease. See docs/throttling.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from evertask_abstractions import RateLimitOverflowBehavior, RateLimitPolicy

from .ratelimit import (
    PROCEED,
    REDEEM_TOLERANCE,
    RESERVATION_GRACE,
    SWEEP_INTERVAL,
    KeyedRateLimiter,
    RateLimitDecision,
    RateLimitOutcome,
    rejection,
)
from .storage.protocol import ConcurrencySlotStore, RateLimitStore

__all__ = [
    "CAS_ATTEMPTS",
    "ClusterConcurrency",
    "StorageKeyedRateLimiter",
    "scope_hash",
]

log = logging.getLogger("evertask.ratelimit")

CAS_ATTEMPTS = 8
"""Compare-and-sets one admission tries before it backs off (heavy contention on a key)."""
SWEEP_IDLE = 60.0
"""A bucket whose TAT is this many seconds in the past is swept (it is full again; the
margin covers clock differences between nodes)."""
ERROR_BACKOFF = 1.0
"""Seconds a run waits when the database could not be asked (then it asks again)."""
_US = 1_000_000


def scope_hash(task_type: str, key: str) -> str:
    """The bucket address of (task type, key): a SHA-256 hex digest (64 characters)."""
    return hashlib.sha256(f"{task_type}\x00{key}".encode()).hexdigest()


class _Held:
    __slots__ = ("expires", "scope", "slot")

    def __init__(self, scope: str, slot: float, expires: float) -> None:
        self.scope = scope
        self.slot = slot
        self.expires = expires


class StorageKeyedRateLimiter(KeyedRateLimiter):
    """GCRA budgets shared by every node of a cluster through the storage (see the module
    docstring). Decisions use the ``now`` they are given (the host's clock); the TAT is
    stored in integer microseconds, so the compare-and-set compares exactly.

    Args:
        store: the storage (a :class:`~evertask.storage.protocol.RateLimitStore`).
        max_cached_keys: TATs remembered to save the read before a compare-and-set.
    """

    is_async = True

    def __init__(self, store: RateLimitStore, max_cached_keys: int = 100_000) -> None:
        if not isinstance(store, RateLimitStore):
            raise TypeError(f"{store!r} does not implement RateLimitStore.")
        self.store = store
        self.max_cached_keys = max_cached_keys
        self._seen: dict[str, int | None] = {}
        self._reservations: dict[uuid.UUID, _Held] = {}
        self._locks: dict[str, list[Any]] = {}
        self._next_sweep = -math.inf
        self._sweeping: asyncio.Task[int] | None = None
        self.round_trips = 0
        """Statements sent (reads and compare-and-sets), for introspection and tests."""
        self.conflicts = 0
        """Compare-and-sets another node won (each cost a re-read)."""
        self.backoffs = 0
        """Admissions deferred briefly after ``CAS_ATTEMPTS`` conflicts or a storage error."""
        self._last_error_log = -math.inf

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
        """Not available: this limiter does I/O (the engine calls :meth:`acquire_async`)."""
        raise RuntimeError("StorageKeyedRateLimiter is asynchronous: use acquire_async().")

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
        """Decide one start at ``now`` against the shared budget (see the class docstring)."""
        if now >= self._next_sweep:
            self._sweep_soon(now)
        scope = scope_hash(task_type, key)
        held = self._reservations.get(task_id)
        if held is not None:
            if held.scope == scope and now <= held.expires:
                if held.slot <= now + REDEEM_TOLERANCE:
                    del self._reservations[task_id]
                    return PROCEED
                return RateLimitDecision(RateLimitOutcome.DEFER, held.slot)
            del self._reservations[task_id]
        # one admission of a key at a time per node: this node's runs never conflict
        # with one another, only with other nodes
        entry = self._locks.get(scope)
        if entry is None:
            entry = self._locks[scope] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                return await self._admit(scope, task_id, policy, now, not_after)
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._locks[scope]

    async def _admit(
        self,
        scope: str,
        task_id: uuid.UUID,
        policy: RateLimitPolicy,
        now: float,
        not_after: float | None,
    ) -> RateLimitDecision:
        period = policy.period.total_seconds()
        emission = round(period / policy.permits * _US)
        tolerance = emission * (policy.burst - 1)
        now_us = round(now * _US)
        try:
            for _ in range(CAS_ATTEMPTS):
                if scope in self._seen:
                    current = self._seen[scope]
                else:
                    self.round_trips += 1
                    current = await self.store.read_rate_bucket(scope)
                if current is None:  # a new key: full, or (start_empty) one interval away
                    base = now_us + emission + tolerance if policy.start_empty else now_us
                else:
                    base = current
                tat = max(base, now_us)
                slot_us = tat - tolerance
                decision = PROCEED
                if slot_us > now_us:
                    slot = slot_us / _US
                    rejected = rejection(
                        slot,
                        now,
                        policy.overflow_behavior is RateLimitOverflowBehavior.DISCARD,
                        policy.max_reservation_horizon.total_seconds(),
                        not_after,
                    )
                    if rejected is not None:
                        return rejected
                    decision = RateLimitDecision(RateLimitOutcome.DEFER, slot)
                new = tat + emission
                self.round_trips += 1
                if await self.store.swap_rate_bucket(
                    scope, current, new, datetime.fromtimestamp(now, UTC)
                ):
                    self._remember(scope, new)
                    if decision is not PROCEED:
                        assert decision.slot is not None
                        self._reservations[task_id] = _Held(
                            scope, decision.slot, decision.slot + period + RESERVATION_GRACE
                        )
                    return decision
                self.conflicts += 1
                self._seen.pop(scope, None)  # another node drew from the key: re-read
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._seen.pop(scope, None)
            self._log_error(error, now)
            return self._backoff(now, ERROR_BACKOFF)
        # (heavy contention) wait about one interval, booking nothing, and ask again
        return self._backoff(now, emission / _US * (1 + random.random()))

    def _backoff(self, now: float, seconds: float) -> RateLimitDecision:
        self.backoffs += 1
        return RateLimitDecision(RateLimitOutcome.DEFER, now + max(seconds, 0.001))

    def _remember(self, scope: str, tat: int) -> None:
        seen = self._seen
        if scope not in seen and len(seen) >= self.max_cached_keys:
            seen.clear()  # (a cache: the next admission of each key reads first)
        seen[scope] = tat

    def _log_error(self, error: Exception, now: float) -> None:
        if time.monotonic() - self._last_error_log >= 30.0:
            self._last_error_log = time.monotonic()
            log.warning(
                "The shared rate-limit budget could not be read or written (%r); runs of "
                "rate-limited handlers wait %g s and ask again.",
                error,
                ERROR_BACKOFF,
            )

    # -- sweeping --------------------------------------------------------------------------
    def _sweep_soon(self, now: float) -> None:
        self._next_sweep = now + SWEEP_INTERVAL
        expired = [tid for tid, held in self._reservations.items() if now > held.expires]
        for tid in expired:
            del self._reservations[tid]
        if self._sweeping is not None and not self._sweeping.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sweeping = loop.create_task(self.sweep(now), name="evertask-ratelimit-sweep")

    async def sweep(self, now: float) -> int:
        """Delete the buckets idle for ``SWEEP_IDLE`` seconds (any node may; deleting a full
        bucket changes nothing) and forget their cached TATs; return how many."""
        before = round((now - SWEEP_IDLE) * _US)
        self._seen = {s: t for s, t in self._seen.items() if t is not None and t >= before}
        try:
            return await self.store.sweep_rate_buckets(before)
        except Exception as error:  # the next sweep retries
            log.warning("Sweeping idle rate-limit buckets failed: %r", error)
            return 0

    # -- introspection ---------------------------------------------------------------------
    def forget(self, task_id: uuid.UUID) -> None:
        """Drop the reservation of ``task_id`` (its slot stays spent)."""
        self._reservations.pop(task_id, None)

    def reserved_slot(self, task_id: uuid.UUID) -> float | None:
        """The slot reserved here for ``task_id``, if any."""
        held = self._reservations.get(task_id)
        return None if held is None else held.slot

    @property
    def tracked_key_count(self) -> int:
        """Keys whose TAT this node remembers (the budgets themselves are in the database)."""
        return len(self._seen)

    @property
    def reservation_count(self) -> int:
        """Reservations booked here and not yet redeemed."""
        return len(self._reservations)


class ClusterConcurrency:
    """``max_concurrency`` permits of every node, as slots in the storage.

    This node takes a slot before it starts a run of a limited handler, unless a run of the
    same handler ending here hands its slot over (then no round trip). A slot nobody here
    needs goes back in the background. A slot of a node whose lease ended is free again.

    Args:
        store: the storage (a :class:`~evertask.storage.protocol.ConcurrencySlotStore`).
        node_id: a callable returning this node's current id (it changes at a rejoin).
        now: the host's clock (aware UTC).
    """

    def __init__(
        self,
        store: ConcurrencySlotStore,
        node_id: Callable[[], uuid.UUID],
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self._node_id = node_id
        self._now = now
        self._held: dict[str, list[int]] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        self._last_error_log = -math.inf
        self.round_trips = 0

    @staticmethod
    def scope(handler_type_name: str) -> str:
        """The slot scope of a handler."""
        return scope_hash("max_concurrency", handler_type_name)

    def held(self, scope: str) -> int:
        """Slots this node holds for ``scope``."""
        return len(self._held.get(scope, ()))

    async def acquire(self, scope: str, limit: int) -> bool:
        """Take a slot of ``scope`` for this node; ``False`` when all ``limit`` are held
        (or the database could not be asked: the run waits and asks again)."""
        self.round_trips += 1
        try:
            slot = await self.store.acquire_concurrency_slot(
                scope, limit, self._node_id(), self._now()
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if time.monotonic() - self._last_error_log >= 30.0:
                self._last_error_log = time.monotonic()
                log.warning("A cluster-wide concurrency slot could not be taken (%r).", error)
            return False
        if slot is None:
            return False
        self._held.setdefault(scope, []).append(slot)
        return True

    def release(self, scope: str) -> None:
        """Give one slot of ``scope`` back (in the background)."""
        slots = self._held.get(scope)
        if not slots:
            return
        slot = slots.pop()
        node = self._node_id()

        async def give_back() -> None:
            try:
                await self.store.release_concurrency_slot(scope, slot, node)
            except Exception as error:  # it is free again when this node's lease ends
                log.warning("A cluster-wide concurrency slot could not be released (%r).", error)

        try:
            task = asyncio.get_running_loop().create_task(give_back())
        except RuntimeError:
            return
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def release_all(self) -> None:
        """The host stops: give back every slot this node holds."""
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        if not any(self._held.values()):
            return
        self._held.clear()
        try:
            await self.store.release_node_slots(self._node_id())
        except Exception as error:  # free anyway once the node's row is gone
            log.warning("Releasing this node's concurrency slots failed (%r).", error)
