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


def test_the_suite_prints_batches_as_not_built_and_writes_only_measured_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = bw.chain

    async def small(n: int, directory: str | None = None) -> dict[str, Any]:
        return await real(3, directory)

    monkeypatch.setattr(bw, "chain", small)
    path = tmp_path / "workflows.json"
    results = bw.run(quick=True, json_path=str(path))
    printed = capsys.readouterr().out
    assert "batch_10k_dispatch_s" in printed and "not built yet" in printed
    assert "batch_10k_dispatch_s" not in results
    assert path.read_text().count("chain_step_overhead_ms_p50") == 1
