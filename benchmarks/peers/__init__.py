"""The peers suite: EverTask against Celery, Dramatiq, RQ, arq, SAQ, taskiq, procrastinate,
Huey and APScheduler 4, on the same machine, in the same run, one at a time.

``python -m benchmarks peers [--quick] [--json FILE]`` runs five workloads on every
configuration (a peer on a back end): 1. enqueue N tasks with no consumer running; 2. run N
no-op tasks end to end; 3. M tasks that each await 25 ms at concurrency 10; 4. idle
dispatch-to-start latency; 5. lateness of tasks scheduled 1 s ahead. It prints a markdown
report (tables grouped by storage class, ratios to EverTask) and keeps it, with every
worker's log, under ``<cache>/runs/<timestamp>/``.

Environment: ``EVERTASK_BENCH_PEERS`` (comma-separated configurations or prefixes, e.g.
``evertask-memory,huey``), ``EVERTASK_BENCH_CACHE`` (venvs and runs), ``EVERTASK_BENCH_REDIS``,
``EVERTASK_BENCH_PG``, ``EVERTASK_BENCH_MARKDOWN`` (also write the report there),
``EVERTASK_BENCH_WORKLOADS`` (e.g. ``execute,latency``), ``EVERTASK_BENCH_PROFILE`` (a
directory: EverTask's workers run under pyinstrument and leave ``<configuration>.txt`` there).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .harness import WORKLOADS, Counts, Outcome, run_configs, select
from .render import flat_figures, machine, render, save_run
from .services import ServiceError, Services
from .venvs import cache_dir

__all__ = ["Report", "run", "run_suite"]


@dataclass
class Report:
    """One run: the outcomes, the markdown and the flat figures."""

    outcomes: list[Outcome]
    markdown: str
    figures: dict[str, float]
    run_dir: Path


def run_suite(
    selection: str | None = None,
    quick: bool = False,
    counts: Counts | None = None,
    run_dir: Path | None = None,
    progress: bool = True,
) -> Report:
    """Run the selected configurations and build the report (the API the test uses)."""
    chosen = select(selection)
    sizes = counts if counts is not None else (Counts.quick() if quick else Counts())
    if run_dir is None:
        run_dir = cache_dir() / "runs" / time.strftime("%Y%m%d-%H%M%S")
    started, t0 = time.strftime("%Y-%m-%d %H:%M %Z"), time.monotonic()
    wanted = os.environ.get("EVERTASK_BENCH_WORKLOADS")
    workloads = tuple(w for w in WORKLOADS if not wanted or w in wanted.split(","))
    outcomes = run_configs(
        chosen,
        sizes,
        workloads=workloads,
        run_dir=run_dir,
        progress=progress,
        quiet_wait_s=0 if quick else 60,
    )
    services: dict[str, str] = {}
    svc = Services()
    for name, probe in (("Redis", svc.redis_version), ("PostgreSQL", svc.pg_version)):
        try:
            version = probe()
        except ServiceError:
            continue
        services[name] = version.removeprefix("PostgreSQL ")
    command = "python -m benchmarks peers" + (" --quick" if quick else "")
    if selection:
        command = f"EVERTASK_BENCH_PEERS={selection} {command}"
    seconds, where = time.monotonic() - t0, machine()
    meta = {
        "command": command,
        "services": services,
        "started": started,
        "seconds": seconds,
        "machine": where,
    }
    markdown = render(
        outcomes,
        sizes,
        command=command,
        services=services,
        started=started,
        seconds=seconds,
        machine_line=where,
    )
    (run_dir / "peers.md").write_text(markdown)
    save_run(run_dir / "outcomes.json", outcomes, sizes, meta)
    return Report(outcomes, markdown, flat_figures(outcomes), run_dir)


def run(quick: bool = False, json_path: str | None = None) -> dict[str, float]:
    """``python -m benchmarks peers``: run every configuration, print the report."""
    report = run_suite(os.environ.get("EVERTASK_BENCH_PEERS"), quick=quick)
    print(report.markdown)
    extra = os.environ.get("EVERTASK_BENCH_MARKDOWN")
    if extra:
        Path(extra).write_text(report.markdown)
    print(f"report and logs: {report.run_dir}", file=sys.stderr)
    if json_path:
        Path(json_path).write_text(json.dumps(report.figures, indent=2, sort_keys=True) + "\n")
        print(f"wrote {json_path}", file=sys.stderr)
    return report.figures
