"""The dispatcher's trace context as one string stored with the task row.

The carrier is filled by the globally configured propagator (W3C ``traceparent`` /
``tracestate`` and baggage by default). A carrier holding only ``traceparent`` is stored
as that bare value; anything richer as compact JSON of the carrier.
"""

from __future__ import annotations

import json

from opentelemetry import propagate
from opentelemetry.context import Context

__all__ = ["decode", "encode", "extract", "inject"]

_TRACEPARENT = "traceparent"


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


def extract(value: str) -> Context:
    """A context continuing the stored trace context ``value``."""
    return propagate.extract(decode(value), context=Context())
