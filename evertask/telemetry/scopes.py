"""The span and metric work of one dispatch and of one execution."""

from __future__ import annotations

from datetime import timedelta

from opentelemetry import context as otel_context
from opentelemetry.trace import Span, Status, StatusCode

from ..observe import Outcome
from .metrics import TaskMetrics, bump
from .names import ATTR_ATTEMPT, ATTR_DELAY_MS, ATTR_ERROR_TYPE, ATTR_OUTCOME, EVENT_RETRY
from .route import Route, type_name

__all__ = ["DispatchScope", "ExecutionScope"]

_COMPLETED, _FAILED, _TIMEOUT = Outcome.COMPLETED, Outcome.FAILED, Outcome.TIMEOUT
_STATUS_TEXT = {
    Outcome.CANCELLED: "cancelled by the user",
    Outcome.SERVICE_STOPPED: "interrupted: the service stopped (it resumes at the next start)",
}
_detach = otel_context.detach


class DispatchScope:
    """Ends the PRODUCER span and counts the dispatch."""

    __slots__ = ("kind", "metrics", "route", "span")

    def __init__(
        self, span: Span | None, metrics: TaskMetrics | None, route: Route, kind: str
    ) -> None:
        self.span = span
        self.metrics = metrics
        self.route = route
        self.kind = kind

    def finish(self, error: BaseException | None) -> None:
        span = self.span
        if span is not None:
            if error is not None:
                span.record_exception(error)
                span.set_attribute(ATTR_ERROR_TYPE, type_name(error))
                span.set_status(Status(StatusCode.ERROR, f"dispatch failed: {error!r}"))
            span.end()
        if self.metrics is not None and error is None:
            route = self.route
            bump(self.metrics.dispatched, (route.queue, route.task_type, self.kind))


class ExecutionScope:
    """Records retries, ends the CONSUMER span and records the outcome metrics."""

    __slots__ = ("attempt", "metrics", "route", "span", "token")

    def __init__(
        self, span: Span | None, token: object, metrics: TaskMetrics | None, route: Route
    ) -> None:
        self.span = span
        self.token = token
        self.metrics = metrics
        self.route = route
        self.attempt = 1

    def retry(self, attempt: int, exception: BaseException, delay: timedelta) -> None:
        self.attempt = attempt + 1
        if self.span is not None and self.span.is_recording():
            self.span.add_event(
                EVENT_RETRY,
                {
                    ATTR_ATTEMPT: attempt + 1,
                    ATTR_DELAY_MS: delay.total_seconds() * 1000.0,
                    "exception.type": type_name(exception),
                    "exception.message": str(exception),
                },
            )
        if self.metrics is not None:
            bump(self.metrics.retried, self.route.key)

    def finish(self, outcome: Outcome, error: BaseException | None, elapsed_ms: float) -> None:
        span = self.span
        if span is not None:
            try:
                if span.is_recording():
                    self._end_span(span, outcome, error)
            finally:
                if self.token is not None:
                    _detach(self.token)  # type: ignore[arg-type]
        metrics = self.metrics
        if metrics is None:
            return
        route = self.route
        if outcome is _COMPLETED:
            bump(metrics.completed, route.key)
            metrics.duration.record(elapsed_ms, route.completed_attrs)
            return
        failed = outcome is _FAILED or outcome is _TIMEOUT
        key = (route.queue, route.task_type, outcome.value)
        bump(metrics.failed if failed else metrics.cancelled, key)
        metrics.duration.record(elapsed_ms, route.outcome_attrs[outcome])

    def _end_span(self, span: Span, outcome: Outcome, error: BaseException | None) -> None:
        if outcome is _COMPLETED:
            if self.attempt == 1:
                span.set_attribute(ATTR_OUTCOME, _COMPLETED.value)
            else:
                span.set_attributes({ATTR_OUTCOME: _COMPLETED.value, ATTR_ATTEMPT: self.attempt})
        elif outcome is _FAILED or outcome is _TIMEOUT:
            attrs: dict[str, str | int] = {ATTR_OUTCOME: outcome.value, ATTR_ATTEMPT: self.attempt}
            if error is not None:
                attrs[ATTR_ERROR_TYPE] = type_name(error)
                span.record_exception(error)
            span.set_attributes(attrs)
            prefix = "timeout" if outcome is _TIMEOUT else "failed"
            span.set_status(Status(StatusCode.ERROR, f"{prefix}: {error}"))
        else:
            span.set_attributes({ATTR_OUTCOME: outcome.value, ATTR_ATTEMPT: self.attempt})
            span.set_status(Status(StatusCode.ERROR, _STATUS_TEXT[outcome]))
        span.end()
