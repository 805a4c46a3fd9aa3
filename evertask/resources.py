"""What adaptive throttling measures: :class:`ResourceSample`, the :class:`ResourceProbe`
protocol and the default :class:`ProcessResourceProbe` (no third-party package)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["ProcessResourceProbe", "ResourceProbe", "ResourceSample"]


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """One measurement of this process: CPU in cores (1.0 = one core busy over the last
    interval) and resident memory in bytes."""

    cpu: float
    memory_bytes: int


@runtime_checkable
class ResourceProbe(Protocol):
    """Measures this process (called once per check interval, on the event loop: cheap)."""

    def sample(self) -> ResourceSample:
        """The CPU used since the previous sample, and the memory now."""
        ...


def _rss_bytes() -> int:
    """The resident set size now (Linux), else the peak resident set size."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):  # pragma: no cover - Windows
        return 0
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB else


class ProcessResourceProbe:
    """The default probe: ``os.times()`` for CPU, ``/proc/self/statm`` for memory."""

    def __init__(self) -> None:
        self._cpu = self._cpu_seconds()
        self._at = time.monotonic()

    @staticmethod
    def _cpu_seconds() -> float:
        times = os.times()
        return times.user + times.system

    def sample(self) -> ResourceSample:
        """CPU seconds per second since the previous sample, and the resident memory."""
        cpu, at = self._cpu_seconds(), time.monotonic()
        elapsed = at - self._at
        used = (cpu - self._cpu) / elapsed if elapsed > 0 else 0.0
        self._cpu, self._at = cpu, at
        return ResourceSample(cpu=max(0.0, used), memory_bytes=_rss_bytes())
