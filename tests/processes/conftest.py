"""The OpenTelemetry SDK fixtures of the observability tests (in-memory exporter and reader)."""

from tests.observability.conftest import Otel, otel

__all__ = ["Otel", "otel"]
