"""The observability benchmark's SDK floor makes the same telemetry as the instrumentation."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks import observability as ob
from benchmarks.engine import NoopHandler


def recorded(otel: ob.Otel) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    otel.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def shape(span: ReadableSpan) -> tuple[Any, ...]:
    """A span without its ids: name, kind, attributes (in order), parent's remoteness."""
    attrs = {
        k: ("<id>" if k == "messaging.message.id" else v)
        for k, v in (span.attributes or {}).items()
    }
    parent = None if span.parent is None else span.parent.is_remote
    return span.name, span.kind, list(attrs.items()), parent, len(span.links), span.status


def histograms(otel: ob.Otel) -> dict[str, list[tuple[Any, Any]]]:
    data = otel.reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: [
            (dict(p.attributes or {}), getattr(p, "count", None)) for p in metric.data.data_points
        ]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name in ("evertask.task.duration", "evertask.task.queue_wait")
    }


async def test_the_floor_makes_the_spans_and_histograms_of_the_instrumentation() -> None:
    engine, floor = ob.Otel(3), ob.Otel(3)
    engine_spans, floor_spans = recorded(engine), recorded(floor)
    await ob.throughput(3, NoopHandler, ob.noop, setup=engine.setup())
    calls = ob.Floor(floor)
    for i in range(3):
        calls.execute(str(i), calls.dispatch(str(i)))
    expected = sorted(map(shape, engine_spans.get_finished_spans()), key=repr)
    assert sorted(map(shape, floor_spans.get_finished_spans()), key=repr) == expected
    assert histograms(floor) == histograms(engine)
    assert engine.close() == floor.close() == 6


def test_the_floor_measures_every_span() -> None:
    rates = ob.sdk_floor(50)  # warns on stderr if a span did not reach the exporter
    assert rates.cpu > 0 and rates.wall > 0


async def test_the_metrics_only_floor_makes_the_histograms_of_the_instrumentation() -> None:
    engine, floor = ob.Otel(3), ob.Otel(3)
    engine_spans, floor_spans = recorded(engine), recorded(floor)
    await ob.throughput(3, NoopHandler, ob.noop, setup=engine.setup(tracing=False))
    calls = ob.Floor(floor, tracing=False)
    for i in range(3):
        calls.execute(str(i), calls.dispatch(str(i)))
    assert histograms(floor) == histograms(engine)
    assert engine_spans.get_finished_spans() == floor_spans.get_finished_spans() == ()


def test_every_configuration_with_a_floor_has_its_floor_measured() -> None:
    assert set(ob.FLOORS) <= set(ob.CONFIGS)
    assert set(ob.FLOORS.values()) <= set(ob.MEASURED)
    for floor in ob.FLOORS.values():
        rates = ob.MEASURED[floor](50)
        assert rates.cpu > 0 and rates.wall > 0


def test_the_heap_floor_keeps_an_engine_runs_rows_alive_while_it_measures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    seen: list[int] = []
    real = ob.Floor.execute

    def execute(self: ob.Floor, message_id: str, stored: str) -> None:
        if not seen:  # the heap, while the floor loop runs
            seen.append(sum(1 for o in gc.get_objects() if type(o).__name__ == "QueuedTask"))
        real(self, message_id, stored)

    monkeypatch.setattr(ob.Floor, "execute", execute)
    rates = ob.MEASURED[ob.HEAP_FLOOR](40)
    assert rates.cpu > 0 and seen and seen[0] >= 40


async def test_the_floor_in_the_engine_makes_the_spans_and_histograms_of_the_instrumentation() -> (
    None
):
    engine, floor = ob.Otel(3), ob.Otel(3)
    engine_spans, floor_spans = recorded(engine), recorded(floor)
    await ob.throughput(3, NoopHandler, ob.noop, setup=engine.setup())
    observer = ob.FloorObserver(ob.Floor(floor))
    await ob.throughput(
        3, NoopHandler, ob.noop, setup=lambda b: b.on_build(lambda h: h.add_observer(observer))
    )
    expected = sorted(map(shape, engine_spans.get_finished_spans()), key=repr)
    assert sorted(map(shape, floor_spans.get_finished_spans()), key=repr) == expected
    # each CONSUMER span continues its PRODUCER span, through the context kept with the run
    spans = floor_spans.get_finished_spans()
    producers = {s.context.span_id: s for s in spans if s.kind.name == "PRODUCER"}
    consumers = [s for s in spans if s.kind.name == "CONSUMER"]
    assert len(consumers) == 3
    for consumer in consumers:
        assert consumer.parent is not None
        assert producers[consumer.parent.span_id].context.trace_id == consumer.context.trace_id
    assert histograms(floor) == histograms(engine)
    assert engine.close() == floor.close() == 6


def test_every_engine_floor_is_measured() -> None:
    assert set(ob.ENGINE_FLOORS) <= set(ob.CONFIGS)
    assert set(ob.ENGINE_FLOORS.values()) <= set(ob.MEASURED)
    assert set(ob.ENGINE_FLOORS.values()) <= set(ob.PARTS["otel"])
    for floor in ob.ENGINE_FLOORS.values():
        rates = ob.MEASURED[floor](50)  # warns on stderr if a span did not reach the exporter
        assert rates.cpu > 0 and rates.wall > 0
