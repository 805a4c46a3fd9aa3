"""EverTask's metrics through the OpenTelemetry metrics API.

Counters are asynchronous (``ObservableCounter``): the engine adds to plain integers per
attribute set and the SDK reads the cumulative totals at collection time, which keeps the
per-task cost at a dict update. Durations are synchronous histograms. The instruments of
one meter provider are created once and shared by every host reporting to it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from .names import (
    ATTR_DESTINATION,
    ATTR_DISPATCH_KIND,
    ATTR_OUTCOME,
    ATTR_TASK_TYPE,
    INSTRUMENTATION_NAME,
    METRIC_CANCELLED,
    METRIC_COMPLETED,
    METRIC_DISPATCHED,
    METRIC_DURATION,
    METRIC_FAILED,
    METRIC_QUEUE_DEPTH,
    METRIC_QUEUE_WAIT,
    METRIC_RETRIED,
    METRIC_THROTTLED,
    METRIC_TIMERS,
)

if TYPE_CHECKING:
    from ..host import EverTaskHost

__all__ = ["CounterKey", "TaskMetrics"]

CounterKey = tuple[str, ...]

_BASE = (ATTR_DESTINATION, ATTR_TASK_TYPE)
_COUNTERS: dict[str, tuple[tuple[str, ...], str]] = {
    METRIC_DISPATCHED: ((*_BASE, ATTR_DISPATCH_KIND), "Tasks dispatched (persisted and accepted)."),
    METRIC_COMPLETED: (_BASE, "Executions that completed."),
    METRIC_FAILED: ((*_BASE, ATTR_OUTCOME), "Executions that failed or timed out."),
    METRIC_RETRIED: (_BASE, "Retry attempts started."),
    METRIC_CANCELLED: (
        (*_BASE, ATTR_OUTCOME),
        "Executions cancelled by the user or interrupted by a shutdown.",
    ),
}

_lock = threading.Lock()
_by_provider: weakref.WeakKeyDictionary[Any, TaskMetrics] = weakref.WeakKeyDictionary()


class TaskMetrics:
    """The instruments of one meter provider and the counts behind its counters."""

    def __init__(self, provider: MeterProvider | None) -> None:
        from ..version import __version__

        meter = (
            provider.get_meter(INSTRUMENTATION_NAME, __version__)
            if provider is not None
            else metrics.get_meter(INSTRUMENTATION_NAME, __version__)
        )
        self.dispatched: dict[CounterKey, int] = {}
        self.completed: dict[CounterKey, int] = {}
        self.failed: dict[CounterKey, int] = {}
        self.retried: dict[CounterKey, int] = {}
        self.cancelled: dict[CounterKey, int] = {}
        counts = {
            METRIC_DISPATCHED: self.dispatched,
            METRIC_COMPLETED: self.completed,
            METRIC_FAILED: self.failed,
            METRIC_RETRIED: self.retried,
            METRIC_CANCELLED: self.cancelled,
        }
        self._hosts: weakref.WeakSet[EverTaskHost] = weakref.WeakSet()
        for name, (names, description) in _COUNTERS.items():
            meter.create_observable_counter(
                name,
                callbacks=[self._counter_callback(counts[name], names)],
                unit="{task}",
                description=description,
            )
        self.duration = meter.create_histogram(
            METRIC_DURATION, unit="ms", description="Execution time of one delivery."
        )
        self.queue_wait = meter.create_histogram(
            METRIC_QUEUE_WAIT, unit="ms", description="Time a task waited in its queue."
        )
        meter.create_observable_gauge(
            METRIC_QUEUE_DEPTH,
            callbacks=[self._queue_depth],
            unit="{task}",
            description="Tasks waiting in each queue.",
        )
        meter.create_observable_gauge(
            METRIC_TIMERS,
            callbacks=[self._timers],
            unit="{timer}",
            description="Delayed, scheduled and recurring runs waiting for their time.",
        )

        meter.create_observable_gauge(
            METRIC_THROTTLED,
            callbacks=[self._throttled],
            unit="{host}",
            description="Hosts that adaptive throttling keeps from taking new work (0 or 1 "
            "per host with a threshold configured).",
        )

    @classmethod
    def for_provider(cls, provider: MeterProvider | None) -> TaskMetrics:
        """The shared instance of ``provider`` (default: the global meter provider)."""
        key = provider if provider is not None else metrics.get_meter_provider()
        with _lock:
            found = _by_provider.get(key)
            if found is None:
                found = cls(provider)
                _by_provider[key] = found
            return found

    def watch(self, host: EverTaskHost) -> None:
        """Report ``host``'s queue depths and timers (until it is garbage-collected)."""
        self._hosts.add(host)

    # -- callbacks -------------------------------------------------------------------------
    @staticmethod
    def _counter_callback(
        counts: dict[CounterKey, int], names: Sequence[str]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        attributes: dict[CounterKey, dict[str, str]] = {}

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            out = []
            for key, value in list(counts.items()):
                attrs = attributes.get(key)
                if attrs is None:
                    attrs = attributes[key] = dict(zip(names, key, strict=True))
                out.append(Observation(value, attrs))
            return out

        return observe

    def _queue_depth(self, _options: CallbackOptions) -> Iterable[Observation]:
        depth: dict[str, int] = {}
        for host in list(self._hosts):
            for name in host.queue_names:
                depth[name] = depth.get(name, 0) + host.queue_length(name)
        return [Observation(n, {ATTR_DESTINATION: name}) for name, n in depth.items()]

    def _timers(self, _options: CallbackOptions) -> Iterable[Observation]:
        hosts = list(self._hosts)
        if not hosts:
            return []
        return [Observation(sum(h.scheduled_count for h in hosts))]

    def _throttled(self, _options: CallbackOptions) -> Iterable[Observation]:
        watched = [h.adaptive_throttling for h in list(self._hosts)]
        throttles = [t for t in watched if t is not None]
        if not throttles:
            return []
        return [Observation(sum(1 for t in throttles if t.paused))]


def bump(counts: dict[CounterKey, int], key: CounterKey) -> None:
    """Add one to ``counts[key]``."""
    counts[key] = counts.get(key, 0) + 1
