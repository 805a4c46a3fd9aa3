"""The OpenTelemetry task observer: a PRODUCER span per dispatch, a CONSUMER span per
execution continuing the dispatcher's trace, and the task metrics."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

from evertask_abstractions import AuditLevel

from ..registry import HandlerDescriptor
from ..run import TaskRun
from .metrics import TaskMetrics
from .names import INSTRUMENTATION_NAME
from .propagation import extract, inject_span
from .route import Route, run_attributes
from .scopes import DispatchScope, ExecutionScope

__all__ = ["OpenTelemetryObserver"]

_PRODUCER, _CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER
_set_span_in_context = trace.set_span_in_context
_attach = otel_context.attach
_EMPTY = Context()  # contexts are immutable: a new root


class OpenTelemetryObserver:
    """A :class:`~evertask.TaskObserver` producing spans and metrics.

    Register it with :func:`~evertask.telemetry.add_opentelemetry` (or append it to
    ``host.add_observer``). ``tracer`` / ``metrics`` ``None`` disables that signal.
    """

    def __init__(self, tracer: Tracer | None, metrics: TaskMetrics | None) -> None:
        self.tracer = tracer
        self.metrics = metrics
        self._routes: dict[tuple[HandlerDescriptor, str, AuditLevel, bool], Route] = {}
        # whether the tracer's last span had a valid context, i.e. an SDK is behind it: then
        # spans get every attribute at start, else only the prebuilt ones (no-op API)
        self._sdk = True

    @classmethod
    def create(
        cls,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        tracing: bool = True,
        metrics: bool = True,
    ) -> OpenTelemetryObserver:
        """An observer on the given providers (default: the global ones)."""
        from ..version import __version__

        tracer = None
        if tracing:
            tracer = (
                tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
                if tracer_provider is not None
                else trace.get_tracer(INSTRUMENTATION_NAME, __version__)
            )
        return cls(tracer, TaskMetrics.for_provider(meter_provider) if metrics else None)

    def _route(self, run: TaskRun) -> Route:
        recurring = run.schedule is not None and run.schedule.is_recurring
        key = (run.descriptor, run.queue_name, run.audit_level, recurring)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = Route(
                run.descriptor, run.queue_name, run.audit_level, recurring
            )
        return route

    def dispatching(self, run: TaskRun, kind: str) -> DispatchScope:
        """Start the PRODUCER span and store its context with the run."""
        route = self._route(run)
        span = None
        tracer = self.tracer
        if tracer is not None:
            span = self._start(
                tracer, route.publish_name, _PRODUCER, route.publish_attrs, run, kind
            )
            if span.get_span_context().is_valid:  # (the no-op API returns the caller's span)
                run.trace_context = inject_span(span)
        return DispatchScope(span, self.metrics, route, kind)

    def executing(self, run: TaskRun, queue_wait_s: float | None) -> ExecutionScope:
        """Start the CONSUMER span (current while the handler runs)."""
        route = self._route(run)
        span = token = None
        tracer = self.tracer
        if tracer is not None:
            stored = run.trace_context
            parent = extract(stored) if stored else _EMPTY
            start_in, links = parent, None
            if stored and run.schedule is not None and run.schedule.is_recurring:
                # every occurrence is its own trace, linked to the registration
                remote = trace.get_current_span(parent).get_span_context()
                if remote.is_valid:
                    start_in, links = _EMPTY, [Link(remote)]
            span = self._start(
                tracer,
                route.process_name,
                _CONSUMER,
                route.process_attrs,
                run,
                None,
                context=start_in,
                links=links,
            )
            if span.get_span_context().is_valid:  # (a no-op tracer has nothing to attach)
                token = _attach(_set_span_in_context(span, parent))
        metrics = self.metrics
        if metrics is not None and queue_wait_s is not None:
            metrics.queue_wait.record(queue_wait_s * 1000.0, route.metric_attrs)
        return ExecutionScope(span, token, metrics, route)

    def _start(
        self,
        tracer: Tracer,
        name: str,
        kind: SpanKind,
        attrs: dict[str, AttributeValue],
        run: TaskRun,
        dispatch_kind: str | None,
        *,
        context: Context | None = None,
        links: list[Link] | None = None,
    ) -> Span:
        """A span with the route's ``attrs`` and ``run``'s own attributes."""
        if self._sdk:  # all the attributes at once: one cleaning pass (the sampler sees them)
            attrs = run_attributes(run, dispatch_kind, attrs.copy())
            span = tracer.start_span(name, context, kind=kind, attributes=attrs, links=links)
        else:  # the no-op API: the run's attributes only if a span records after all
            span = tracer.start_span(name, context, kind=kind, attributes=attrs, links=links)
            if span.is_recording():
                span.set_attributes(run_attributes(run, dispatch_kind, {}))
        self._sdk = span.get_span_context().is_valid  # an SDK's spans always are
        return span
