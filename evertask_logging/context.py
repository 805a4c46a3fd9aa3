"""The task context of the running execution, carried by a context variable.

:class:`TaskContextObserver` sets it inside each execution's own context (so concurrent
tasks never see each other's), :func:`task_fields` reads it together with the current
OpenTelemetry trace and span ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from evertask import Outcome
from evertask.run import TaskRun

_current_span: Callable[[], Any] | None
try:  # optional: trace ids when OpenTelemetry is installed
    from opentelemetry.trace import get_current_span

    _current_span = get_current_span
except ImportError:  # pragma: no cover - depends on the environment
    _current_span = None

__all__ = ["TaskContextObserver", "TaskLogContext", "current_task_context", "task_fields"]


@dataclass(slots=True)
class TaskLogContext:
    """What every log record of one execution is enriched with."""

    task_id: uuid.UUID
    task_type: str
    handler: str
    queue: str
    attempt: int = 1


_CURRENT: ContextVar[TaskLogContext | None] = ContextVar("evertask_log_context", default=None)


def current_task_context() -> TaskLogContext | None:
    """The context of the execution running here, if any."""
    return _CURRENT.get()


def trace_ids() -> tuple[str, str] | None:
    """The current OpenTelemetry (trace id, span id) in hex, or ``None``."""
    if _current_span is None:
        return None
    ctx = _current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def task_fields() -> dict[str, Any]:
    """``task_id``, ``task_type``, ``handler``, ``queue``, ``attempt``, ``trace_id`` and
    ``span_id`` of the current execution (only those known here)."""
    fields: dict[str, Any] = {}
    ctx = _CURRENT.get()
    if ctx is not None:
        fields["task_id"] = str(ctx.task_id)
        fields["task_type"] = ctx.task_type
        fields["handler"] = ctx.handler
        fields["queue"] = ctx.queue
        fields["attempt"] = ctx.attempt
    ids = trace_ids()
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids
    return fields


class _Scope:
    __slots__ = ("context", "token")

    def __init__(self, context: TaskLogContext, token: Token[TaskLogContext | None]) -> None:
        self.context = context
        self.token = token

    def retry(self, attempt: int, exception: BaseException, delay: timedelta) -> None:
        self.context.attempt = attempt + 1

    def finish(self, outcome: Outcome, error: BaseException | None, elapsed_ms: float) -> None:
        try:
            _CURRENT.reset(self.token)
        except ValueError:  # finished in another context: it dies with its task anyway
            _CURRENT.set(None)


class TaskContextObserver:
    """A task observer that makes :class:`TaskLogContext` current during executions."""

    def dispatching(self, run: TaskRun, kind: str) -> None:
        """Dispatches carry no task log context."""
        return

    def executing(self, run: TaskRun, queue_wait_s: float | None) -> _Scope:
        """Set the context for this execution (and everything it awaits or spawns)."""
        desc = run.descriptor
        context = TaskLogContext(
            run.id, desc.task_type_name, desc.handler_type_name, run.queue_name
        )
        return _Scope(context, _CURRENT.set(context))
