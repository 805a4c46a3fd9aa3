"""The throttling suite's smallest paths run and measure what they say."""

from __future__ import annotations

from benchmarks import throttling as bt


async def test_the_cpu_bound_path_measures_no_ops_beside_cpu_work_in_processes() -> None:
    out = await bt.io_start_latencies(False, 0.05)
    assert out["pool_size"] >= 1 and out["worker_nice"] == 10
    assert len(out["latencies_ms"]) >= 5
    assert all(x >= 0 for x in out["latencies_ms"])


async def test_the_inline_path_sees_the_blocked_loop() -> None:
    out = await bt.io_start_latencies(True, 0.05)
    # 8 x 50 ms on the loop: no-ops due meanwhile waited for it
    assert max(out["latencies_ms"]) >= 40


async def test_the_rate_limit_paths_run() -> None:
    assert await bt.ratelimit_cost(True, 200) > 0
    assert await bt.ratelimit_cost(False, 200) > 0


def test_the_bars_read_the_figures() -> None:
    good = {"cpu_bound_io_start_p99_ms": 1.0, "ratelimit_overhead_us_per_task": 2.0}
    assert all(passed for _, passed, _ in bt.bars(good))
    bad = {"cpu_bound_io_start_p99_ms": 6.0, "ratelimit_overhead_us_per_task": 2.0}
    assert [passed for _, passed, _ in bt.bars(bad)] == [False, True]
