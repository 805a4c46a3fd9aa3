"""Rate limits in the engine, on a manual clock: proceed, defer (no write), reject, skip,
cancel while parked, retries, keys, events, introspection."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evertask import EventKind, ManualClock, MemoryTaskStorage, TaskEvent
from evertask_abstractions import (
    AuditLevel,
    CancellationToken,
    ConfigurationError,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
    RateLimitPolicy,
    RateLimitRejectedError,
)
from tests.helpers import build_host, wait_status, wait_until
from tests.ratelimit.tasks import (
    ALL,
    Call,
    Dropped,
    Flaky,
    Keyless,
    Short,
)

S = QueuedTaskStatus
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Recording(MemoryTaskStorage):
    """Counts the engine's storage writes per task id."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, uuid.UUID]] = []

    async def persist(self, task: Any) -> None:
        self.writes.append(("persist", task.id))
        await super().persist(task)

    async def try_set_queued_if_recoverable(
        self, task_id: uuid.UUID, audit_level: AuditLevel, owner: uuid.UUID | None = None
    ) -> bool:
        self.writes.append(("claim", task_id))
        return await super().try_set_queued_if_recoverable(task_id, audit_level, owner)

    async def set_queued(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        self.writes.append(("queued", task_id))
        await super().set_queued(task_id, audit_level)

    async def set_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        self.writes.append(("in_progress", task_id))
        await super().set_in_progress(task_id, audit_level)

    async def set_completed(self, task_id: uuid.UUID, *args: Any, **kw: Any) -> Any:
        self.writes.append(("completed", task_id))
        return await super().set_completed(task_id, *args, **kw)

    async def set_status(self, task_id: uuid.UUID, status: S, *args: Any, **kw: Any) -> Any:
        self.writes.append((f"status:{status.value}", task_id))
        return await super().set_status(task_id, status, *args, **kw)

    async def update_task(self, task: Any, *, revive: bool = False) -> None:
        self.writes.append(("update", task.id))
        await super().update_task(task, revive=revive)

    def of(self, task_id: uuid.UUID) -> list[str]:
        return [what for what, tid in self.writes if tid == task_id]


def _settled(host: Any) -> bool:
    """Nothing runs or is being admitted, and a series has its next occurrence (or ended)."""
    engine = host.engine
    return (
        not engine.background._tasks
        and not engine.executor.running
        and not engine.in_flight
        and host.scheduled_count <= 1
    )


def _host(clock: ManualClock, storage: MemoryTaskStorage | None = None, **kw: Any) -> Any:
    storage = storage if storage is not None else MemoryTaskStorage()

    def configure(o: Any) -> None:
        o.use_clock(clock)
        if "rate" in kw:
            o.configure_rate_limiter(kw["rate"])

    return build_host(ALL, configure, storage=False, builder=lambda b: b.use_storage(storage))


async def test_a_spent_budget_parks_the_run_at_its_slot_without_a_storage_write() -> None:
    clock = ManualClock(T0)
    storage = Recording()
    host, c = _host(clock, storage)
    probe = c.probe()
    async with host:
        ids = [await host.dispatcher.dispatch(Call(tenant="a", n=i)) for i in range(3)]
        await probe.wait_for(lambda: probe.count("call") == 2)
        limiter = host.rate_limiter
        await wait_until(lambda: limiter.parked_task_count == 1)
        # 2 per minute with a burst of 2: T = 30 s, so the third start is due at +30 s
        assert limiter.throttled_until(ids[2]) == T0 + timedelta(seconds=30)
        [parked] = limiter.parked_snapshot()
        assert (parked.task_id, parked.rate_limit_key, parked.queue_name) == (
            ids[2],
            "a",
            "default",
        )
        assert parked.task_type.endswith("Call")
        assert storage.of(ids[2]) == ["persist"]  # parked: nothing written
        row = await storage.get(ids[2])
        assert row is not None and row.status is S.QUEUED
        assert host.scheduled_count == 1
        # another tenant has its own budget
        other = await host.dispatcher.dispatch(Call(tenant="b"))
        await wait_status(host, other, S.COMPLETED)
        clock.advance(timedelta(seconds=29))
        assert probe.count("call") == 3
        clock.advance(timedelta(seconds=1))
        await wait_status(host, ids[2], S.COMPLETED)
        assert limiter.parked_task_count == 0 and limiter.throttled_until(ids[2]) is None
        # at its slot it came back through the scheduler's compare-and-set
        assert storage.of(ids[2]) == ["persist", "claim", "in_progress", "completed"]
        assert limiter.tracked_key_count == 2
    assert [n for name, _, n in probe.calls if name == "call"] == [0, 1, 0, 2]


async def test_a_slot_beyond_the_horizon_fails_a_one_shot_task_with_on_error() -> None:
    clock = ManualClock(T0)
    host, c = _host(clock)
    probe = c.probe()
    async with host:
        first = await host.dispatcher.dispatch(Short(key="k", n=1))
        await wait_status(host, first, S.COMPLETED)
        second = await host.dispatcher.dispatch(Short(key="k", n=2))
        await wait_status(host, second, S.FAILED)
        row = await host.storage.get(second)
        assert row is not None and "RateLimitRejectedError" in (row.exception or "")
        [(_, tid, error)] = [call for call in probe.calls if call[0] == "error"]
        assert tid == second and isinstance(error, RateLimitRejectedError)
        assert error.key == "k" and error.slot == T0 + timedelta(hours=1)
        assert error.policy.max_reservation_horizon == timedelta(minutes=10)
        assert host.rate_limiter.parked_task_count == 0
    assert probe.count("short") == 1


async def test_discard_fails_the_overflowing_task() -> None:
    clock = ManualClock(T0)
    host, c = _host(clock)
    probe = c.probe()
    async with host:
        first = await host.dispatcher.dispatch(Dropped(n=1))
        second = await host.dispatcher.dispatch(Dropped(n=2))
        await wait_status(host, first, S.COMPLETED)
        await wait_status(host, second, S.FAILED)
        clock.advance(timedelta(minutes=1))
        third = await host.dispatcher.dispatch(Dropped(n=3))
        await wait_status(host, third, S.COMPLETED)
    assert [c[1] for c in probe.calls if c[0] == "dropped"] == [1, 3]


async def test_a_rejected_recurring_occurrence_is_skipped_without_consuming_max_runs() -> None:
    clock = ManualClock(T0)
    host, c = _host(clock)
    probe = c.probe()
    events: list[TaskEvent] = []
    host.subscribe(events.append)
    async with host:
        # every 10 s, at most 3 runs; the budget (1 per minute, discard) admits one a minute
        tid = await host.dispatcher.dispatch(
            Dropped(n=7), lambda b: b.schedule().every(10).seconds().max_runs(3)
        )
        times: list[datetime] = []
        for _ in range(15):
            clock.advance(timedelta(seconds=10))
            await wait_until(lambda: _settled(host))
            if probe.count("dropped") > len(times):
                times.append(clock.now())
        await wait_status(host, tid, S.COMPLETED)
        row = await host.storage.get(tid)
        assert row is not None and row.current_run_count == 3 and row.next_run_utc is None
    # runs at +10 s, then the next occurrence at or after each budget slot: +70 s, +130 s
    assert times == [T0 + timedelta(seconds=s) for s in (10, 70, 130)]
    skipped = [e for e in events if e.kind is EventKind.SKIPPED]
    assert len(skipped) == 2 and all(e.severity == "Warning" for e in skipped)
    assert not any(call[0] == "error" for call in probe.calls)


async def test_cancel_while_parked_stops_the_run_for_good() -> None:
    clock = ManualClock(T0)
    host, c = _host(clock)
    probe = c.probe()
    async with host:
        ids = [await host.dispatcher.dispatch(Call(tenant="a", n=i)) for i in range(3)]
        await wait_until(lambda: host.rate_limiter.parked_task_count == 1)
        await host.dispatcher.cancel(ids[2])
        assert host.rate_limiter.parked_task_count == 0
        assert host.rate_limiter.throttled_until(ids[2]) is None
        assert host.scheduled_count == 0
        clock.advance(timedelta(minutes=5))
        await wait_until(lambda: _settled(host))
        row = await host.storage.get(ids[2])
        assert row is not None and row.status is S.CANCELLED
    assert probe.count("call") == 2


async def test_each_retry_draws_from_the_budget() -> None:
    clock = ManualClock(T0)
    host, c = _host(clock)
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Flaky(failures=1))
        # the first attempt took the only permit of the minute: the retry waits for +60 s
        await wait_until(lambda: host.rate_limiter.throttled_until(tid) is not None)
        assert host.rate_limiter.throttled_until(tid) == T0 + timedelta(minutes=1)
        assert probe.count("flaky") == 1
        row = await host.storage.get(tid)
        assert row is not None and row.status is S.IN_PROGRESS
        clock.advance(timedelta(seconds=59))
        assert probe.count("flaky") == 1
        clock.advance(timedelta(seconds=1))
        await wait_status(host, tid, S.COMPLETED)
    assert probe.count("flaky") == 2


async def test_long_keys_are_hashed() -> None:
    clock = ManualClock(T0)
    host, _ = _host(clock, rate=lambda r: r.set_max_key_length(16))
    tenant = "tenant-" + "x" * 100
    async with host:
        for i in range(3):
            await host.dispatcher.dispatch(Call(tenant=tenant, n=i))
        await wait_until(lambda: host.rate_limiter.parked_task_count == 1)
        [parked] = host.rate_limiter.parked_snapshot()
    assert parked.rate_limit_key == "sha256:" + hashlib.sha256(tenant.encode()).hexdigest()


async def test_no_key_or_a_failing_key_means_no_rate_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(T0)
    host, c = _host(clock)
    probe = c.probe()
    async with host:
        ids = [await host.dispatcher.dispatch(Keyless(tenant=None)) for _ in range(3)]
        ids += [await host.dispatcher.dispatch(Keyless(tenant="boom")) for _ in range(2)]
        for tid in ids:
            await wait_status(host, tid, S.COMPLETED)
        assert host.rate_limiter.tracked_key_count == 0
    assert probe.count("keyless") == 5
    no_key = [r for r in caplog.records if "has no rate-limit key" in r.getMessage()]
    failed = [r for r in caplog.records if "could not be computed" in r.getMessage()]
    assert len(no_key) == 1 and len(failed) == 2


async def test_deferrals_publish_one_event_per_key_per_30_seconds() -> None:
    clock = ManualClock(T0)
    host, c = _host(clock)
    probe = c.probe()
    events: list[TaskEvent] = []
    host.subscribe(events.append)
    async with host:
        for i in range(6):
            await host.dispatcher.dispatch(Call(tenant="a", n=i))
        await wait_until(lambda: host.rate_limiter.parked_task_count == 4)
        clock.advance(timedelta(seconds=31))  # one parked run starts; a new window opens
        await probe.wait_for(lambda: probe.count("call") == 3)
        await host.dispatcher.dispatch(Call(tenant="a", n=9))
        await wait_until(lambda: host.rate_limiter.parked_task_count == 4)
        await wait_until(lambda: len([e for e in events if e.kind is EventKind.RATE_LIMITED]) == 2)
    limited = [e for e in events if e.kind is EventKind.RATE_LIMITED]
    assert limited[0].extra["rateLimitKey"] == "a" and limited[0].extra["more"] == 0
    assert limited[1].extra["more"] == 3 and "3 more deferral(s)" in limited[1].message


async def test_deferral_events_can_be_switched_off() -> None:
    clock = ManualClock(T0)
    host, _ = _host(clock, rate=lambda r: r.set_emit_deferral_events(False))
    events: list[TaskEvent] = []
    host.subscribe(events.append)
    async with host:
        for i in range(3):
            await host.dispatcher.dispatch(Call(tenant="a", n=i))
        await wait_until(lambda: host.rate_limiter.parked_task_count == 1)
    assert not [e for e in events if e.kind is EventKind.RATE_LIMITED]


class _Task(EverTask):
    n: int = 0


def test_handler_declarations_are_validated_at_registration() -> None:
    class BadPolicy(EverTaskHandler[_Task]):
        rate_limit = 5  # type: ignore[assignment]

        async def handle(self, task: _Task, cancellation: CancellationToken) -> None: ...

    class BadConcurrency(EverTaskHandler[_Task]):
        max_concurrency = 0

        async def handle(self, task: _Task, cancellation: CancellationToken) -> None: ...

    class InstanceSelector(EverTaskHandler[_Task]):
        rate_limit = RateLimitPolicy(1, 1.0)

        def get_rate_limit_key(self, task: _Task) -> str:  # type: ignore[override]
            return "k"

        async def handle(self, task: _Task, cancellation: CancellationToken) -> None: ...

    for handler, match in (
        (BadPolicy, "rate_limit must be a RateLimitPolicy"),
        (BadConcurrency, "max_concurrency must be an integer >= 1"),
        (InstanceSelector, "must be a classmethod"),
    ):
        with pytest.raises(ConfigurationError, match=match):
            build_host([handler])


def test_rate_limiter_options_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="max_tracked_keys"):
        build_host(ALL, lambda o: o.configure_rate_limiter(lambda r: r.set_max_tracked_keys(0)))
    with pytest.raises(ConfigurationError, match="max_parked_tasks"):
        build_host(ALL, lambda o: o.configure_rate_limiter(lambda r: r.set_max_parked_tasks(-1)))
    with pytest.raises(ConfigurationError, match="KeyedRateLimiter"):
        build_host(ALL, lambda o: o.configure_rate_limiter(lambda r: r.use_limiter(object())))
    host, _ = build_host(ALL, lambda o: o.set_channel_capacity(1000))
    assert host.rate_limiter.max_parked_tasks == 2000
    host, _ = build_host(
        ALL, lambda o: o.configure_rate_limiter(lambda r: r.set_max_parked_tasks(7))
    )
    assert host.rate_limiter.max_parked_tasks == 7


async def test_the_limiter_fails_open_beyond_max_tracked_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(T0)
    host, c = _host(clock, rate=lambda r: r.set_max_tracked_keys(1))
    probe = c.probe()
    async with host:
        ids = [await host.dispatcher.dispatch(Call(tenant="a", n=i)) for i in range(2)]
        ids += [await host.dispatcher.dispatch(Call(tenant="b", n=i)) for i in range(4)]
        for tid in ids:
            await wait_status(host, tid, S.COMPLETED)
        assert host.rate_limiter.fail_open_count == 4
        assert host.rate_limiter.tracked_key_count == 1
    assert probe.count("call") == 6
    assert len([r for r in caplog.records if "max_tracked_keys" in r.getMessage()]) == 1
