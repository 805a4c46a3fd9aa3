"""The workflows suite's smallest path runs and measures what it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import workflows as bw


async def test_the_chain_runs_every_step_as_a_continuation_and_measures_each_hand_over(
    tmp_path: Path,
) -> None:
    out = await bw.chain(5, str(tmp_path))
    assert len(out["gaps_ms"]) == 4
    # each step started after the one before it ended: it waited for its parent
    assert all(gap > 0 for gap in out["gaps_ms"])
    assert out["dispatch_s"] > 0 and out["run_s"] > 0


def test_the_bar_reads_the_p50() -> None:
    assert [passed for _, passed, _ in bw.bars({"chain_step_overhead_ms_p50": 1.5})] == [True]
    assert [passed for _, passed, _ in bw.bars({"chain_step_overhead_ms_p50": 2.5})] == [False]


async def test_the_batch_is_dispatched_whole_and_its_continuation_waits_for_every_member(
    tmp_path: Path,
) -> None:
    out = await bw.batch(20, str(tmp_path))
    assert out["succeeded"] == 20  # the continuation ran after every member completed
    assert 0 < out["dispatch_s"] < out["run_s"] and out["floor_s"] > 0


def test_the_suite_scales_a_quick_batch_to_10k_and_writes_both_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_chain, real_batch = bw.chain, bw.batch

    async def small(n: int, directory: str | None = None) -> dict[str, Any]:
        return await real_chain(3, directory)

    async def small_batch(n: int, directory: str | None = None) -> dict[str, Any]:
        assert n == 1_000  # --quick
        out = await real_batch(10, directory)
        return {**out, "dispatch_s": 0.1, "floor_s": 0.01}

    monkeypatch.setattr(bw, "chain", small)
    monkeypatch.setattr(bw, "batch", small_batch)
    path = tmp_path / "workflows.json"
    results = bw.run(quick=True, json_path=str(path))
    printed = capsys.readouterr().out
    assert "batch_10k_dispatch_s <= 2" in printed and "PASS (1.000 s)" in printed
    assert results["batch_10k_dispatch_s"] == 1.0 and results["batch_ratio_to_floor"] == 10.0
    assert path.read_text().count("chain_step_overhead_ms_p50") == 1
