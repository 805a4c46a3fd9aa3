"""``add_opentelemetry(builder)``: wire the OpenTelemetry observer into a host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from evertask_abstractions import ConfigurationError

if TYPE_CHECKING:
    from ..builder import EverTaskServiceBuilder
    from ..host import EverTaskHost

__all__ = ["add_opentelemetry"]

B = TypeVar("B", bound="EverTaskServiceBuilder")


def add_opentelemetry(
    builder: B,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    *,
    tracing: bool = True,
    metrics: bool = True,
) -> B:
    """Trace dispatches and executions and report task metrics through OpenTelemetry.

    ``tracer_provider`` / ``meter_provider`` default to the global providers (a no-op
    until an SDK is configured). ``tracing=False`` or ``metrics=False`` turns a signal off.
    Also available as ``builder.add_opentelemetry(...)``. Returns the builder.
    """
    try:
        from .observer import OpenTelemetryObserver
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "add_opentelemetry() needs the OpenTelemetry API: "
            "`pip install opentelemetry-api` (or `pip install evertask[otel]` for the SDK too)."
        ) from exc

    def wire(host: EverTaskHost) -> None:
        observer = OpenTelemetryObserver.create(
            tracer_provider, meter_provider, tracing=tracing, metrics=metrics
        )
        host.engine.observers.append(observer)
        if observer.metrics is not None:
            observer.metrics.watch(host.engine)

    builder.on_build(wire)
    return builder
