"""The dispatcher's trace context as one string stored with the task row.

The carrier is filled by the globally configured propagator (W3C ``traceparent`` /
``tracestate`` and baggage by default). A carrier holding only ``traceparent`` is stored
as that bare value; anything richer as compact JSON of the carrier.

While the global propagator is the API's default one, the common cases skip it: a span
context without baggage is formatted directly and a bare ``traceparent`` is parsed
directly, to exactly what the propagator would produce. Anything else takes the
propagator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from opentelemetry import baggage, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["decode", "encode", "extract", "inject", "inject_span"]

_TRACEPARENT = "traceparent"
_TRACESTATE = "tracestate"
_TRACEPARENT_LEN = 55  # "00-" + 32 + "-" + 16 + "-" + 2
_CANONICAL = re.compile("00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_FLAGS = {f"{i:02x}": TraceFlags(i) for i in range(256)}
_get_all_baggage = baggage.get_all
_set_span_in_context = trace.set_span_in_context
_checked: tuple[object, bool] = (None, False)  # (the global propagator, is it the default?)


def encode(carrier: dict[str, str]) -> str | None:
    """The stored form of ``carrier`` (``None`` when it is empty)."""
    if not carrier:
        return None
    if len(carrier) == 1 and _TRACEPARENT in carrier:
        return carrier[_TRACEPARENT]
    return json.dumps(carrier, separators=(",", ":"), sort_keys=True)


def decode(value: str) -> dict[str, str]:
    """The carrier stored by :func:`encode` (a bare value is a ``traceparent``)."""
    if not value.startswith("{"):
        return {_TRACEPARENT: value}
    try:
        loaded = json.loads(value)
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(k): str(v) for k, v in loaded.items()}


def inject(context: Context | None = None) -> str | None:
    """The stored form of ``context`` (default: the current one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return encode(carrier)


def inject_span(span: Span) -> str | None:
    """``inject(set_span_in_context(span))``: the current context with ``span`` in it."""
    context = span.get_span_context()
    if context.is_valid and _is_default_propagator() and not _get_all_baggage():
        traceparent = _format_traceparent(context)
        state = context.trace_state
        if not state:
            return traceparent
        return encode({_TRACEPARENT: traceparent, _TRACESTATE: state.to_header()})
    return inject(_set_span_in_context(span))


def extract(value: str) -> Context:
    """A context continuing the stored trace context ``value``."""
    if len(value) == _TRACEPARENT_LEN and _is_default_propagator():
        context = _parse_traceparent(value)
        if context is not None:
            return _set_span_in_context(NonRecordingSpan(context), Context())
    return propagate.extract(decode(value), context=Context())


def _is_default_propagator() -> bool:
    """Whether the global propagator is the API's default: W3C trace context, then baggage
    (decided once per global propagator object, not at every inject and extract)."""
    global _checked
    propagator = propagate.get_global_textmap()
    if _checked[0] is not propagator:
        _checked = (propagator, _is_default(propagator))
    return _checked[1]


def _is_default(propagator: object) -> bool:
    if type(propagator) is not CompositePropagator:
        return False
    parts: Sequence[object] = getattr(propagator, "_propagators", ())
    return (
        len(parts) == 2
        and type(parts[0]) is TraceContextTextMapPropagator
        and type(parts[1]) is W3CBaggagePropagator
    )


def _format_traceparent(context: SpanContext) -> str:
    """The W3C ``traceparent`` (version 00) of a valid span context."""
    ids = (context.trace_id, context.span_id, context.trace_flags)
    return "00-%032x-%016x-%02x" % ids  # noqa: UP031 (%-formatting is the fastest here)


def _parse_traceparent(value: str) -> SpanContext | None:
    """The remote span context of a canonical version-00 ``traceparent`` (else ``None``)."""
    match = _CANONICAL.fullmatch(value)
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    trace_id_int, span_id_int = int(trace_id, 16), int(span_id, 16)
    if not trace_id_int or not span_id_int:
        return None
    return SpanContext(trace_id_int, span_id_int, True, _FLAGS[flags])
