"""add_opentelemetry() without an SDK turns itself off at host start (signal by signal)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace

from evertask.telemetry import OpenTelemetryObserver, add_opentelemetry
from tests.helpers import build_host
from tests.observability.conftest import Otel
from tests.observability.tasks import ALL, Job


def _observers(host: object) -> list[OpenTelemetryObserver]:
    found = host.engine.observers  # type: ignore[attr-defined]
    return [o for o in found if isinstance(o, OpenTelemetryObserver)]


async def test_without_an_sdk_the_instrumentation_is_off_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # no SDK here
    host, c = build_host(ALL, builder=add_opentelemetry)
    assert len(_observers(host)) == 1  # wired at build: an SDK may still come before start
    with caplog.at_level(logging.INFO, logger="evertask.telemetry"):
        async with host:
            assert _observers(host) == []
            await host.dispatcher.dispatch(Job(n=1))
            await c.probe().wait_for(lambda: any(x[:2] == ("job", 1) for x in c.probe().calls))
    assert "tracing and metrics off" in caplog.text and "no SDK is configured" in caplog.text


async def test_a_signal_with_an_sdk_stays_on(otel: Otel, monkeypatch: pytest.MonkeyPatch) -> None:
    # an SDK installed globally (only for tracing) before the host starts
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: otel.tracer_provider)
    host, c = build_host(ALL, builder=lambda b: add_opentelemetry(b, meter_provider=None))
    observer = _observers(host)[0]
    observer.tracer = otel.tracer_provider.get_tracer("test")  # what the proxy resolves to
    async with host:
        assert _observers(host) == [observer]
        assert observer.tracer is not None and observer.metrics is None
        await host.dispatcher.dispatch(Job(n=2))
        await c.probe().wait_for(lambda: any(x[:2] == ("job", 2) for x in c.probe().calls))
    assert otel.spans()


async def test_explicit_providers_are_always_used(otel: Otel) -> None:
    host, _ = build_host(ALL, builder=otel.install)
    async with host:
        (observer,) = _observers(host)
        assert observer.tracer is not None and observer.metrics is not None
