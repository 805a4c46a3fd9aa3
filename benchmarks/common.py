"""Shared helpers: percentiles, machine description, result printing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

Results = dict[str, float]


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    """The median."""
    return statistics.median(values)


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"
    )


def report(
    title: str, rows: list[tuple[str, str]], results: Results, json_path: str | None
) -> None:
    """Print a small table and optionally write the flat JSON object."""
    width = max(len(k) for k, _ in rows) if rows else 10
    print(f"\n{title}\n{'=' * len(title)}")
    print(machine())
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"\nwrote {json_path}", file=sys.stderr)
