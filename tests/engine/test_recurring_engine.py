"""Recurring series in the engine: real-time grid accuracy, keys, failures, downtime, no storage."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from evertask import ManualClock, MemoryTaskStorage
from evertask_abstractions import (
    CancellationToken,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
    ScheduleError,
)
from tests.engine.tasks import ALL, Ping
from tests.helpers import Container, Probe, build_host, wait_status, wait_until


class Tick(EverTask):
    label: str = "t"
    fail: bool = False


class TickHandler(EverTaskHandler[Tick]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Tick, cancellation: CancellationToken) -> None:
        self.probe.record("tick", task.label, datetime.now(UTC))
        if task.fail:
            raise RuntimeError("this occurrence fails")


HANDLERS = [*ALL, TickHandler]


async def test_every_second_with_max_runs_five_runs_exactly_five_times_on_the_grid() -> None:
    host, c = build_host(HANDLERS)
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(
            Tick(), lambda b: b.schedule().every(1).seconds().max_runs(5)
        )
        await probe.wait_for(lambda: probe.count("tick") == 5, timeout=10)
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
        row = await host.storage.get(tid)
        assert row is not None and row.current_run_count == 5 and row.next_run_utc is None
    stamps = [c[2] for c in probe.calls if c[0] == "tick"]
    assert len(stamps) == 5
    # each run on its whole-second grid point: within 50 ms typically, and never drifting
    # (one stall of this shared machine may delay a single run, but not the next ones)
    offsets = sorted(min(s.microsecond / 1e6, 1 - s.microsecond / 1e6) for s in stamps)
    assert offsets[3] < 0.05 and offsets[4] < 0.25, stamps
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert all(0.9 < g < 1.1 for g in gaps), gaps
    audits = await host.storage.get_runs_audits(tid)
    assert len(audits) == 5


async def test_a_failed_occurrence_does_not_stop_the_series() -> None:
    clock = ManualClock(datetime(2026, 5, 4, 8, 0, tzinfo=UTC))
    host, c = build_host(HANDLERS, lambda o: o.use_clock(clock))
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(
            Tick(fail=True), lambda b: b.schedule().every(10).minutes().max_runs(3)
        )
        for expected in (1, 2, 3):
            clock.advance(timedelta(minutes=10))
            await probe.wait_for(lambda e=expected: probe.count("tick") == e)  # type: ignore[misc]
            await wait_until(lambda e=expected: _runs(host, tid, e))  # type: ignore[misc]
        row = await host.storage.get(tid)
        assert row is not None and row.status is QueuedTaskStatus.FAILED
        assert row.current_run_count == 3 and row.next_run_utc is None
        clock.advance(timedelta(hours=1))
        assert probe.count("tick") == 3


async def _runs(host, tid, n) -> bool:  # type: ignore[no-untyped-def]
    row = await host.storage.get(tid)
    return row is not None and (row.current_run_count or 0) >= n


async def test_recurring_key_updates_in_place_keeping_next_run_and_count() -> None:
    clock = ManualClock(datetime(2026, 5, 4, 8, 0, tzinfo=UTC))
    host, c = build_host(HANDLERS, lambda o: o.use_clock(clock))
    probe = c.probe()
    async with host:
        first = await host.dispatcher.dispatch(
            Tick(label="v1"), lambda b: b.schedule().every(1).hours(), task_key="hourly"
        )
        clock.advance(timedelta(hours=1))
        await probe.wait_for(lambda: probe.count("tick") == 1)
        await wait_until(lambda: _runs(host, first, 1))
        before = await host.storage.get(first)
        again = await host.dispatcher.dispatch(
            Tick(label="v2"), lambda b: b.schedule().every(1).hours(), task_key="hourly"
        )
        assert again == first
        after = await host.storage.get(first)
        assert after is not None and before is not None
        assert after.current_run_count == 1 and after.next_run_utc == before.next_run_utc
        assert '"v2"' in after.request
        clock.advance(timedelta(hours=1))
        await probe.wait_for(lambda: probe.count("tick") == 2)
        assert probe.calls[-1][1] == "v2"
        # a one-shot dispatch never converts the recurring row
        same = await host.dispatcher.dispatch(Tick(label="one-shot"), task_key="hourly")
        assert same == first
        row = await host.storage.get(first)
        assert row is not None and row.is_recurring and '"v2"' in row.request


async def test_cancelled_series_is_revived_by_its_key() -> None:
    clock = ManualClock(datetime(2026, 5, 4, 8, 0, tzinfo=UTC))
    host, c = build_host(HANDLERS, lambda o: o.use_clock(clock))
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(
            Tick(label="a"), lambda b: b.schedule().every(5).minutes(), task_key="k"
        )
        await host.dispatcher.cancel(tid)
        clock.advance(timedelta(minutes=10))
        assert probe.count("tick") == 0
        again = await host.dispatcher.dispatch(
            Tick(label="b"), lambda b: b.schedule().every(5).minutes(), task_key="k"
        )
        assert again == tid
        row = await host.storage.get(tid)
        assert row is not None and row.status is QueuedTaskStatus.WAITING_QUEUE
        clock.advance(timedelta(minutes=5))
        await probe.wait_for(lambda: probe.count("tick") == 1)
        assert probe.calls[0][1] == "b"


async def test_downtime_runs_one_catch_up_then_realigns() -> None:
    storage = MemoryTaskStorage()
    container = Container()
    probe = container.probe()
    clock = ManualClock(datetime(2026, 5, 4, 8, 0, tzinfo=UTC))
    storage._now = clock.now  # the storage sees the same manual time
    storage._ts = lambda: clock.now().timestamp()

    def make():  # type: ignore[no-untyped-def]
        return build_host(
            HANDLERS,
            lambda o: o.use_clock(clock),
            container=container,
            storage=False,
            builder=lambda b: b.use_storage(storage),
        )[0]

    host = make()
    async with host:
        tid = await host.dispatcher.dispatch(Tick(), lambda b: b.schedule().every(1).minutes())
        clock.advance(timedelta(minutes=1))
        await probe.wait_for(lambda: probe.count("tick") == 1)
        await wait_until(lambda: _runs(host, tid, 1))
    # three days of downtime
    clock.advance(timedelta(days=3, seconds=30))
    host = make()
    async with host:
        await host.wait_recovered(5)
        await probe.wait_for(lambda: probe.count("tick") == 2)  # exactly one catch-up
        await wait_until(lambda: _runs(host, tid, 2))
        row = await host.storage.get(tid)
        assert row is not None and row.next_run_utc is not None
        assert row.next_run_utc.second == 0 and row.next_run_utc > clock.now()  # back on the grid
        clock.advance(timedelta(seconds=30))
        await probe.wait_for(lambda: probe.count("tick") == 3)
    assert probe.count("tick") == 3  # no replay storm


async def test_recurring_without_storage_keeps_running() -> None:
    clock = ManualClock(datetime(2026, 5, 4, 8, 0, tzinfo=UTC))
    host, c = build_host(HANDLERS, lambda o: o.use_clock(clock), storage=False)
    probe = c.probe()
    async with host:
        await host.dispatcher.dispatch(
            Tick(), lambda b: b.schedule().every(1).minutes().max_runs(3)
        )
        for n in range(1, 5):
            clock.advance(timedelta(minutes=1))
            if n <= 3:
                await probe.wait_for(lambda n=n: probe.count("tick") == n)  # type: ignore[misc]
        await wait_until(lambda: len(host.engine.scheduler) == 0)
    assert probe.count("tick") == 3


async def test_recurring_tasks_go_to_the_recurring_queue() -> None:
    host, c = build_host(HANDLERS)
    async with host:
        tid = await host.dispatcher.dispatch(Tick(), lambda b: b.run_now().then().every(1).hours())
        await c.probe().wait_for(lambda: c.probe().count("tick") == 1)
        row = await host.storage.get(tid)
        assert row is not None and row.queue_name == "recurring" and row.is_recurring
        assert row.recurring_info and "hour" in row.recurring_info


async def test_invalid_schedules_fail_at_dispatch() -> None:
    host, _ = build_host(HANDLERS)
    async with host:
        with pytest.raises(ScheduleError):
            await host.dispatcher.dispatch(Tick(), lambda b: b.schedule().every(0).seconds())
        with pytest.raises(ScheduleError):
            await host.dispatcher.dispatch(Tick(), lambda b: b.schedule().use_cron("61 * * * *"))
        with pytest.raises(ScheduleError):
            await host.dispatcher.dispatch(
                Tick(), lambda b: b.schedule().every_day().in_timezone("Mars/Olympus")
            )
        past = datetime(2001, 1, 1, tzinfo=UTC)
        with pytest.raises(ScheduleError):
            await host.dispatcher.dispatch(
                Tick(), lambda b: b.schedule().every_hour().run_until(past)
            )
        await host.dispatcher.dispatch(Ping(n=1))
