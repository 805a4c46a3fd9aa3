"""Shared helpers: percentiles, machine description, result printing, the collector's time."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

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


class GcClock:
    """While entered, the time spent in CPython's garbage collector (``gc.callbacks``: in
    any thread) and the collections run, by generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began
            self.collections[info["generation"]] += 1

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        gc.callbacks.remove(self._callback)


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
