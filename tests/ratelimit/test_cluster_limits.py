"""Cluster-wide throttling: the storage-backed GCRA limiter (a compare-and-set per
admission) and ``max_concurrency`` slots, on SQLite, PostgreSQL and MariaDB, with several
storage instances (nodes) on one database; then on the engine, two hosts on one file."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evertask import ManualClock
from evertask.cluster_limits import (
    ClusterConcurrency,
    StorageKeyedRateLimiter,
    scope_hash,
)
from evertask.ratelimit import RateLimitOutcome
from evertask.storage import NodeInfo
from evertask_abstractions import QueuedTaskStatus, RateLimitOverflowBehavior, RateLimitPolicy
from evertask_storage_efcore_like import SqlTaskStorage
from evertask_storage_mysql import MySqlTaskStorage
from evertask_storage_postgres import PostgresTaskStorage
from evertask_storage_sqlite import SqliteTaskStorage
from tests.helpers import build_host, wait_status, wait_until
from tests.ratelimit.tasks import ALL, Call, Slow, SlowHandler
from tests.storage.conftest import (  # noqa: F401 (fixtures)
    PG_URL,
    mysql_database,
    mysql_storage_url,
    pg_schema,
)

S = QueuedTaskStatus
NOW = 1_800_000_000.0
NODES = 3


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Any]]:
    """Three open storages (three nodes) on one database."""
    kind = request.param
    make: Callable[[], SqlTaskStorage]
    if kind == "sqlite":
        path = tmp_path / "shared.db"
        make = lambda: SqliteTaskStorage(path)  # noqa: E731
    elif kind == "postgres":
        schema = request.getfixturevalue("pg_schema")
        make = lambda: PostgresTaskStorage(PG_URL, schema=schema)  # noqa: E731
    else:
        url = request.getfixturevalue("mysql_storage_url")
        make = lambda: MySqlTaskStorage(url)  # noqa: E731
    opened = []
    for _ in range(NODES):
        store = make()
        await store.open()
        opened.append(store)
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


def _type() -> str:
    return f"tests.Limited.{uuid.uuid4().hex[:8]}"  # a fresh budget per test


async def test_concurrent_admissions_on_several_nodes_never_exceed_the_burst(
    stores: list[Any],
) -> None:
    limiters = [StorageKeyedRateLimiter(s) for s in stores]
    policy = RateLimitPolicy(10, 1, burst=10)
    task_type = _type()
    tasks = [(limiters[i % NODES], uuid.uuid4()) for i in range(45)]
    decisions = await asyncio.gather(
        *(lim.acquire_async(task_type, "k", tid, policy, NOW) for lim, tid in tasks)
    )
    outcomes = [d.outcome for d in decisions]
    assert outcomes.count(RateLimitOutcome.PROCEED) == 10  # the burst, cluster-wide
    assert RateLimitOutcome.REJECT not in outcomes
    # the booked slots are the GCRA's: distinct, 0.1 s apart, from NOW + 0.1 on
    booked = sorted(
        slot
        for lim, tid in tasks
        if (slot := lim.reserved_slot(tid)) is not None  # (not the brief back-offs)
    )
    assert booked, "some deferrals booked a slot"
    assert booked[0] >= NOW + 0.1 - 1e-6
    assert all(b - a >= 0.1 - 1e-6 for a, b in itertools.pairwise(booked))
    # a run comes back at its slot: it proceeds, once, without a round trip
    lim, tid = next((lim, tid) for lim, tid in tasks if lim.reserved_slot(tid) is not None)
    slot = lim.reserved_slot(tid)
    assert slot is not None
    trips = lim.round_trips
    again = await lim.acquire_async(task_type, "k", tid, policy, slot)
    assert again.outcome is RateLimitOutcome.PROCEED and lim.round_trips == trips


async def test_starts_over_time_respect_the_gcra_bound_across_nodes(stores: list[Any]) -> None:
    """Rounds of concurrent admissions every 50 ms for 3 s; deferred runs come back at
    their slot. In any one-second window: at most burst + permits starts."""
    limiters = [StorageKeyedRateLimiter(s) for s in stores]
    policy = RateLimitPolicy(5, 1, burst=5)
    task_type = _type()
    starts: list[float] = []
    waiting: list[tuple[float, StorageKeyedRateLimiter, uuid.UUID]] = []
    for step in range(60):
        now = NOW + step * 0.05
        due = [w for w in waiting if w[0] <= now]
        waiting = [w for w in waiting if w[0] > now]
        fresh = [(now, limiters[(step + i) % NODES], uuid.uuid4()) for i in range(2)]
        batch = [(lim, tid) for _, lim, tid in due + fresh]
        decisions = await asyncio.gather(
            *(lim.acquire_async(task_type, "k", tid, policy, now) for lim, tid in batch)
        )
        for (lim, tid), decision in zip(batch, decisions, strict=True):
            if decision.outcome is RateLimitOutcome.PROCEED:
                starts.append(now)
            else:
                assert decision.outcome is RateLimitOutcome.DEFER and decision.slot is not None
                waiting.append((decision.slot, lim, tid))
    assert len(starts) >= 5 + 5 * 2  # the budget is used, not starved
    worst = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert worst <= 5 + 5


async def test_rejections_book_nothing_and_new_keys_may_start_empty(stores: list[Any]) -> None:
    lim = StorageKeyedRateLimiter(stores[0])
    other = StorageKeyedRateLimiter(stores[1])
    task_type = _type()
    discard = RateLimitPolicy(1, 60, overflow_behavior=RateLimitOverflowBehavior.DISCARD)
    first = await lim.acquire_async(task_type, "d", uuid.uuid4(), discard, NOW)
    assert first.outcome is RateLimitOutcome.PROCEED
    second = await other.acquire_async(task_type, "d", uuid.uuid4(), discard, NOW + 1)
    assert second.outcome is RateLimitOutcome.REJECT and second.reason == "discard"
    assert await stores[0].read_rate_bucket(scope_hash(task_type, "d")) == round(
        (NOW + 60) * 1_000_000
    )
    horizon = RateLimitPolicy(1, 3600, max_reservation_horizon=timedelta(minutes=1))
    assert (await lim.acquire_async(task_type, "h", uuid.uuid4(), horizon, NOW)).outcome is (
        RateLimitOutcome.PROCEED
    )
    far = await other.acquire_async(task_type, "h", uuid.uuid4(), horizon, NOW)
    assert far.outcome is RateLimitOutcome.REJECT and far.reason == "horizon"
    empty = RateLimitPolicy(2, 10, start_empty=True)
    wait = await lim.acquire_async(task_type, "e", uuid.uuid4(), empty, NOW)
    assert wait.outcome is RateLimitOutcome.DEFER and wait.slot == pytest.approx(NOW + 5)


async def test_idle_buckets_are_swept_by_any_node(stores: list[Any]) -> None:
    lim = StorageKeyedRateLimiter(stores[0])
    task_type = _type()
    policy = RateLimitPolicy(10, 1)
    for key in ("a", "b"):
        await lim.acquire_async(task_type, key, uuid.uuid4(), policy, NOW)
    await lim.acquire_async(task_type, "c", uuid.uuid4(), policy, NOW + 3600)
    await StorageKeyedRateLimiter(stores[1]).sweep(NOW + 3600)  # (lim may have swept too)
    assert await stores[2].read_rate_bucket(scope_hash(task_type, "a")) is None
    assert await stores[2].read_rate_bucket(scope_hash(task_type, "c")) is not None


async def test_a_storage_error_defers_briefly_and_books_nothing() -> None:
    class Broken:
        async def read_rate_bucket(self, scope: str) -> int | None:
            raise OSError("database down")

        async def swap_rate_bucket(
            self, scope: str, expected: int | None, tat: int, now: datetime
        ) -> bool:
            raise OSError("database down")

        async def sweep_rate_buckets(self, idle_before: int) -> int:
            return 0

    lim = StorageKeyedRateLimiter(Broken())
    tid = uuid.uuid4()
    decision = await lim.acquire_async("T", "k", tid, RateLimitPolicy(10, 1), NOW)
    assert decision.outcome is RateLimitOutcome.DEFER and decision.slot == pytest.approx(NOW + 1)
    assert lim.reserved_slot(tid) is None and lim.backoffs == 1
    with pytest.raises(RuntimeError):
        lim.acquire("T", "k", tid, RateLimitPolicy(10, 1), NOW)


# -- concurrency slots ---------------------------------------------------------------------
async def _register(store: Any, lease: timedelta) -> uuid.UUID:
    node = uuid.uuid4()
    now = datetime.now(UTC)
    await store.register_node(
        NodeInfo(
            id=node,
            host_name="test",
            pid=1,
            started_at_utc=now,
            last_heartbeat_utc=now,
            lease_expires_utc=now + lease,
            queues=("default",),
            runs_workers=True,
        )
    )
    return node


async def test_concurrency_slots_are_shared_and_a_dead_nodes_come_back(
    stores: list[Any],
) -> None:
    scope = ClusterConcurrency.scope(_type())
    alive = [await _register(s, timedelta(minutes=5)) for s in stores[:2]]
    dying = await _register(stores[2], timedelta(milliseconds=300))
    now = datetime.now(UTC)
    taken = await asyncio.gather(
        *(
            stores[i % 3].acquire_concurrency_slot(scope, 3, [*alive, dying][i % 3], now)
            for i in range(9)
        )
    )
    slots = [s for s in taken if s is not None]
    assert sorted(slots) == [0, 1, 2]  # three slots, each to one node
    held_by_dying = [s for i, s in enumerate(taken) if s is not None and i % 3 == 2]
    await asyncio.sleep(0.4)  # the third node's lease ends: its slots are free again
    later = datetime.now(UTC)
    regained = [
        await stores[0].acquire_concurrency_slot(scope, 3, alive[0], later) for _ in held_by_dying
    ]
    assert sorted(s for s in regained if s is not None) == sorted(held_by_dying)
    assert await stores[0].acquire_concurrency_slot(scope, 3, alive[0], later) is None
    # a release frees a slot for any node; another node's slot cannot be released
    holder, slot = next(
        (alive[i % 3], s) for i, s in enumerate(taken) if s is not None and i % 3 < 2
    )
    await stores[1].release_concurrency_slot(scope, slot, uuid.uuid4())
    assert await stores[1].acquire_concurrency_slot(scope, 3, alive[1], later) is None
    await stores[1].release_concurrency_slot(scope, slot, holder)
    assert await stores[1].acquire_concurrency_slot(scope, 3, alive[1], later) == slot
    assert await stores[0].release_node_slots(alive[1]) >= 1


# -- on the engine -------------------------------------------------------------------------
def _shared_host(path: Path, *, cluster_wide: bool = True, **extra: Any) -> tuple[Any, Any]:
    def configure(o: Any) -> Any:
        o.set_cluster_poll_interval(timedelta(milliseconds=50))
        o.set_heartbeat_interval(timedelta(milliseconds=200))
        o.configure_rate_limiter(lambda r: r.set_cluster_wide(cluster_wide))
        if "clock" in extra:
            o.use_clock(extra["clock"])
        return o

    return build_host(
        ALL, configure, storage=False, builder=lambda b: b.add_sqlite_storage(str(path))
    )


@pytest.mark.parametrize("cluster_wide", [True, False])
async def test_two_hosts_on_one_database_share_a_keys_budget(
    tmp_path: Path, cluster_wide: bool
) -> None:
    # Call: 2 starts per minute per tenant (tests/ratelimit/tasks.py)
    path = tmp_path / "shared.db"
    (a, ca), (b, cb) = (
        _shared_host(path, cluster_wide=cluster_wide),
        _shared_host(path, cluster_wide=cluster_wide),
    )
    pa, pb = ca.probe(), cb.probe()
    async with a, b:
        for n in range(3):
            await a.dispatcher.dispatch(Call(tenant="t", n=n))
            await b.dispatcher.dispatch(Call(tenant="t", n=10 + n))
        expected = 2 if cluster_wide else 4
        await wait_until(lambda: pa.count("call") + pb.count("call") >= expected)
        await wait_until(
            lambda: (
                a.rate_limiter.parked_task_count + b.rate_limiter.parked_task_count == 6 - expected
            )
        )
        await asyncio.sleep(0.2)
        assert pa.count("call") + pb.count("call") == expected


async def test_shared_budgets_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "rl.db"
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    host, c = _shared_host(path, clock=ManualClock(t0))
    probe = c.probe()
    async with host:
        for n in range(2):
            await wait_status(
                host, await host.dispatcher.dispatch(Call(tenant="r", n=n)), S.COMPLETED
            )
    host, c = _shared_host(path, clock=ManualClock(t0 + timedelta(seconds=1)))
    probe = c.probe()
    async with host:
        await host.dispatcher.dispatch(Call(tenant="r", n=3))
        await wait_until(lambda: host.rate_limiter.parked_task_count == 1)
    assert probe.count("call") == 0  # the budget spent before the restart is still spent


async def test_max_concurrency_holds_across_two_hosts(tmp_path: Path) -> None:
    # Slow: max_concurrency = 2 (tests/ratelimit/tasks.py); waits for its "release" gate
    path = tmp_path / "shared.db"
    (a, ca), (b, cb) = _shared_host(path), _shared_host(path)
    pa, pb = ca.probe(), cb.probe()
    running = peak = 0

    def tracker(calls: list[Any]) -> Callable[..., None]:
        def track(*item: Any) -> None:
            nonlocal running, peak
            running += 1 if item[0] == "begin" else -1 if item[0] == "end" else 0
            peak = max(peak, running)
            calls.append(item)

        return track

    pa.record = tracker(pa.calls)  # type: ignore[method-assign]
    pb.record = tracker(pb.calls)  # type: ignore[method-assign]
    async with a, b:
        ids = []
        for n in range(4):
            ids.append((a, await a.dispatcher.dispatch(Slow(n=n))))
            ids.append((b, await b.dispatcher.dispatch(Slow(n=10 + n))))
        await wait_until(lambda: running == 2)
        await wait_until(
            lambda: (
                a.rate_limiter.waiting_count(SlowHandler)
                + b.rate_limiter.waiting_count(SlowHandler)
                == 6
            )
        )
        await asyncio.sleep(0.3)  # several polls: nobody takes a third slot
        assert running == 2
        pa.gate("release").set()
        pb.gate("release").set()
        for host, tid in ids:
            await wait_status(host, tid, S.COMPLETED, timeout=20)
    assert peak == 2
    assert pa.count("begin") + pb.count("begin") == 8
