"""``add_opentelemetry(builder)``: wire the OpenTelemetry observer into a host."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from evertask_abstractions import ConfigurationError

if TYPE_CHECKING:
    from ..host import EverTaskHost

__all__ = ["add_opentelemetry"]


class _Builder(Protocol):
    """What this plug-in uses of the service builder."""

    def on_build(self, hook: Callable[[EverTaskHost], None]) -> Any:
        """Call ``hook(host)`` when the host is built."""
        ...


B = TypeVar("B", bound=_Builder)

log = logging.getLogger("evertask.telemetry")


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
        host.add_observer(observer)
        if observer.metrics is not None:
            observer.metrics.watch(host)
        host.components.append(_NoSdkCheck(observer, tracer_provider, meter_provider))

    builder.on_build(wire)
    return builder


class _NoSdkCheck:
    """At host start, turns off each signal whose global provider is still the API's
    no-op default (no SDK configured): otherwise every task would pay for calls that
    record nothing. Providers passed explicitly are always used."""

    def __init__(self, observer: Any, tracer_provider: Any, meter_provider: Any) -> None:
        self._observer = observer
        self._explicit_tracer = tracer_provider is not None
        self._explicit_meter = meter_provider is not None

    async def start(self, host: EverTaskHost) -> None:
        from opentelemetry import metrics, trace

        observer = self._observer
        off = []
        if observer.tracer is not None and not self._explicit_tracer:
            tracers = trace.get_tracer_provider()
            if isinstance(tracers, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
                observer.tracer = None
                off.append("tracing")
        if observer.metrics is not None and not self._explicit_meter:
            meters = metrics.get_meter_provider()
            # the API's default is a proxy (an internal class) until an SDK is set
            if isinstance(meters, metrics.NoOpMeterProvider) or (
                type(meters).__name__ == "_ProxyMeterProvider"
            ):
                observer.metrics = None
                off.append("metrics")
        if off:
            log.info(
                "OpenTelemetry %s off for this host: no SDK is configured (the global "
                "provider is the API's no-op default). Configure the SDK before the host "
                "starts, or pass tracer_provider= / meter_provider= to add_opentelemetry().",
                " and ".join(off),
            )
        if observer.tracer is None and observer.metrics is None:
            host.remove_observer(observer)

    async def stop(self) -> None:
        """Nothing to stop."""
