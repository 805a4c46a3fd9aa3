"""Observability for the demo (all optional, driven by the environment).

- ``EVERTASK_DEMO_JSON_LOGS=1``: EverTask's and the handlers' logs as JSON lines on stdout,
  each with the task id, type, queue, attempt and trace ids.
- ``OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318``: traces and metrics over OTLP/HTTP
  (needs ``pip install evertask[otel]``); with ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` the gRPC
  exporter (port 4317, ``opentelemetry-exporter-otlp-proto-grpc``) is used instead.
  ``OTEL_SERVICE_NAME`` names the service (default "evertask-demo").
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from evertask import EverTaskServiceBuilder

__all__ = ["Observability", "configure_observability"]

log = logging.getLogger("samples.fastapi_app")


@dataclass
class Observability:
    """What :func:`configure_observability` enabled."""

    enabled: list[str] = field(default_factory=list)
    tracer_provider: Any = None
    meter_provider: Any = None

    def shutdown(self) -> None:
        """Flush and stop the OTLP exporters (also done at interpreter exit)."""
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                provider.shutdown()


def configure_observability(
    builder: EverTaskServiceBuilder, *, set_global: bool = True
) -> Observability:
    """Add what the environment asks for."""
    result = Observability()
    if os.environ.get("EVERTASK_DEMO_JSON_LOGS") == "1":
        builder.add_structured_logging(format="json", stream=sys.stdout)
        result.enabled.append("json-logs")
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        providers = _otlp_providers(set_global)
        if providers is not None:
            result.tracer_provider, result.meter_provider = providers
            builder.add_opentelemetry(
                tracer_provider=result.tracer_provider, meter_provider=result.meter_provider
            )
            result.enabled.append("otlp")
    return result


def _otlp_providers(set_global: bool) -> tuple[Any, Any] | None:
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[no-redef,unused-ignore]
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[no-redef,unused-ignore]
                OTLPSpanExporter,
            )
    except ImportError as exc:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but %s is missing: "
            "`pip install evertask[otel]` to export traces.",
            exc.name,
        )
        return None
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "evertask-demo")}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    if set_global:  # so spans your handlers start are exported too
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider
