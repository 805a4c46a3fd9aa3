"""The process pool on its own: results, errors, crashes, timeouts, recycling, options."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest

from evertask import add_evertask
from evertask.options import ProcessPoolOptions
from evertask.processes import ProcessPool
from evertask_abstractions import (
    ConfigurationError,
    CpuBoundHandler,
    EverTask,
    ProcessPoolClosedError,
    ProcessTaskError,
    RemoteTraceback,
    WorkerCrashedError,
)
from tests.helpers import wait_until
from tests.processes import work


@pytest.fixture
async def pool() -> AsyncIterator[ProcessPool]:
    pool = ProcessPool(ProcessPoolOptions(size=2))
    yield pool
    await pool.stop()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_results_come_back_and_no_process_starts_before_the_first_call(
    pool: ProcessPool,
) -> None:
    assert pool.worker_pids == []
    assert await pool.run(work.square, 12) == 144
    assert await pool.run(work.async_square, 5) == 25  # an async function runs in the worker
    results = await asyncio.gather(*(pool.run(work.square, i) for i in range(20)))
    assert results == [i * i for i in range(20)]
    pids = set(await asyncio.gather(*(pool.run(work.pid) for _ in range(10))))
    assert os.getpid() not in pids
    assert len(pool.worker_pids) <= 2 and pids <= set(pool.worker_pids)
    assert pool.start_method == "forkserver"  # the default on Linux


async def test_an_exception_comes_back_as_itself_with_the_worker_traceback(
    pool: ProcessPool,
) -> None:
    with pytest.raises(ValueError, match="boom") as raised:
        await pool.run(work.fail, "boom")
    cause = raised.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert 'work.py", line' in cause.text and "in fail" in cause.text
    assert "raise ValueError(message)" in cause.text
    assert "worker.py" not in cause.text  # the pool's own frames are left out
    assert await pool.run(work.square, 3) == 9  # the worker survives an exception


async def test_an_unpicklable_exception_arrives_as_process_task_error(pool: ProcessPool) -> None:
    with pytest.raises(ProcessTaskError) as raised:
        await pool.run(work.fail_unpicklable)
    error = raised.value
    assert error.exception_type == "tests.processes.work.Unpicklable"
    assert "1/2" in str(error)
    assert "in fail_unpicklable" in error.remote_traceback


async def test_unpicklable_work_is_refused_before_any_process_starts(pool: ProcessPool) -> None:
    with pytest.raises(TypeError, match="must be picklable"):
        await pool.run(lambda: 1)
    assert pool.worker_pids == []


async def test_a_crashed_worker_fails_its_call_and_is_replaced(pool: ProcessPool) -> None:
    with pytest.raises(WorkerCrashedError, match="killed by SIGKILL") as raised:
        await pool.run(work.kill_self)
    assert raised.value.exitcode == -signal.SIGKILL
    assert await pool.run(work.square, 4) == 16
    assert pool.stats()["crashed"] == 1


async def test_a_worker_killed_while_idle_is_replaced(pool: ProcessPool) -> None:
    first = await pool.run(work.pid)
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: first not in pool.worker_pids, 5)
    second = await pool.run(work.pid)
    assert second != first


async def test_cancelling_a_call_terminates_exactly_its_worker(pool: ProcessPool) -> None:
    other = await pool.run(work.pid)
    call = asyncio.ensure_future(pool.run(work.spin_forever))
    await wait_until(lambda: pool.stats()["busy"] == 1, 5)
    busy = [p for p in pool.worker_pids if p != other] or pool.worker_pids
    victim = busy[0]
    started = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_until(lambda: gone(victim), 1.0)
    assert time.monotonic() - started < 1.0
    assert pool.stats()["terminated"] == 1
    if victim != other:
        assert not gone(other)  # the idle worker lives on
    assert await pool.run(work.square, 6) == 36


async def test_a_timeout_terminates_the_worker_within_a_second(pool: ProcessPool) -> None:
    call = asyncio.ensure_future(pool.run(work.spin_forever))
    await wait_until(lambda: pool.stats()["busy"] == 1, 5)
    victim = pool.worker_pids[0]
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call, 0.2)
    await wait_until(lambda: gone(victim), 1.5)
    assert time.monotonic() - started < 1.2


async def test_a_worker_ignoring_sigterm_is_killed_after_the_grace() -> None:
    pool = ProcessPool(ProcessPoolOptions(size=1).set_terminate_timeout(0.2))
    try:
        await pool.run(work.ignore_sigterm)
        call = asyncio.ensure_future(pool.run(work.spin_forever))
        await wait_until(lambda: pool.stats()["busy"] == 1, 5)
        victim = pool.worker_pids[0]
        call.cancel()
        started = time.monotonic()
        await wait_until(lambda: gone(victim), 2.0)
        assert 0.15 < time.monotonic() - started < 1.0
    finally:
        await pool.stop()


async def test_workers_are_recycled_after_max_tasks() -> None:
    pool = ProcessPool(ProcessPoolOptions(size=1).set_max_tasks_per_worker(2))
    try:
        pids = [await pool.run(work.pid) for _ in range(5)]
    finally:
        await pool.stop()
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert pool.stats()["recycled"] == 2


async def test_calls_beyond_the_size_wait_for_a_worker() -> None:
    pool = ProcessPool(ProcessPoolOptions(size=2))
    try:
        results = await asyncio.gather(*(pool.run(work.spin, 0.05) for _ in range(6)))
        assert all(n > 0 for n in results)
        assert pool.stats()["started"] == 2
    finally:
        await pool.stop()


async def test_the_initializer_runs_in_each_worker() -> None:
    pool = ProcessPool(ProcessPoolOptions(size=1).set_initializer(work.remember, "ready"))
    try:
        assert await pool.run(work.initialized) == ["ready"]
    finally:
        await pool.stop()


async def test_a_failing_initializer_fails_the_call_with_its_traceback() -> None:
    pool = ProcessPool(ProcessPoolOptions(size=1).set_initializer(work.broken_initializer))
    try:
        with pytest.raises(WorkerCrashedError, match="initializer says no"):
            await pool.run(work.square, 2)
    finally:
        await pool.stop()


async def test_spawn_works_too() -> None:
    pool = ProcessPool(ProcessPoolOptions(size=1).set_start_method("spawn"))
    try:
        assert await pool.run(work.square, 9) == 81
    finally:
        await pool.stop()


async def test_stop_ends_every_worker_and_refuses_later_calls() -> None:
    pool = ProcessPool(ProcessPoolOptions(size=2))
    await pool.warm_up()
    pids = pool.worker_pids
    assert len(pids) == 2
    busy = asyncio.ensure_future(pool.run(work.spin_forever))
    await wait_until(lambda: pool.stats()["busy"] == 1, 5)
    await pool.stop()
    assert all(gone(p) for p in pids)
    with pytest.raises(ProcessPoolClosedError):
        await busy
    with pytest.raises(ProcessPoolClosedError):
        await pool.run(work.square, 1)


def test_fork_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="forkserver"):
        ProcessPoolOptions().set_start_method("fork")
    with pytest.raises(ConfigurationError, match="refuses the 'fork'"):
        ProcessPool(ProcessPoolOptions(start_method="fork"))
    with pytest.raises(ConfigurationError, match="refuses the 'fork'"):
        add_evertask(None, lambda o: o.configure_process_pool(lambda p: p.set_start_method("fork")))


def test_options_validate() -> None:
    options = ProcessPoolOptions()
    assert options.effective_size == (os.cpu_count() or 1)
    for bad in (
        lambda: options.set_size(0),
        lambda: options.set_max_tasks_per_worker(0),
        lambda: options.set_start_method("teleport"),
        lambda: options.set_initializer("not callable"),  # type: ignore[arg-type]
        lambda: options.set_worker_nice(-1),
        lambda: options.set_terminate_timeout(-1),
        lambda: options.set_worker_log_level("LOUD"),
    ):
        with pytest.raises(ConfigurationError):
            bad()


def test_compute_must_not_need_an_instance() -> None:
    class Job(EverTask):
        pass

    with pytest.raises(ConfigurationError, match="@staticmethod"):

        class Bad(CpuBoundHandler[Job]):  # type: ignore[misc]
            def compute(self, task: Any) -> None:
                pass


async def test_run_in_process_outside_a_host_says_what_to_do() -> None:
    from tests.processes.tasks import SquareHandler

    handler = SquareHandler(probe=None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="host.process_pool.run"):
        await handler.run_in_process(work.square, 2)
