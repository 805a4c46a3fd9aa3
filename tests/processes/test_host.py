"""Handlers running work in the host's worker processes: results, failures, logs, traces,
timeouts, cancellation, and no worker left behind when the host stops."""

from __future__ import annotations

import time
from typing import Any

import psutil

from evertask import EverTaskOptions
from evertask.processes import ProcessPool
from evertask_abstractions import QueuedTaskStatus, TaskTimeoutError
from tests.helpers import Probe, build_host, wait_status, wait_until
from tests.processes.tasks import (
    ALL,
    Chatty,
    Endless,
    Failing,
    Fib,
    Square,
    Stuck,
    Traced,
    TracedHandler,
    fib,
)
from tests.processes.test_pool import gone

S = QueuedTaskStatus


def small_pool(o: EverTaskOptions) -> None:
    o.configure_process_pool(lambda p: p.set_size(2))


async def test_cpu_bound_handler_computes_in_a_worker_with_host_dependencies() -> None:
    host, container = build_host(ALL, small_pool)
    probe: Probe = container.probe()
    async with host:
        assert host.process_pool.worker_pids == []  # lazily: nothing before the first call
        tid = await host.dispatcher.dispatch(Fib(n=20))
        await wait_status(host, tid, S.COMPLETED, timeout=20)
        (_, n, value, worker) = probe.calls[-1]
        assert (n, value) == (20, fib(20))
        assert worker in host.process_pool.worker_pids and worker != psutil.Process().pid
        tid = await host.dispatcher.dispatch(Square(x=7))
        await wait_status(host, tid, S.COMPLETED, timeout=20)
        assert probe.calls[-1] == ("square", 49)


async def test_the_pool_is_injectable_by_type() -> None:
    host, _ = build_host(ALL, small_pool)
    descriptor = next(d for d in host.handlers if d.handler_class.__name__ == "FibHandler")
    assert descriptor.factory is not None
    assert isinstance(host.process_pool, ProcessPool)


async def test_a_failure_is_stored_with_the_worker_traceback_and_retried() -> None:
    host, container = build_host(ALL, small_pool)
    probe: Probe = container.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Failing(message="kaput"))
        await wait_status(host, tid, S.FAILED, timeout=20)
        row = await host.storage.get(tid)  # type: ignore[union-attr]
    assert probe.count("attempt") == 3  # LinearRetryPolicy(2, ...): retried per policy
    [(_, error)] = [c for c in probe.calls if c[0] == "on_error"]
    assert isinstance(error, ValueError) and str(error) == "kaput"  # the real exception
    text = row.exception
    assert text.startswith("ValueError: kaput")
    assert "RemoteTraceback" in text and "in fail" in text and "raise ValueError(message)" in text


async def test_worker_log_records_are_kept_with_the_run_logs() -> None:
    host, _ = build_host(ALL, lambda o: (small_pool(o), o.with_persistent_logger()))
    async with host:
        tid = await host.dispatcher.dispatch(Chatty(tag="c1"))
        await wait_status(host, tid, S.COMPLETED, timeout=20)
        logs = list(await host.storage.get_execution_logs(tid))  # type: ignore[union-attr]
    assert [log.message for log in logs] == [
        "c1 before",
        "c1 worker line 0",
        "c1 worker line 1",
        "c1 worker warning",
        "c1 after",
    ]
    assert [log.level for log in logs] == ["Information"] * 3 + ["Warning", "Information"]
    assert "KeyError: 'c1'" in (logs[3].exception_details or "")


async def test_worker_records_reach_the_host_logging(caplog: Any) -> None:
    caplog.set_level("INFO", logger="tests.processes.work")
    host, _ = build_host(ALL, small_pool)
    async with host:
        tid = await host.dispatcher.dispatch(Chatty(tag="c2"))
        await wait_status(host, tid, S.COMPLETED, timeout=20)
    records = [r for r in caplog.records if r.name == "tests.processes.work"]
    assert [r.getMessage() for r in records] == [
        "c2 worker line 0",
        "c2 worker line 1",
        "c2 worker warning",
    ]
    assert all(r.process != psutil.Process().pid for r in records)  # made in the worker
    assert records[0].evertask_task_id == tid  # and tagged with the run's task id


async def test_a_timeout_terminates_the_worker_and_the_attempt_is_retried_per_policy() -> None:
    host, container = build_host(ALL, small_pool)
    probe: Probe = container.probe()
    pool = host.process_pool
    seen: list[tuple[int, float]] = []
    async with host:
        await pool.warm_up(1)
        tid = await host.dispatcher.dispatch(Stuck())
        for attempt in range(1, 4):  # 1 attempt + 2 retries, each timed out at 0.3 s
            await probe.wait_for(lambda a=attempt: probe.count("attempt") == a, 10)  # type: ignore[misc]
            await wait_until(lambda: pool.stats()["busy"] == 1, 10)
            seen.append((pool.worker_pids[0], time.monotonic()))
        await wait_status(host, tid, S.FAILED, timeout=10)
        for pid, started in seen:
            await wait_until(lambda pid=pid: gone(pid), 1.5)  # type: ignore[misc]
            # the attempt ran 0.3 s, then its worker was gone within 1 s
            assert time.monotonic() - started < 0.3 + 1.0 + 0.5
        row = await host.storage.get(tid)  # type: ignore[union-attr]
    assert len({pid for pid, _ in seen}) == 3  # a new worker each attempt
    assert row.exception.startswith(TaskTimeoutError.__module__)
    assert "timed out after 0.3 s" in row.exception
    assert pool.stats()["terminated"] == 3


async def test_cancelling_the_task_terminates_its_worker() -> None:
    host, container = build_host(ALL, small_pool)
    probe: Probe = container.probe()
    pool = host.process_pool
    async with host:
        tid = await host.dispatcher.dispatch(Endless())
        await probe.wait_for(lambda: probe.count("started") == 1, 10)
        await wait_until(lambda: pool.stats()["busy"] == 1, 10)
        victim = pool.worker_pids[0]
        await host.dispatcher.cancel(tid)
        await wait_status(host, tid, S.CANCELLED, timeout=5)
        await wait_until(lambda: gone(victim), 1.0)
    assert ("cancelled", True) in probe.calls


async def test_stopping_the_host_leaves_no_worker_behind() -> None:
    host, container = build_host(ALL, lambda o: (small_pool(o), o.set_shutdown_grace_period(0.2)))
    probe: Probe = container.probe()
    async with host:
        await host.process_pool.warm_up()
        await host.dispatcher.dispatch(Endless())  # still running when the host stops
        await probe.wait_for(lambda: probe.count("started") == 1, 10)
        pids = host.process_pool.worker_pids
        assert len(pids) == 2
        children = {p.pid for p in psutil.Process().children(recursive=True)}
        assert set(pids) <= children
    assert all(gone(pid) for pid in pids)


async def test_the_trace_continues_in_the_worker(otel: Any) -> None:
    host, container = build_host([TracedHandler], small_pool, builder=lambda b: otel.install(b))
    probe: Probe = container.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Traced())
        await wait_status(host, tid, S.COMPLETED, timeout=20)
    [(_, here, there)] = [c for c in probe.calls if c[0] == "trace"]
    assert int(here, 16) != 0 and there == here
