"""Structured logging for EverTask (the role of EverTask's Serilog package).

``add_structured_logging(builder)`` (or ``builder.add_structured_logging()``) writes JSON
lines (or console lines) for EverTask's and the handlers' loggers, each record enriched with
the task id, type, handler, queue, attempt and the current trace and span ids.
``add_task_context`` is the same enrichment as a structlog processor (with
``add_log_context(builder)`` when you do not want the stdlib sink).
"""

from __future__ import annotations

from .context import TaskContextObserver, TaskLogContext, current_task_context, task_fields
from .formatters import ConsoleFormatter, JsonFormatter, TaskContextFilter
from .setup import add_log_context, add_structured_logging
from .sink import StructuredLogging
from .structlog_processor import add_task_context

__all__ = [
    "ConsoleFormatter",
    "JsonFormatter",
    "StructuredLogging",
    "TaskContextFilter",
    "TaskContextObserver",
    "TaskLogContext",
    "add_log_context",
    "add_structured_logging",
    "add_task_context",
    "current_task_context",
    "task_fields",
]
