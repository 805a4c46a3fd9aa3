"""Each dispatch form, and the clear errors of bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from evertask_abstractions import (
    HostNotRunningError,
    QueuedTaskStatus,
    ScheduleError,
    TaskNotRegisteredError,
    TaskSerializationError,
)
from tests.engine.tasks import ALL, NotSerializable, Ping, Unregistered
from tests.helpers import build_host, wait_status


async def test_immediate_dispatch_runs_and_completes() -> None:
    host, c = build_host(ALL)
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=7))
        assert isinstance(tid, uuid.UUID) and tid.version == 7
        await c.probe().wait_for(lambda: ("ping", 7) in c.probe().calls)
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
        row = await host.storage.get(tid)
        assert row is not None
        assert row.type.endswith(":Ping") and row.request == '{"n":7}'
        assert row.last_execution_utc is not None and row.execution_time_ms >= 0


async def test_ids_are_time_ordered() -> None:
    host, _ = build_host(ALL)
    async with host:
        ids = [await host.dispatcher.dispatch(Ping(n=i)) for i in range(50)]
    assert ids == sorted(ids, key=lambda u: u.int)
    assert len(set(ids)) == 50


async def test_delayed_dispatch_waits_then_runs() -> None:
    host, c = build_host(ALL)
    async with host:
        before = datetime.now(UTC)
        tid = await host.dispatcher.dispatch(Ping(n=1), timedelta(milliseconds=150))
        row = await host.storage.get(tid)
        assert row is not None and row.status is QueuedTaskStatus.WAITING_QUEUE
        assert row.scheduled_execution_utc is not None
        await c.probe().wait_for(lambda: ("ping", 1) in c.probe().calls)
        assert datetime.now(UTC) - before >= timedelta(milliseconds=150)


async def test_dispatch_at_aware_datetime_and_past_runs_now() -> None:
    host, c = build_host(ALL)
    async with host:
        at = datetime.now(UTC) + timedelta(milliseconds=100)
        await host.dispatcher.dispatch(Ping(n=2), at)
        past = datetime(2000, 1, 1, tzinfo=UTC)
        tid = await host.dispatcher.dispatch(Ping(n=3), past)
        row = await host.storage.get(tid)
        assert row is not None and row.scheduled_execution_utc is None  # a past time runs now
        await c.probe().wait_for(lambda: {("ping", 2), ("ping", 3)} <= set(c.probe().calls))


async def test_zero_delay_runs_now() -> None:
    host, c = build_host(ALL)
    async with host:
        await host.dispatcher.dispatch(Ping(n=4), timedelta(0))
        await c.probe().wait_for(lambda: ("ping", 4) in c.probe().calls)


async def test_naive_datetime_is_rejected_clearly() -> None:
    host, _ = build_host(ALL)
    async with host:
        with pytest.raises(ScheduleError, match="Naive datetime .* aware datetime"):
            await host.dispatcher.dispatch(Ping(), datetime(2030, 1, 1))


async def test_negative_delay_is_rejected_clearly() -> None:
    host, _ = build_host(ALL)
    async with host:
        with pytest.raises(ScheduleError, match="must not be negative"):
            await host.dispatcher.dispatch(Ping(), timedelta(seconds=-1))


async def test_unknown_when_type_is_rejected() -> None:
    host, _ = build_host(ALL)
    async with host:
        with pytest.raises(TypeError, match="when must be None, a timedelta"):
            await host.dispatcher.dispatch(Ping(), 5)  # type: ignore[arg-type]


async def test_unregistered_task_is_a_clear_error() -> None:
    host, _ = build_host(ALL)
    async with host:
        with pytest.raises(
            TaskNotRegisteredError,
            match=r"No handler is registered for task Unregistered.*EverTaskHandler\[Unregistered\]",
        ):
            await host.dispatcher.dispatch(Unregistered())


async def test_non_json_payload_is_a_clear_error_and_nothing_is_stored() -> None:
    host, _ = build_host(ALL)
    async with host:
        with pytest.raises(TaskSerializationError, match="cannot be serialized to JSON"):
            await host.dispatcher.dispatch(NotSerializable(thing=object()))
        page = await host.storage.count_by_status()
        assert page == {}


async def test_dispatch_before_start_is_a_clear_error() -> None:
    host, _ = build_host(ALL)
    with pytest.raises(HostNotRunningError, match="start it first"):
        await host.dispatcher.dispatch(Ping())


async def test_dispatch_after_stop_is_rejected() -> None:
    host, _ = build_host(ALL)
    async with host:
        pass
    with pytest.raises(HostNotRunningError):
        await host.dispatcher.dispatch(Ping())


async def test_host_runs_once() -> None:
    host, _ = build_host(ALL)
    async with host:
        pass
    with pytest.raises(RuntimeError, match="a host runs once"):
        await host.start()


async def test_dispatch_without_storage_runs_in_memory() -> None:
    host, c = build_host(ALL, storage=False)
    async with host:
        assert host.storage is None
        await host.dispatcher.dispatch(Ping(n=9))
        await host.dispatcher.dispatch(Ping(n=10), timedelta(milliseconds=20))
        await c.probe().wait_for(lambda: {("ping", 9), ("ping", 10)} <= set(c.probe().calls))


async def test_dispatcher_is_injectable_from_the_container() -> None:
    host, c = build_host(ALL)
    assert c.evertask_dispatcher() is host.dispatcher
    assert c.evertask_host() is host
