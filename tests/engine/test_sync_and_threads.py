"""Synchronous handlers run in threads; dispatch_sync works from any thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from evertask_abstractions import QueuedTaskStatus
from tests.engine.tasks import ALL, Ping, SyncWork
from tests.helpers import build_host, wait_status


async def test_sync_handler_runs_in_a_thread_and_does_not_block_the_loop() -> None:
    host, c = build_host(ALL)
    probe = c.probe()
    async with host:
        slow = await host.dispatcher.dispatch(SyncWork(name="busy", spin_seconds=0.5))
        await probe.wait_for(lambda: probe.count("sync-start") == 1)
        # while the sync handler spins, the loop keeps serving other tasks
        ticks = 0
        for i in range(5):
            await host.dispatcher.dispatch(Ping(n=i))
            ticks += 1
        await probe.wait_for(lambda: probe.count("ping") == 5)
        assert ("sync-end", "busy") not in probe.calls  # the pings finished first
        await wait_status(host, slow, QueuedTaskStatus.COMPLETED)
    thread_name = [c for c in probe.calls if c[0] == "sync-start"][0][2]
    assert thread_name.startswith("evertask-sync")
    assert thread_name != threading.main_thread().name


async def test_dispatch_sync_from_eight_threads_at_once() -> None:
    host, c = build_host(ALL)
    probe = c.probe()
    async with host:
        loop_thread = threading.get_ident()

        def worker(k: int) -> list[object]:
            assert threading.get_ident() != loop_thread
            return [
                host.dispatcher.dispatch_sync(Ping(n=k * 100 + i), timeout=10) for i in range(25)
            ]

        with ThreadPoolExecutor(8) as pool:
            results = await asyncio.gather(
                *(asyncio.get_running_loop().run_in_executor(pool, worker, k) for k in range(8))
            )
        ids = [i for r in results for i in r]
        assert len(set(ids)) == 200
        await probe.wait_for(lambda: probe.count("ping") == 200)
        assert sorted(c[1] for c in probe.calls if c[0] == "ping") == sorted(
            k * 100 + i for k in range(8) for i in range(25)
        )


async def test_dispatch_sync_on_the_loop_thread_is_refused() -> None:
    host, _ = build_host(ALL)
    async with host:
        with pytest.raises(RuntimeError, match="deadlock"):
            host.dispatcher.dispatch_sync(Ping())
