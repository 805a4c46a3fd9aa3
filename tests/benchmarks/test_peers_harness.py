"""The peers harness measures what it claims: every task of every workload runs exactly once.

Runs ``--quick`` with tiny counts on EverTask (memory) and Huey (memory, consumer threads in
the worker), then re-checks the ledgers the workers leave behind. Huey's virtualenv is
cached (``~/.cache/evertask-bench``); when it cannot be built (no network) the test is
skipped, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.peers import run_suite
from benchmarks.peers.harness import WORKLOADS, Counts
from benchmarks.peers.render import flat_figures
from benchmarks.peers.venvs import VenvError, ensure_venv, load_pins
from benchmarks.peers.workers._kit import Ledger

TINY = Counts(
    enqueue=40,
    execute=40,
    sleep=20,
    latency=5,
    lateness=20,
    sleep_ms=5.0,
    timeout_s=30,
    deadline_s=90,
)
EXPECTED = {
    "warmup-producer": 1,
    "enqueue": TINY.enqueue,
    "execute": TINY.execute,
    "sleep": TINY.sleep,
    "latency": TINY.latency,
    "lateness": TINY.lateness,
}


def _ledger(path: Path) -> dict[str, Counter[int]]:
    runs: dict[str, Counter[int]] = {}
    for line in path.read_text().splitlines():
        tag, index, *_ = line.split()
        runs.setdefault(tag, Counter())[int(index)] += 1
    return runs


def test_ledger_check_catches_lost_and_repeated_tasks() -> None:
    ledger = Ledger()
    for index in (0, 1, 1, 3, 7):
        ledger.record("t", index, 0.0, 0.0, 0.0)
    problem = ledger.check("t", 4)
    assert problem is not None
    assert "1 of 4 never ran" in problem
    assert "1 extra executions" in problem
    assert "1 unknown ids" in problem
    ok = Ledger()
    for index in range(3):
        ok.record("t", index, 0.0, 0.0, 0.0)
    assert ok.check("t", 3) is None


@pytest.fixture(scope="module")
def huey_venv() -> None:
    try:
        ensure_venv(load_pins()["huey"])
    except VenvError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Huey's virtualenv cannot be built here: {exc}")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("huey_venv")
def test_quick_run_every_task_runs_exactly_once(tmp_path: Path) -> None:
    report = run_suite(
        "evertask-memory,huey-memory", quick=True, counts=TINY, run_dir=tmp_path, progress=False
    )
    keys = [o.config.key for o in report.outcomes]
    assert keys == ["evertask-memory", "huey-memory"]
    for outcome in report.outcomes:
        key = outcome.config.key
        assert outcome.na == {}, (key, outcome.na)
        assert set(outcome.figures) == set(WORKLOADS)
        runs = _ledger(tmp_path / key / "ledger.txt")
        for tag, count in EXPECTED.items():
            assert runs.get(tag) == Counter(range(count)), (key, tag, runs.get(tag))
        warmups = [tag for tag in runs if tag.startswith("warmup") and tag != "warmup-producer"]
        assert warmups and all(runs[tag] == Counter([0]) for tag in warmups), (key, warmups)
    assert "| **EverTask 0.1.0** (memory) |" in report.markdown
    assert "Huey 3.5.4 (memory)" in report.markdown
    assert "huey-memory.execute.ratio" in flat_figures(report.outcomes)
