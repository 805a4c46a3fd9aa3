"""The markdown report: one table per storage class, each figure with its ratio to EverTask.

Every figure is a time (lower is better); a ratio is the peer's figure divided by
EverTask's in the same class, so x2.0 means the peer took twice as long as EverTask and
x0.5 half as long.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .harness import CONFIGS, Counts, Outcome

__all__ = [
    "CLASSES",
    "Win",
    "baseline",
    "flat_figures",
    "load_run",
    "machine",
    "render",
    "save_run",
    "wins",
]


@dataclass(frozen=True)
class StorageClass:
    """A group of rows compared with one EverTask configuration."""

    key: str
    title: str
    ours: tuple[str, ...]  # EverTask configurations to compare with, first available wins
    references: tuple[str, ...] = ()  # other EverTask rows shown for context, no ratios


CLASSES = (
    StorageClass("memory", "In-process, memory", ("evertask-memory",)),
    StorageClass("sqlite", "In-process, SQLite file", ("evertask-sqlite",)),
    StorageClass("redis", "Redis", ("evertask-postgres", "evertask-memory"), ("evertask-memory",)),
    StorageClass("postgres", "PostgreSQL", ("evertask-postgres",)),
)

BACKENDS = {"memory": "memory", "sqlite": "SQLite", "redis": "Redis", "postgres": "PostgreSQL"}

# workload -> the figures shown (the first is the headline used for "who wins")
FIGURES: dict[str, tuple[str, ...]] = {
    "enqueue": ("seconds",),
    "execute": ("seconds",),
    "sleep": ("seconds",),
    "latency": ("p50_ms", "p99_ms"),
    "lateness": ("p50_ms", "p99_ms"),
}


@dataclass(frozen=True)
class Win:
    """A figure where a peer did better than EverTask in the same class."""

    storage: str
    config: str
    workload: str
    figure: str
    peer_value: float
    our_value: float


def _headers(counts: Counts) -> list[str]:
    ideal = counts.sleep * counts.sleep_ms / 1000 / counts.sleep_concurrency
    return [
        f"1. enqueue {counts.enqueue:,} (s)",
        f"2. run {counts.execute:,} no-ops (s)",
        f"3. {counts.sleep:,} x {counts.sleep_ms:g} ms, c={counts.sleep_concurrency} "
        f"(s; ideal {ideal:g})",
        "4. idle start latency p50 / p99 (ms)",
        f"5. lateness, 1 s ahead, p50 / p99 (ms; {counts.lateness:,} tasks)",
    ]


def fmt(value: float) -> str:
    """Three significant digits, thousands separated."""
    if math.isnan(value):
        return "?"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.4f}"


def ratio(peer: float, ours: float) -> str:
    """``x2.3``; a dash when a ratio means nothing (zero or negative figures)."""
    if ours <= 0 or peer <= 0 or math.isnan(peer) or math.isnan(ours):
        return "-"
    r = peer / ours
    if r < 0.1:
        return f"x{r:.2g}"
    if r >= 100:
        return f"x{r:,.0f}"
    if r >= 10:
        return f"x{r:.0f}"
    return f"x{r:.1f}"


def baseline(outcomes: list[Outcome], storage: StorageClass) -> Outcome | None:
    """EverTask's outcome that a class is compared with (the first one that ran)."""
    by_key = {o.config.key: o for o in outcomes}
    for key in storage.ours:
        outcome = by_key.get(key)
        if outcome is not None and outcome.figures:
            return outcome
    return None


def wins(outcomes: list[Outcome]) -> list[Win]:
    """Every figure where a peer did better than EverTask in its class."""
    out: list[Win] = []
    for storage in CLASSES:
        ours = baseline(outcomes, storage)
        if ours is None:
            continue
        for o in outcomes:
            if o.config.storage != storage.key or o.config.ours:
                continue
            for workload, names in FIGURES.items():
                mine, theirs = ours.figures.get(workload), o.figures.get(workload)
                if mine is None or theirs is None:
                    continue
                for name in names:
                    # a task started early is not "better": compare distances from due time
                    a, b = abs(theirs[name]), abs(mine[name])
                    if a < b * 0.95:  # within 5 %: noise, not a win
                        out.append(Win(storage.key, o.config.key, workload, name, a, b))
    return out


def _label(o: Outcome, ours: Outcome | None) -> str:
    name = f"{o.config.label} {o.versions.get(o.config.peer, '')}".strip()
    if o is ours:
        return f"**{name}** ({o.config.backend})"
    if o.config.ours:
        return f"*{name}* ({o.config.backend}; for reference, no ratios)"
    return f"{name} ({o.config.backend})"


def _cell(o: Outcome, ours: Outcome | None, workload: str, notes: list[str]) -> str:
    figures = o.figures.get(workload)
    if figures is None:
        reason = o.na.get(workload, "not run")
        if reason not in notes:
            notes.append(reason)
        return f"n/a ({notes.index(reason) + 1})"
    names = FIGURES[workload]
    values = " / ".join(fmt(figures[n]) for n in names)
    if o is ours:
        return f"**{values}**"
    if o.config.ours:
        return f"*{values}*"
    base = ours.figures.get(workload) if ours is not None else None
    if base is None:
        return values
    ratios = " / ".join(ratio(figures[n], base[n]) for n in names)
    return f"{values} ({ratios})"


def render_tables(outcomes: list[Outcome], counts: Counts) -> str:
    """The tables alone, one per storage class that has rows."""
    parts: list[str] = []
    shown = [w for w in FIGURES if any(w in o.figures or w in o.na for o in outcomes)]
    workloads = shown or list(FIGURES)
    headers = dict(zip(FIGURES, _headers(counts), strict=True))
    for storage in CLASSES:
        rows = [o for o in outcomes if o.config.storage == storage.key]
        ours = baseline(outcomes, storage)
        if ours is not None and ours not in rows:
            rows.insert(0, ours)
        for key in storage.references:
            extra = next((o for o in outcomes if o.config.key == key), None)
            if extra is not None and extra not in rows:
                rows.insert(1, extra)
        if not [o for o in rows if not o.config.ours] and storage.key == "redis":
            continue
        if not rows:
            continue
        compared = (
            f"Ratios to {ours.config.label} on {BACKENDS[ours.config.backend]}."
            if ours is not None
            else "No EverTask figures to compare with."
        )
        if storage.key == "redis" and ours is not None:
            compared += (
                " EverTask has no Redis storage: PostgreSQL is its out-of-process durable "
                "store, the closest match to a Redis-backed queue; EverTask on memory is "
                "shown for reference."
                if ours.config.backend == "postgres"
                else " EverTask has no Redis storage."
            )
        notes: list[str] = []
        lines = [
            f"### {storage.title}",
            "",
            compared,
            "",
            "| peer | " + " | ".join(headers[w] for w in workloads) + " |",
            "|---" * (len(workloads) + 1) + "|",
        ]
        for o in rows:
            cells = [_cell(o, ours, w, notes) for w in workloads]
            lines.append(f"| {_label(o, ours)} | " + " | ".join(cells) + " |")
        if notes:
            lines.append("")
            lines.extend(f"({i}) {note}" for i, note in enumerate(notes, 1))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def machine(busy: list[float] | None = None) -> str:
    """CPU model, cores, memory, OS and Python of this machine."""
    cpu, memory = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.0f} GB RAM"
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()} "
        f"({platform.machine()}), CPython {platform.python_version()}"
    )


def render(
    outcomes: list[Outcome],
    counts: Counts,
    *,
    command: str,
    services: dict[str, str],
    started: str,
    seconds: float,
    machine_line: str | None = None,
) -> str:
    """The whole report: tables, settings, versions, machine, who beats EverTask where."""
    lines = [
        f"Command: `{command}` ({started}, {seconds / 60:.1f} min). "
        f"Machine: {machine_line or machine()}. "
        + ", ".join(f"{k} {v}" for k, v in services.items())
        + ".",
        "",
        "Every figure is a time, lower is better; the ratio in brackets is the peer's figure "
        "divided by EverTask's in the same class (x2.0: twice EverTask's time). Concurrency "
        f"{counts.concurrency} everywhere (EverTask's default `max(4, cpus*2)`), "
        f"{counts.sleep_concurrency} for workload 3. Each workload checks that every task id "
        "ran exactly once before it reports a figure.",
        "",
        render_tables(outcomes, counts),
        "",
        "Settings (each peer as its documentation recommends for throughput, at the same "
        "concurrency):",
        "",
    ]
    for o in outcomes:
        lines.append(f"- {o.config.label} ({o.config.backend}): {o.settings or '?'}")
    lines += ["", "Versions:", ""]
    for o in outcomes:
        versions = ", ".join(f"{k} {v}" for k, v in o.versions.items()) or "?"
        busy = (
            "" if math.isnan(o.busy_before) else f"; machine CPU busy before: {o.busy_before:.0%}"
        )
        lines.append(f"- {o.config.key}: {versions} (ran {o.seconds:.0f} s{busy})")
    beaten = wins(outcomes)
    lines += ["", "Figures where a peer beats EverTask in its class by more than 5 %:", ""]
    if not beaten:
        lines.append("- none")
    for w in beaten:
        lines.append(
            f"- {w.storage}: {w.config} on {w.workload} {w.figure}: "
            f"{fmt(w.peer_value)} vs {fmt(w.our_value)}"
        )
    return "\n".join(lines) + "\n"


def flat_figures(outcomes: list[Outcome]) -> dict[str, float]:
    """``<config>.<workload>.<figure>`` -> value, plus ``.ratio`` against EverTask."""
    out: dict[str, float] = {}
    for storage in CLASSES:
        ours = baseline(outcomes, storage)
        for o in outcomes:
            if o.config.storage != storage.key:
                continue
            for workload, figures in o.figures.items():
                for name, value in figures.items():
                    out[f"{o.config.key}.{workload}.{name}"] = round(value, 6)
                base = ours.figures.get(workload) if ours is not None else None
                head = FIGURES[workload][0]
                if base is not None and not o.config.ours and base[head] > 0:
                    out[f"{o.config.key}.{workload}.ratio"] = round(figures[head] / base[head], 4)
    return out


def save_run(path: Path, outcomes: list[Outcome], counts: Counts, meta: dict[str, Any]) -> None:
    """Keep a run's raw outcomes (``outcomes.json``) so its report can be rendered again."""
    data = {
        "meta": meta,
        "counts": asdict(counts),
        "outcomes": [{**asdict(o), "config": o.config.key} for o in outcomes],
    }
    path.write_text(json.dumps(data, indent=1))


def load_run(path: Path) -> str:
    """The report of a run saved by :func:`save_run`."""
    data = json.loads(path.read_text())
    configs = {c.key: c for c in CONFIGS}
    outcomes = [Outcome(**{**o, "config": configs[o["config"]]}) for o in data["outcomes"]]
    meta = data["meta"]
    return render(
        outcomes,
        Counts(**data["counts"]),
        command=meta["command"],
        services=meta["services"],
        started=meta["started"],
        seconds=meta["seconds"],
        machine_line=meta.get("machine"),
    )
