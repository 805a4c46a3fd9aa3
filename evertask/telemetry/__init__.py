"""OpenTelemetry for EverTask: spans for dispatches and executions, task metrics.

``add_opentelemetry(builder)`` (or ``builder.add_opentelemetry()``) registers an
:class:`OpenTelemetryObserver`. The engine depends only on ``opentelemetry-api``; with no
SDK configured every call is a no-op. Names are in :mod:`evertask.telemetry.names`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .setup import add_opentelemetry

if TYPE_CHECKING:
    from .metrics import TaskMetrics
    from .observer import OpenTelemetryObserver

__all__ = ["OpenTelemetryObserver", "TaskMetrics", "add_opentelemetry"]


def __getattr__(name: str) -> Any:
    # imported lazily: these need opentelemetry-api
    if name == "OpenTelemetryObserver":
        from .observer import OpenTelemetryObserver

        return OpenTelemetryObserver
    if name == "TaskMetrics":
        from .metrics import TaskMetrics

        return TaskMetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
