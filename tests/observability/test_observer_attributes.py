"""The observer's two ways of giving spans their attributes produce the same spans."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import Link, NoOpTracer, SpanKind
from opentelemetry.util.types import Attributes

from evertask.observe import Outcome
from evertask.registry import HandlerRegistry
from evertask.run import TaskRun
from evertask.telemetry import observer as observer_module
from evertask.telemetry.observer import OpenTelemetryObserver
from evertask.telemetry.route import run_attributes
from evertask_abstractions import AuditLevel
from tests.observability.conftest import Otel
from tests.observability.tasks import Job, JobHandler


def new_run() -> TaskRun:
    descriptor = HandlerRegistry().add(JobHandler)
    assert descriptor is not None
    return TaskRun(
        id=uuid.uuid4(),
        task=Job(n=1),
        descriptor=descriptor,
        queue_name="default",
        audit_level=AuditLevel.FULL,
        task_key="k",
    )


def run_once(observer: OpenTelemetryObserver, run: TaskRun) -> None:
    observer.dispatching(run, "immediate").finish(None)
    observer.executing(run, 0.001).finish(Outcome.COMPLETED, None, 2.0)


@pytest.mark.parametrize("sdk_hint", [True, False])
def test_both_attribute_paths_give_the_same_spans(otel: Otel, sdk_hint: bool) -> None:
    observer = OpenTelemetryObserver.create(otel.tracer_provider, metrics=False)
    reference = new_run()
    run_once(observer, reference)  # the path an SDK takes: every attribute at start
    expected = [(s.name, list((s.attributes or {}).items())) for s in otel.spans()]
    otel.exporter.clear()

    observer._sdk = sdk_hint  # False: the no-op API's path, set after start if recording
    run = new_run()
    run.id = reference.id
    run_once(observer, run)
    assert [(s.name, list((s.attributes or {}).items())) for s in otel.spans()] == expected
    assert [name for name, _ in expected] == ["default publish", "default process"]


class Recording(Sampler):
    """Samples everything and remembers the attributes it was shown."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        return "Recording"


def test_the_sampler_sees_the_per_run_attributes() -> None:
    sampler = Recording()
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run = new_run()
    run_once(OpenTelemetryObserver.create(provider, metrics=False), run)
    provider.shutdown()
    assert [a["messaging.message.id"] for a in sampler.seen] == [str(run.id)] * 2
    assert [a["evertask.task_key"] for a in sampler.seen] == ["k", "k"]
    assert sampler.seen[0]["evertask.dispatch.kind"] == "immediate"
    assert [dict(s.attributes or {}) for s in exporter.get_finished_spans()][0] == sampler.seen[0]


def test_the_no_op_api_builds_no_per_run_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str | None] = []

    def counting(run: TaskRun, kind: str | None, attrs: dict[str, Any]) -> dict[str, Any]:
        calls.append(kind)
        return run_attributes(run, kind, attrs)

    monkeypatch.setattr(observer_module, "run_attributes", counting)
    observer = OpenTelemetryObserver(NoOpTracer(), None)
    for _ in range(3):
        run = new_run()
        run_once(observer, run)
        assert run.trace_context is None
    assert calls == ["immediate"]  # only the first span, before the observer saw a no-op one
