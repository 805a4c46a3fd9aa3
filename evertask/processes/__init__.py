"""Worker processes for CPU-bound work: the host's :class:`ProcessPool` (docs/cpu-bound.md).

Handlers use it through :class:`~evertask_abstractions.CpuBoundHandler` or
``await self.run_in_process(func, ...)``; the pool is configured with
``opt.configure_process_pool(lambda p: ...)`` (:class:`~evertask.options.ProcessPoolOptions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evertask_abstractions.processes import (
    CpuBoundHandler,
    ProcessPoolClosedError,
    ProcessTaskError,
    RemoteTraceback,
    WorkerCrashedError,
)

from ..options import ProcessPoolOptions

if TYPE_CHECKING:
    from .pool import ProcessPool

__all__ = [
    "CpuBoundHandler",
    "ProcessPool",
    "ProcessPoolClosedError",
    "ProcessPoolOptions",
    "ProcessTaskError",
    "RemoteTraceback",
    "WorkerCrashedError",
]


def __getattr__(name: str) -> Any:
    # the pool is imported on first use: a worker process imports this package too
    if name == "ProcessPool":
        from .pool import ProcessPool

        return ProcessPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
