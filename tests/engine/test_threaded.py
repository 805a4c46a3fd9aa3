"""HostThread: a host on its own thread and loop, for synchronous (WSGI) applications."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import containers, providers

from evertask import (
    EverTaskHost,
    EverTaskOptions,
    EverTaskServiceBuilder,
    HostState,
    HostThread,
    MemoryTaskStorage,
    add_evertask,
    start_host_in_thread,
)
from evertask_abstractions import (
    CancellationToken,
    EverTask,
    EverTaskHandler,
    HostNotRunningError,
    QueuedTaskStatus,
)

ROOT = Path(__file__).resolve().parents[2]


class Collector:
    """Thread-safe record of what handlers did; tests wait on it with a deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[tuple[Any, ...]] = []
        self.gates: dict[str, threading.Event] = {}
        self.threads: set[int] = set()

    def add(self, *item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self.threads.add(threading.get_ident())
            self._cond.notify_all()

    def gate(self, name: str) -> threading.Event:
        with self._cond:
            return self.gates.setdefault(name, threading.Event())

    def count(self, name: str) -> int:
        with self._cond:
            return sum(1 for item in self.items if item[0] == name)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"condition not met within {timeout}s; items={self.items}")


class Record(EverTask):
    n: int


class RecordHandler(EverTaskHandler[Record]):
    def __init__(self, collector: Collector) -> None:
        super().__init__()
        self._collector = collector

    async def handle(self, task: Record, cancellation: CancellationToken) -> None:
        self._collector.add("record", task.n)


class Gated(EverTask):
    name: str


class GatedHandler(EverTaskHandler[Gated]):
    """Runs until the test opens its gate (a threading.Event); cancellable meanwhile."""

    def __init__(self, collector: Collector) -> None:
        super().__init__()
        self._collector = collector

    async def handle(self, task: Gated, cancellation: CancellationToken) -> None:
        gate = self._collector.gate(task.name)
        self._collector.add("start", task.name)
        while not gate.is_set():
            await asyncio.sleep(0.002)
        self._collector.add("end", task.name)


class Container(containers.DeclarativeContainer):
    collector = providers.Singleton(Collector)


class FailingComponent:
    async def start(self, host: EverTaskHost) -> None:
        raise ValueError("the component cannot start")

    async def stop(self) -> None:
        pass


def make_builder(
    storage: MemoryTaskStorage | None = None,
    configure: Callable[[EverTaskOptions], object] | None = None,
) -> tuple[EverTaskServiceBuilder, Collector]:
    container = Container()

    def setup(opt: EverTaskOptions) -> None:
        opt.register_handler(RecordHandler, GatedHandler)
        if configure is not None:
            configure(opt)

    builder = add_evertask(container, setup).use_storage(
        MemoryTaskStorage() if storage is None else storage
    )
    return builder, container.collector()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.002)


def status(runner: HostThread, task_id: uuid.UUID) -> QueuedTaskStatus | None:
    storage = runner.host.storage
    assert storage is not None
    row = runner.run_coroutine(storage.get(task_id), timeout=5)
    return None if row is None else row.status


def test_start_returns_a_running_host_on_its_own_thread() -> None:
    builder, collector = make_builder()
    runner = start_host_in_thread(builder, stop_at_exit=False)
    try:
        assert runner.is_running
        assert runner.host.state is HostState.RUNNING
        assert runner.loop is not None
        task_id = runner.dispatcher.dispatch_sync(Record(n=1), timeout=5)
        collector.wait_for(lambda: collector.count("record") == 1)
        wait_until(lambda: status(runner, task_id) is QueuedTaskStatus.COMPLETED)
        # the handler ran on the host's thread, not on the caller's
        assert threading.get_ident() not in collector.threads
        assert "evertask-host" in repr(runner)
    finally:
        runner.stop()
    assert not runner.is_running
    assert runner.loop is None
    assert runner.host.state is HostState.STOPPED
    assert not any(t.name == "evertask-host" for t in threading.enumerate())


def test_dispatch_sync_from_many_threads_at_once() -> None:
    builder, collector = make_builder()
    with HostThread(builder, stop_at_exit=False) as runner:
        start = threading.Barrier(8)

        def worker(k: int) -> list[uuid.UUID]:
            start.wait(5)
            return [runner.dispatcher.dispatch_sync(Record(n=k * 100 + i)) for i in range(25)]

        with ThreadPoolExecutor(8) as pool:
            ids = [i for batch in pool.map(worker, range(8)) for i in batch]
        assert len(set(ids)) == 200
        collector.wait_for(lambda: collector.count("record") == 200)
        assert sorted(item[1] for item in collector.items) == sorted(
            k * 100 + i for k in range(8) for i in range(25)
        )


def test_concurrent_starts_start_the_host_once() -> None:
    builder, _ = make_builder()
    runner = HostThread(builder, stop_at_exit=False)
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: runner.start(timeout=10), range(4)))
        assert all(r is runner for r in results)
        assert runner.start() is runner  # idempotent once running
        assert [t.name for t in threading.enumerate()].count("evertask-host") == 1
    finally:
        runner.stop()


def test_a_start_failure_is_raised_in_the_caller() -> None:
    builder, _ = make_builder()
    builder.add_component(FailingComponent())
    runner = HostThread(builder, stop_at_exit=False)
    with pytest.raises(ValueError, match="cannot start"):
        runner.start(timeout=10)
    assert not runner.is_running
    assert not any(t.name == "evertask-host" for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="failed to start"):
        runner.start()
    with pytest.raises(HostNotRunningError):
        runner.dispatcher.dispatch_sync(Record(n=1))
    runner.stop()  # nothing to stop: safe


def test_stop_is_graceful_running_handlers_finish_in_the_grace_period() -> None:
    storage = MemoryTaskStorage()
    builder, collector = make_builder(storage)
    runner = HostThread(builder, stop_at_exit=False, grace_period=10).start()
    task_id = runner.dispatcher.dispatch_sync(Gated(name="drain"))
    collector.wait_for(lambda: collector.count("start") == 1)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    # the host stops taking work and waits for the running handler
    wait_until(lambda: runner.host.state is HostState.STOPPING)
    assert not runner.is_running
    with pytest.raises(HostNotRunningError):
        runner.run_coroutine(storage.get(task_id))
    collector.gate("drain").set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert ("end", "drain") in collector.items
    row = asyncio.run(storage.get(task_id))
    assert row is not None
    assert row.status is QueuedTaskStatus.COMPLETED


def test_stop_after_the_grace_period_interrupts_and_the_task_resumes_later() -> None:
    storage = MemoryTaskStorage()
    builder, collector = make_builder(storage)
    runner = HostThread(builder, stop_at_exit=False).start()
    task_id = runner.dispatcher.dispatch_sync(Gated(name="long"))
    collector.wait_for(lambda: collector.count("start") == 1)
    runner.stop(timeout=10, grace_period=0.05)
    assert ("end", "long") not in collector.items
    row = asyncio.run(storage.get(task_id))
    assert row is not None
    assert row.status is QueuedTaskStatus.SERVICE_STOPPED
    # a new host on the same storage runs it again
    builder2, collector2 = make_builder(storage)
    collector2.gate("long").set()
    with HostThread(builder2, stop_at_exit=False) as runner2:
        collector2.wait_for(lambda: collector2.count("end") == 1)
        wait_until(lambda: status(runner2, task_id) is QueuedTaskStatus.COMPLETED)


def test_stop_twice_concurrently_and_before_start_is_safe() -> None:
    builder, _ = make_builder()
    runner = HostThread(builder, stop_at_exit=False).start()
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: runner.stop(timeout=10), range(3)))
    runner.stop()
    assert runner.host.state is HostState.STOPPED
    with pytest.raises(RuntimeError, match="runs once"):
        runner.start()

    never, _ = make_builder()
    unused = HostThread(never, stop_at_exit=False)
    unused.stop()
    with pytest.raises(RuntimeError, match="runs once"):
        unused.start()


def test_the_host_thread_refuses_calls_that_would_wait_for_itself() -> None:
    builder, _ = make_builder()
    with HostThread(builder, stop_at_exit=False) as runner:

        async def stop_from_inside() -> None:
            runner.stop()

        async def dispatch_from_inside() -> uuid.UUID:
            return runner.dispatcher.dispatch_sync(Record(n=1))

        with pytest.raises(RuntimeError, match="own thread"):
            runner.run_coroutine(stop_from_inside(), timeout=5)
        with pytest.raises(RuntimeError, match="deadlock"):
            runner.run_coroutine(dispatch_from_inside(), timeout=5)
        assert runner.is_running


def test_context_manager_starts_and_stops() -> None:
    builder, collector = make_builder()
    with HostThread(builder, stop_at_exit=False) as runner:
        assert runner.is_running
        runner.dispatcher.dispatch_sync(Record(n=7))
        collector.wait_for(lambda: ("record", 7) in collector.items)
    assert not runner.is_running
    with pytest.raises(HostNotRunningError):
        runner.dispatcher.dispatch_sync(Record(n=8))

    async def noop() -> None:
        pass

    with pytest.raises(HostNotRunningError):
        runner.run_coroutine(noop())


_EXIT_AND_FORK = """
import os
import sys

from evertask import HostThread
from tests.engine.test_threaded import make_builder


class Announce:
    async def start(self, host):
        pass

    async def stop(self):
        print("stopped gracefully", flush=True)


builder, _ = make_builder()
builder.add_component(Announce())
runner = HostThread(builder).start()  # stop_at_exit: the default
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        runner.dispatcher
        message = "no error"
    except RuntimeError as error:
        message = str(error)
    os.write(write, message.encode())
    os._exit(0)
os.close(write)
os.waitpid(pid, 0)
print("child:", os.read(read, 4096).decode(), flush=True)
print("exiting without stop()", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_stops_at_exit_and_refuses_use_in_a_forked_child(tmp_path: Path) -> None:
    script = tmp_path / "exit_and_fork.py"
    script.write_text(textwrap.dedent(_EXIT_AND_FORK))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("child: This HostThread was started in process"), done.stdout
    # the atexit hook ran the host's graceful stop (its components stop first)
    assert lines[1:] == ["exiting without stop()", "stopped gracefully"], done.stdout
    assert "Traceback" not in done.stderr, done.stderr
