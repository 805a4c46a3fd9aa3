"""max_concurrency on the real engine, and rate limits across a restart on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from evertask import ManualClock
from evertask_abstractions import QueuedTaskStatus
from tests.helpers import build_host, wait_status, wait_until
from tests.ratelimit.tasks import ALL, Call, Empty, Quick, Slow, SlowHandler

S = QueuedTaskStatus
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_max_concurrency_limits_runs_without_holding_lanes() -> None:
    host, c = build_host(ALL, lambda o: o.set_max_degree_of_parallelism(3))
    probe = c.probe()
    running = 0
    peak = 0

    def track(*item: Any) -> None:
        nonlocal running, peak
        running += 1 if item[0] == "begin" else -1 if item[0] == "end" else 0
        peak = max(peak, running)
        calls.append(item)
        probe._changed.set()

    calls = probe.calls
    probe.record = track  # type: ignore[method-assign]
    async with host:
        slow = [await host.dispatcher.dispatch(Slow(n=i)) for i in range(5)]
        await probe.wait_for(lambda: probe.count("begin") == 2)
        gate = host.rate_limiter
        await wait_until(lambda: gate.waiting_count(SlowHandler) == 3)
        assert gate.running_count(SlowHandler) == 2
        # the waiting runs hold no lane: the third lane still runs other tasks
        assert host.queue_running("default") == 2
        quick = await host.dispatcher.dispatch(Quick(n=1))
        await wait_status(host, quick, S.COMPLETED)
        assert probe.count("begin") == 2
        probe.gate("release").set()
        for tid in slow:
            await wait_status(host, tid, S.COMPLETED)
        assert gate.running_count(SlowHandler) == 0 and gate.waiting_count(SlowHandler) == 0
    assert probe.count("begin") == 5 and probe.count("end") == 5
    assert peak == 2


async def test_a_cancelled_waiting_run_never_starts() -> None:
    host, c = build_host(ALL)
    probe = c.probe()
    async with host:
        slow = [await host.dispatcher.dispatch(Slow(n=i)) for i in range(3)]
        await wait_until(lambda: host.rate_limiter.waiting_count(SlowHandler) == 1)
        await host.dispatcher.cancel(slow[2])
        probe.gate("release").set()
        await wait_status(host, slow[0], S.COMPLETED)
        await wait_status(host, slow[1], S.COMPLETED)
        await wait_until(lambda: host.rate_limiter.running_count(SlowHandler) == 0)
        row = await host.storage.get(slow[2])
        assert row is not None and row.status is S.CANCELLED
    assert [c[1] for c in probe.calls if c[0] == "begin"] == [0, 1]


def _sqlite_host(path: Path, clock: ManualClock) -> tuple[Any, Any]:
    # per-node budgets (in memory): what a restart does to them; the shared budgets of
    # cluster mode are in tests/ratelimit/test_cluster_limits.py
    return build_host(
        ALL,
        lambda o: o.use_clock(clock).configure_rate_limiter(lambda r: r.set_cluster_wide(False)),
        storage=False,
        builder=lambda b: b.add_sqlite_storage(str(path)),
    )


async def test_after_a_restart_buckets_start_full_and_queued_rows_are_regated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rl.db"
    clock = ManualClock(T0)
    host, c = _sqlite_host(path, clock)
    async with host:
        ids = [await host.dispatcher.dispatch(Call(tenant="a", n=i)) for i in range(3)]
        await wait_status(host, ids[1], S.COMPLETED)
        await wait_until(lambda: host.rate_limiter.parked_task_count == 1)
    host, c = _sqlite_host(path, ManualClock(T0 + timedelta(seconds=1)))
    probe = c.probe()
    async with host:
        # the parked row stayed Queued; it is recovered and passes a fresh (full) bucket
        await wait_status(host, ids[2], S.COMPLETED)
    assert [call[2] for call in probe.calls if call[0] == "call"] == [2]


async def test_after_a_restart_start_empty_buckets_make_tasks_wait(tmp_path: Path) -> None:
    path = tmp_path / "rl.db"
    host, _ = _sqlite_host(path, ManualClock(T0))
    async with host:
        tid = await host.dispatcher.dispatch(Empty(n=1))
        await wait_until(lambda: host.rate_limiter.parked_task_count == 1)
        assert host.rate_limiter.throttled_until(tid) == T0 + timedelta(hours=1)
    clock = ManualClock(T0 + timedelta(minutes=1))
    host, c = _sqlite_host(path, clock)
    probe = c.probe()
    async with host:
        await wait_until(lambda: host.rate_limiter.parked_task_count == 1)
        # a new process: a new empty bucket, one emission interval from now
        assert host.rate_limiter.throttled_until(tid) == clock.now() + timedelta(hours=1)
        row = await host.storage.get(tid)
        assert row is not None and row.status is S.QUEUED
        clock.advance(timedelta(hours=1))
        await wait_status(host, tid, S.COMPLETED)
    assert probe.count("empty") == 1
