"""Observer hooks for plug-ins (OpenTelemetry, metrics, log capture).

The engine calls observers at three points; with none registered the hooks cost one
truthiness test. Observers must be fast and must not raise (errors are logged and ignored).

- ``dispatching(run)`` before a dispatch persists its row: may set ``run.trace_context``
  (it is stored with the row, so an execution after a restart continues the trace); returns
  a :class:`DispatchScope` whose ``finish(error)`` is called once the dispatch returns or fails.
- ``executing(run)`` inside the execution's own asyncio task and context, before the
  InProgress write: may attach context (for example the current span) for the handler;
  returns an :class:`ExecutionScope` told about retries and, last, the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import Enum
from typing import Any, Protocol

from .run import TaskRun

__all__ = [
    "CaptureSession",
    "DispatchScope",
    "ExecutionScope",
    "LogCapture",
    "Outcome",
    "TaskObserver",
]


class Outcome(str, Enum):
    """How an execution ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SERVICE_STOPPED = "service_stopped"


class DispatchScope(Protocol):
    """One dispatch in progress."""

    def finish(self, error: BaseException | None) -> None:
        """The dispatch returned (``error`` is None) or raised ``error``."""
        ...


class ExecutionScope(Protocol):
    """One execution in progress (one delivery, all its attempts)."""

    def retry(self, attempt: int, exception: BaseException, delay: timedelta) -> None:
        """Retry number ``attempt`` (1-based) is about to start after ``delay``."""
        ...

    def finish(self, outcome: Outcome, error: BaseException | None, elapsed_ms: float) -> None:
        """The execution ended (called in the execution's context)."""
        ...


class TaskObserver(Protocol):
    """A plug-in that watches dispatches and executions."""

    def dispatching(self, run: TaskRun, kind: str) -> DispatchScope | None:
        """``kind`` is "immediate", "delayed", "scheduled" or "recurring"."""
        ...

    def executing(self, run: TaskRun, queue_wait_s: float | None) -> ExecutionScope | None:
        """An execution begins; ``queue_wait_s`` is the time it waited in its queue."""
        ...


class CaptureSession(Protocol):
    """The log records of one execution (see evertask.logcapture)."""

    def finish(self) -> Sequence[Any] | None:
        """Stop capturing; return the records to persist (``TaskExecutionLog`` rows)."""
        ...


class LogCapture(Protocol):
    """Per-execution log capture plug-in."""

    def begin(self, run: TaskRun, handler: Any) -> CaptureSession:
        """Start capturing for one execution."""
        ...
