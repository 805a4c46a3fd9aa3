"""``add_structured_logging(builder)``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, TypeVar

from .context import TaskContextObserver
from .sink import Format, StructuredLogging

if TYPE_CHECKING:
    from evertask import EverTaskServiceBuilder

__all__ = ["add_log_context", "add_structured_logging"]

B = TypeVar("B", bound="EverTaskServiceBuilder")


def add_structured_logging(
    builder: B,
    *,
    format: Format = "json",
    stream: IO[str] | None = None,
    level: int = logging.INFO,
    loggers: Iterable[str] = (),
    propagate: bool = False,
) -> B:
    """Structured logs for EverTask's own loggers (``evertask.*``) and the handlers' loggers.

    Every record becomes one JSON line (``format="json"``) or one readable line
    (``"console"``) on ``stream`` (default stderr), enriched with ``task_id``,
    ``task_type``, ``handler``, ``queue``, ``attempt`` and, when OpenTelemetry is active,
    ``trace_id`` and ``span_id``. ``loggers`` adds more logger names (your libraries).
    See :class:`StructuredLogging` for ``propagate``. Also available as
    ``builder.add_structured_logging(...)``. Returns the builder.
    """
    sink = StructuredLogging(format, stream, level, loggers, propagate)
    builder.on_build(sink.attach)
    builder.add_component(sink)
    return builder


def add_log_context(builder: B) -> B:
    """Only make the task context current during executions (for :func:`task_fields`,
    ``add_task_context`` in structlog, or your own formatter), without a logging sink.
    ``add_structured_logging`` includes it. Returns the builder."""
    builder.on_build(lambda host: host.add_observer(TaskContextObserver()))
    return builder
