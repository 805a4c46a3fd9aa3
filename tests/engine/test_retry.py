"""Retry policies through the engine, and the policy objects themselves."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from datetime import timedelta

import pytest

from evertask_abstractions import (
    CancellationToken,
    ConfigurationError,
    EverTask,
    EverTaskHandler,
    ExponentialRetryPolicy,
    LinearRetryPolicy,
    NoRetryPolicy,
    QueuedTaskStatus,
    TaskCancelledError,
    TaskTimeoutError,
)
from tests.engine.tasks import ALL, Flaky
from tests.helpers import Probe, build_host, wait_status

MS = timedelta(milliseconds=1)


async def test_linear_retry_until_success_calls_on_retry_with_attempt_and_delay() -> None:
    host, c = build_host(ALL, lambda o: o.set_default_retry_policy(LinearRetryPolicy(3, 10 * MS)))
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Flaky(fail_times=2))
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
    retries = [c for c in probe.calls if c[0] == "on_retry"]
    assert retries == [
        ("on_retry", 1, "ConnectionError", 10 * MS),
        ("on_retry", 2, "ConnectionError", 10 * MS),
    ]
    assert probe.count(("attempt", "flaky")) == 3
    assert "on_error" not in probe.names()


async def test_retries_exhausted_fail_with_the_last_real_exception() -> None:
    host, c = build_host(ALL, lambda o: o.set_default_retry_policy(LinearRetryPolicy([MS, 2 * MS])))
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Flaky(fail_times=10))
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
        row = await host.storage.get(tid)
    assert probe.count(("attempt", "flaky")) == 3
    assert ("on_error", "ConnectionError", "attempt 3 failed") in probe.calls
    assert row is not None and row.exception is not None
    assert row.exception.startswith("ConnectionError: attempt 3 failed")
    assert "Attempt 1 of 3: ConnectionError: attempt 1 failed" in row.exception


async def test_handle_whitelist_does_not_retry_other_errors() -> None:
    policy = LinearRetryPolicy(3, MS).handle(ConnectionError)
    host, c = build_host(ALL, lambda o: o.set_default_retry_policy(policy))
    async with host:
        tid = await host.dispatcher.dispatch(Flaky(fail_times=5, error="ValueError"))
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
    assert c.probe().count(("attempt", "flaky")) == 1


async def test_do_not_handle_blacklist() -> None:
    policy = LinearRetryPolicy(3, MS).do_not_handle(KeyError)
    host, c = build_host(ALL, lambda o: o.set_default_retry_policy(policy))
    async with host:
        t1 = await host.dispatcher.dispatch(Flaky(fail_times=5, error="KeyError", key="k"))
        t2 = await host.dispatcher.dispatch(Flaky(fail_times=1, error="ValueError", key="v"))
        await wait_status(host, t1, QueuedTaskStatus.FAILED)
        await wait_status(host, t2, QueuedTaskStatus.COMPLETED)
    assert c.probe().count(("attempt", "k")) == 1
    assert c.probe().count(("attempt", "v")) == 2


async def test_handle_when_predicate_takes_priority() -> None:
    policy = (
        LinearRetryPolicy(3, MS).handle(ValueError).handle_when(lambda e: "attempt 1" in str(e))
    )
    host, c = build_host(ALL, lambda o: o.set_default_retry_policy(policy))
    async with host:
        tid = await host.dispatcher.dispatch(Flaky(fail_times=5, error="RuntimeError"))
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
    assert c.probe().count(("attempt", "flaky")) == 2  # attempt 1 retried, attempt 2 not


async def test_exponential_policy_through_the_engine() -> None:
    policy = ExponentialRetryPolicy(3, MS, factor=2.0, max_delay=3 * MS)
    host, c = build_host(ALL, lambda o: o.set_default_retry_policy(policy))
    async with host:
        tid = await host.dispatcher.dispatch(Flaky(fail_times=3))
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
    delays = [c[3] for c in c.probe().calls if c[0] == "on_retry"]
    assert delays == [MS, 2 * MS, 3 * MS]


def test_exponential_delays_with_jitter_and_cap() -> None:
    p = ExponentialRetryPolicy(
        6,
        timedelta(seconds=1),
        factor=3,
        max_delay=timedelta(seconds=20),
        jitter=0.5,
        rng=random.Random(1),
    )
    delays = [d.total_seconds() for d in p.delays()]
    assert len(delays) == 6
    assert all(0 < d <= 20 for d in delays)
    assert (0.5 <= delays[0] <= 1.5 and delays[-1] == pytest.approx(20)) or delays[-1] <= 20
    plain = [d.total_seconds() for d in ExponentialRetryPolicy(4, 1.0, factor=2).delays()]
    assert plain == [1.0, 2.0, 4.0, 8.0]


def test_filter_priority_never_retries_cancellation_or_timeouts() -> None:
    p = LinearRetryPolicy(3, MS).handle_when(lambda e: True)
    assert not p.should_retry(asyncio.CancelledError())
    assert not p.should_retry(TaskCancelledError())
    assert not p.should_retry(TaskTimeoutError())
    assert not p.should_retry(TimeoutError())
    assert p.should_retry(ValueError())


def test_presets_match_transient_errors_by_driver_class_name() -> None:
    db = LinearRetryPolicy(1, MS).handle_transient_database_errors()
    assert db.should_retry(sqlite3.OperationalError("database is locked"))
    assert not db.should_retry(sqlite3.IntegrityError("unique"))

    class DeadlockDetectedError(Exception):  # the asyncpg name
        pass

    assert db.should_retry(DeadlockDetectedError())
    assert not db.should_retry(ConnectionResetError())
    net = LinearRetryPolicy(1, MS).handle_transient_network_errors()
    assert net.should_retry(ConnectionResetError())
    assert not net.should_retry(ValueError())

    class ConnectError(Exception):  # the httpx name
        pass

    assert net.should_retry(ConnectError())
    both = LinearRetryPolicy(1, MS).handle_all_transient_errors()
    assert both.should_retry(ConnectionRefusedError()) and both.should_retry(
        sqlite3.OperationalError()
    )


def test_policy_validation_errors() -> None:
    with pytest.raises(ConfigurationError, match="retry_count must be at least 1"):
        LinearRetryPolicy(0, MS)
    with pytest.raises(ConfigurationError, match="must be positive"):
        LinearRetryPolicy(1, timedelta(0))
    with pytest.raises(ConfigurationError, match="cannot be combined"):
        LinearRetryPolicy(1, MS).handle(ValueError).do_not_handle(KeyError)
    with pytest.raises(ConfigurationError, match="exception classes only"):
        LinearRetryPolicy(1, MS).handle("ValueError")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="jitter"):
        ExponentialRetryPolicy(1, MS, jitter=2)


class Once(EverTask):
    pass


class OnceHandler(EverTaskHandler[Once]):
    retry_policy = NoRetryPolicy()

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Once, cancellation: CancellationToken) -> None:
        self.probe.record("once")
        raise ConnectionError("no retry for me")


async def test_handler_policy_overrides_queue_and_global() -> None:
    host, c = build_host(
        [*ALL, OnceHandler], lambda o: o.set_default_retry_policy(LinearRetryPolicy(5, MS))
    )
    async with host:
        tid = await host.dispatcher.dispatch(Once())
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
    assert c.probe().count("once") == 1
