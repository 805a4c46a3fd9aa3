"""The stored trace context: the fast path for the default propagator matches the generic one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from evertask.telemetry.propagation import decode, extract, inject, inject_span

STATES = [
    None,
    TraceState([("vendor", "abc")]),
    TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]),
    TraceState([("tenant@vendor", "x-1"), ("k", "v=1")]),
]


def random_contexts(count: int, seed: int) -> Iterator[SpanContext]:
    """Random valid span contexts: every flag value, with and without trace state."""
    rng = random.Random(seed)
    for i in range(count):
        flags = TraceFlags(i % 4 if i < 64 else rng.randrange(256))  # sampled and not first
        yield SpanContext(
            rng.getrandbits(128) or 1,
            rng.getrandbits(64) or 1,
            is_remote=rng.random() < 0.5,
            trace_flags=flags,
            trace_state=STATES[i % len(STATES)],
        )


def generic_extract(value: str) -> Context:
    """What the global propagator itself makes of ``value``."""
    return propagate.extract(decode(value), context=Context())


def assert_same(fast: Context, generic: Context) -> None:
    assert list(fast) == list(generic)  # the same keys (the span's, when there is one)
    span, expected = trace.get_current_span(fast), trace.get_current_span(generic)
    assert type(span) is type(expected)
    assert span.get_span_context() == expected.get_span_context()


@pytest.fixture
def no_generic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the global propagator's inject or extract is called."""

    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the generic propagator was used")

    monkeypatch.setattr(propagate, "inject", boom)
    monkeypatch.setattr(propagate, "extract", boom)


@pytest.fixture
def restore_propagator() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)


def test_the_default_propagator_is_the_w3c_composite() -> None:
    # the fast path only runs behind the API's default; this is what makes it reachable
    propagator = propagate.get_global_textmap()
    assert type(propagator) is CompositePropagator
    assert propagator.fields == {"traceparent", "tracestate", "baggage"}


def test_inject_span_matches_the_generic_propagator() -> None:
    for context in random_contexts(400, seed=1):
        span = NonRecordingSpan(context)
        assert inject_span(span) == inject(trace.set_span_in_context(span))


def test_extract_matches_the_generic_propagator() -> None:
    for context in random_contexts(400, seed=2):
        stored = inject(trace.set_span_in_context(NonRecordingSpan(context)))
        assert stored is not None
        assert_same(extract(stored), generic_extract(stored))


def test_without_tracestate_neither_direction_uses_the_propagator(no_generic: None) -> None:
    for context in random_contexts(100, seed=3):
        if context.trace_state:
            continue
        stored = inject_span(NonRecordingSpan(context))
        assert stored is not None and len(stored) == 55
        restored = trace.get_current_span(extract(stored)).get_span_context()
        assert restored.is_remote and restored.trace_state == TraceState()
        assert (restored.trace_id, restored.span_id) == (context.trace_id, context.span_id)
        assert restored.trace_flags == context.trace_flags


def test_an_sdk_span_is_injected_as_the_propagator_would() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    span = provider.get_tracer("test").start_span("publish")
    try:
        expected = inject(trace.set_span_in_context(span))
        assert inject_span(span) == expected
    finally:
        span.end()
        provider.shutdown()


@pytest.mark.parametrize(
    "value",
    [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # capitals
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1 ",
        " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c8_319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331--1",
        "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n",
        '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',
        "garbage",
        "{not json",
    ],
)
def test_extract_of_unusual_values_matches_the_generic_propagator(value: str) -> None:
    assert_same(extract(value), generic_extract(value))


def test_baggage_takes_the_generic_path() -> None:
    span = NonRecordingSpan(next(random_contexts(1, seed=4)))
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        stored = inject_span(span)
        assert stored == inject(trace.set_span_in_context(span))
    finally:
        otel_context.detach(token)
    assert stored is not None and "tenant=acme" in stored
    restored = extract(stored)
    assert baggage.get_baggage("tenant", restored) == "acme"
    assert_same(restored, generic_extract(stored))


class Upper(TraceContextTextMapPropagator):
    """A custom propagator: W3C trace context under another header name."""

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        inner: dict[str, str] = {}
        super().inject(inner, context)
        for key, value in inner.items():
            setter.set(carrier, f"x-{key}", value)

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        found = getter.get(carrier, "x-traceparent")
        return super().extract({"traceparent": found[0]} if found else {}, context)


@pytest.mark.parametrize(
    ("propagator", "custom_header"),
    [
        (Upper(), True),
        (CompositePropagator([Upper(), W3CBaggagePropagator()]), True),
        (CompositePropagator([TraceContextTextMapPropagator()]), False),  # no baggage
    ],
)
def test_a_custom_global_propagator_takes_the_generic_path(
    propagator: Any,
    custom_header: bool,
    restore_propagator: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    propagate.set_global_textmap(propagator)
    calls: list[str] = []
    generic_inject, generic_extract_ = propagate.inject, propagate.extract

    def spy_inject(*args: Any, **kwargs: Any) -> None:
        calls.append("inject")
        generic_inject(*args, **kwargs)

    def spy_extract(*args: Any, **kwargs: Any) -> Context:
        calls.append("extract")
        return generic_extract_(*args, **kwargs)

    monkeypatch.setattr(propagate, "inject", spy_inject)
    monkeypatch.setattr(propagate, "extract", spy_extract)
    context = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1)
    )
    stored = inject_span(NonRecordingSpan(context))
    assert stored is not None
    restored = trace.get_current_span(extract(stored)).get_span_context()
    assert calls == ["inject", "extract"]
    assert (restored.trace_id, restored.span_id) == (context.trace_id, context.span_id)
    assert stored.startswith('{"x-traceparent":') is custom_header
