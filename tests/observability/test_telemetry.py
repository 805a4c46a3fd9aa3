"""OpenTelemetry: dispatch and execution spans, semantic-convention names, metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, StatusCode

from evertask.telemetry import names
from evertask_abstractions import ConfigurationError, LinearRetryPolicy, QueuedTaskStatus
from tests.helpers import build_host, wait_status
from tests.observability.conftest import Otel
from tests.observability.tasks import ALL, Failing, Flaky, Hanging, Job, Parked

semconv = pytest.importorskip("opentelemetry.semconv._incubating.attributes.messaging_attributes")
error_attributes = pytest.importorskip("opentelemetry.semconv.attributes.error_attributes")

COMPLETED, FAILED = QueuedTaskStatus.COMPLETED, QueuedTaskStatus.FAILED
CANCELLED = QueuedTaskStatus.CANCELLED


def by_id(spans: list[Any], task_id: Any) -> list[Any]:
    return [s for s in spans if s.attributes.get("messaging.message.id") == str(task_id)]


async def test_dispatch_and_execution_spans_form_one_trace(otel: Otel) -> None:
    host, _ = build_host(ALL, builder=otel.install)
    tracer = otel.tracer_provider.get_tracer("test")
    async with host:
        with tracer.start_as_current_span("POST /jobs") as request:
            token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
            try:
                tid = await host.dispatcher.dispatch(Job(n=1))
            finally:
                otel_context.detach(token)
        await wait_status(host, tid, COMPLETED)
        assert host.storage is not None
        row = await host.storage.get(tid)
    publish, process = by_id(otel.spans("default publish"), tid) + by_id(
        otel.spans("default process"), tid
    )
    trace_id = request.get_span_context().trace_id
    assert publish.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert publish.context.trace_id == process.context.trace_id == trace_id
    assert publish.parent.span_id == request.get_span_context().span_id
    assert process.parent.span_id == publish.context.span_id
    assert process.status.status_code is StatusCode.UNSET
    assert process.attributes["evertask.outcome"] == "completed"
    # the stored trace context is the W3C carrier (with the baggage)
    assert row is not None and row.trace_context is not None
    assert f"{trace_id:032x}" in row.trace_context and "tenant=acme" in row.trace_context


async def test_the_execution_span_is_current_in_the_handler(otel: Otel) -> None:
    host, container = build_host(ALL, builder=otel.install)
    async with host:
        tid = await host.dispatcher.dispatch(Job(n=2))
        await wait_status(host, tid, COMPLETED)
    (process,) = by_id(otel.spans("default process"), tid)
    assert container.probe().calls == [("job", 2, process.context.span_id)]
    assert trace.get_current_span().get_span_context().is_valid is False  # detached


async def test_attribute_names_follow_the_messaging_semantic_conventions(otel: Otel) -> None:
    host, _ = build_host(ALL, builder=otel.install)
    async with host:
        tid = await host.dispatcher.dispatch(Job(n=3), task_key="job-3")
        await wait_status(host, tid, COMPLETED)
    publish = by_id(otel.spans("default publish"), tid)[0]
    process = by_id(otel.spans("default process"), tid)[0]
    assert names.ATTR_SYSTEM == semconv.MESSAGING_SYSTEM
    assert names.ATTR_DESTINATION == semconv.MESSAGING_DESTINATION_NAME
    assert names.ATTR_MESSAGE_ID == semconv.MESSAGING_MESSAGE_ID
    assert names.ATTR_OPERATION_TYPE == semconv.MESSAGING_OPERATION_TYPE
    assert names.ATTR_OPERATION_NAME == semconv.MESSAGING_OPERATION_NAME
    assert names.ATTR_ERROR_TYPE == error_attributes.ERROR_TYPE
    for span, operation in ((publish, "publish"), (process, "process")):
        attrs = span.attributes
        assert span.name == f"default {operation}"
        assert attrs[semconv.MESSAGING_SYSTEM] == "evertask"
        assert attrs[semconv.MESSAGING_DESTINATION_NAME] == "default"
        assert attrs[semconv.MESSAGING_MESSAGE_ID] == str(tid)
        assert attrs[semconv.MESSAGING_OPERATION_TYPE] == operation
        assert attrs[semconv.MESSAGING_OPERATION_NAME] == operation
        assert attrs["evertask.task.type"].endswith("tasks:Job")
        assert attrs["evertask.handler"].endswith("tasks:JobHandler")
        assert attrs["evertask.task_key"] == "job-3"
        assert attrs["evertask.audit_level"] == "Full"
        assert attrs["evertask.recurring"] is False
    assert publish.attributes["evertask.dispatch.kind"] == "immediate"


async def test_retries_failures_timeouts_and_cancellations_are_distinguishable(
    otel: Otel,
) -> None:
    host, _ = build_host(
        ALL,
        lambda o: o.set_default_retry_policy(LinearRetryPolicy(2, timedelta(milliseconds=1))),
        builder=otel.install,
    )
    async with host:
        flaky = await host.dispatcher.dispatch(Flaky(key="otel-retry", failures=2))
        failing = await host.dispatcher.dispatch(Failing())
        hanging = await host.dispatcher.dispatch(Hanging())
        await wait_status(host, flaky, COMPLETED)
        await wait_status(host, failing, FAILED)
        await wait_status(host, hanging, FAILED)
    spans = otel.spans("default process")
    (ok,) = by_id(spans, flaky)
    assert [e.name for e in ok.events] == ["evertask.retry", "evertask.retry"]
    assert [e.attributes["evertask.attempt"] for e in ok.events] == [2, 3]
    assert ok.events[0].attributes["exception.type"] == "ConnectionError"
    assert ok.attributes["evertask.attempt"] == 3
    assert ok.status.status_code is StatusCode.UNSET

    (bad,) = by_id(spans, failing)
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description.startswith("failed: ")
    assert bad.attributes["evertask.outcome"] == "failed"
    assert bad.attributes["error.type"] == "RuntimeError"
    assert any(e.name == "exception" for e in bad.events)

    (slow,) = by_id(spans, hanging)
    assert slow.status.status_code is StatusCode.ERROR
    assert slow.status.description.startswith("timeout: ")
    assert slow.attributes["evertask.outcome"] == "timeout"
    assert slow.attributes["error.type"].endswith("TaskTimeoutError")


async def test_cancellation_and_shutdown_outcomes(otel: Otel) -> None:
    host, container = build_host(
        ALL, lambda o: o.set_shutdown_grace_period(0.01), builder=otel.install
    )
    probe = container.probe()
    async with host:
        cancelled = await host.dispatcher.dispatch(Parked())
        await probe.wait_for(lambda: probe.count("parked") == 1)
        await host.dispatcher.cancel(cancelled)
        await wait_status(host, cancelled, CANCELLED)
        stopped = await host.dispatcher.dispatch(Parked())
        await probe.wait_for(lambda: probe.count("parked") == 2)
    spans = otel.spans("default process")
    (user,) = by_id(spans, cancelled)
    (shutdown,) = by_id(spans, stopped)
    assert user.attributes["evertask.outcome"] == "cancelled"
    assert user.status.description == "cancelled by the user"
    assert shutdown.attributes["evertask.outcome"] == "service_stopped"
    assert shutdown.status.description.startswith("interrupted: the service stopped")
    points = otel.metrics()["evertask.tasks.cancelled"]
    assert {p.attributes["evertask.outcome"]: p.value for p in points} == {
        "cancelled": 1,
        "service_stopped": 1,
    }


async def test_recurring_occurrences_are_linked_to_the_registration(otel: Otel) -> None:
    host, _ = build_host(ALL, builder=otel.install)
    async with host:
        tid = await host.dispatcher.dispatch(
            Job(n=4), lambda b: b.run_now().then().every(1).hours()
        )
        await wait_until_spans(otel, "recurring process", tid)
    (publish,) = by_id(otel.spans("recurring publish"), tid)
    (process,) = by_id(otel.spans("recurring process"), tid)
    assert publish.attributes["evertask.recurring"] is True
    assert publish.attributes["evertask.dispatch.kind"] == "recurring"
    assert process.context.trace_id != publish.context.trace_id  # its own trace...
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]


async def wait_until_spans(otel: Otel, name: str, task_id: Any) -> None:
    from tests.helpers import wait_until

    await wait_until(lambda: by_id(otel.spans(name), task_id))


async def test_metrics_match_the_tasks_run(otel: Otel) -> None:
    host, _ = build_host(
        ALL,
        lambda o: o.set_default_retry_policy(LinearRetryPolicy(1, timedelta(milliseconds=1))),
        builder=otel.install,
    )
    async with host:
        ok = [await host.dispatcher.dispatch(Job(n=i)) for i in range(3)]
        failing = await host.dispatcher.dispatch(Failing())
        hanging = await host.dispatcher.dispatch(Hanging())
        await host.dispatcher.dispatch(Job(n=99), timedelta(hours=1))  # stays a timer
        for tid in ok:
            await wait_status(host, tid, COMPLETED)
        await wait_status(host, failing, FAILED)
        await wait_status(host, hanging, FAILED)
        points = otel.metrics()

    def total(metric: str, **attrs: Any) -> float:
        return sum(  # type: ignore[no-any-return]
            p.value if hasattr(p, "value") else p.count
            for p in points.get(metric, [])
            if all(p.attributes.get(k.replace("_", ".")) == v for k, v in attrs.items())
        )

    job = next(p for p in points["evertask.tasks.completed"]).attributes["evertask.task.type"]
    assert total("evertask.tasks.dispatched") == 6
    assert total("evertask.tasks.dispatched", evertask_dispatch_kind="delayed") == 1
    assert total("evertask.tasks.completed") == 3
    assert total("evertask.tasks.failed") == 2
    assert total("evertask.tasks.failed", evertask_outcome="timeout") == 1
    assert total("evertask.tasks.retried") == 1  # timeouts are never retried
    assert total("evertask.tasks.cancelled") == 0
    assert total("evertask.task.duration") == 5
    assert total("evertask.task.duration", evertask_outcome="completed") == 3
    assert total("evertask.task.queue_wait") == 5
    completed = list(points["evertask.tasks.completed"])
    assert completed[0].attributes == {
        "messaging.destination.name": "default",
        "evertask.task.type": job,
    }
    depth = {
        p.attributes["messaging.destination.name"]: p.value for p in points["evertask.queue.depth"]
    }
    assert depth["default"] == 0 and "recurring" in depth
    assert [p.value for p in points["evertask.scheduler.timers"]] == [1]
    duration = next(p for p in points["evertask.task.duration"])
    assert duration.sum >= 0 and duration.max < 60_000


async def test_without_an_sdk_everything_is_a_no_op() -> None:
    host, _ = build_host(ALL, builder=lambda b: b.add_opentelemetry())  # global no-op API
    async with host:
        tid = await host.dispatcher.dispatch(Job(n=5))
        await wait_status(host, tid, COMPLETED)
        assert host.storage is not None
        row = await host.storage.get(tid)
    assert row is not None and row.trace_context is None


def test_missing_api_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from evertask.telemetry import add_opentelemetry

    monkeypatch.setitem(sys.modules, "evertask.telemetry.observer", None)
    with pytest.raises(ConfigurationError, match="pip install opentelemetry-api"):
        add_opentelemetry(object())  # type: ignore[type-var]


async def test_continuations_and_batch_members_get_ended_publish_spans_linked_to_their_runs(
    otel: Otel,
) -> None:
    host, _ = build_host(ALL, builder=otel.install)
    d = host.dispatcher
    async with host:
        parent = await d.dispatch(Job(n=1))
        child = await d.dispatch(Job(n=2), after=parent)
        batch = await d.dispatch_batch([Job(n=3), Job(n=4)])
        members = [m.id for m in await host.storage.batch_members(batch)]  # type: ignore[union-attr]
        for tid in (child, *members):
            await wait_status(host, tid, COMPLETED)
    publish = otel.spans("default publish")
    process = otel.spans("default process")
    for tid in (child, *members):
        (sent,) = by_id(publish, tid)  # ended (exported), once
        (ran,) = by_id(process, tid)
        assert ran.parent.span_id == sent.context.span_id
