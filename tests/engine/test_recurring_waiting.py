"""Between runs an active recurring series is WaitingQueue, scheduled at its next run; the
series can still be cancelled; its last run leaves it Completed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from evertask import ManualClock
from evertask_abstractions import QueuedTaskStatus
from tests.engine.test_recurring_engine import HANDLERS, Tick
from tests.helpers import build_host, wait_until

START = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
S = QueuedTaskStatus


async def test_a_series_waits_for_its_next_run_and_ends_completed() -> None:
    clock = ManualClock(START)
    host, c = build_host(HANDLERS, lambda o: o.use_clock(clock))
    probe = c.probe()
    async with host:
        storage = host.storage
        assert storage is not None
        tid = await host.dispatcher.dispatch(
            Tick(), lambda b: b.schedule().every(10).minutes().max_runs(2)
        )
        await probe.wait_for(lambda: probe.count("tick") == 1)  # the first run is due now
        await wait_until(lambda: _run_count(host, tid, 1))
        row = await storage.get(tid)
        assert row is not None and row.status is S.WAITING_QUEUE
        nxt = START + timedelta(minutes=10)
        assert (row.scheduled_execution_utc, row.next_run_utc) == (nxt, nxt)
        clock.advance(timedelta(minutes=10))
        await probe.wait_for(lambda: probe.count("tick") == 2)
        await wait_until(lambda: _run_count(host, tid, 2))
        row = await storage.get(tid)
        assert row is not None and (row.status, row.next_run_utc) == (S.COMPLETED, None)


async def test_a_failed_run_keeps_the_series_waiting_and_cancellable() -> None:
    clock = ManualClock(START)
    host, c = build_host(HANDLERS, lambda o: o.use_clock(clock))
    probe = c.probe()
    async with host:
        storage = host.storage
        assert storage is not None
        tid = await host.dispatcher.dispatch(
            Tick(fail=True), lambda b: b.schedule().every(10).minutes()
        )
        await probe.wait_for(lambda: probe.count("tick") == 1)  # the first run is due now
        await wait_until(lambda: _run_count(host, tid, 1))
        row = await storage.get(tid)
        assert row is not None and row.status is S.WAITING_QUEUE
        assert "this occurrence fails" in (row.exception or "")
        assert row.scheduled_execution_utc == START + timedelta(minutes=10)
        await host.dispatcher.cancel(tid)
        row = await storage.get(tid)
        assert row is not None and row.status is S.CANCELLED
        clock.advance(timedelta(hours=1))
        assert probe.count("tick") == 1


async def _run_count(host, tid, n) -> bool:  # type: ignore[no-untyped-def]
    row = await host.storage.get(tid)
    return row is not None and (row.current_run_count or 0) >= n
