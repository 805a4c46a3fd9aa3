"""The observability suite: engine throughput with OpenTelemetry and log capture.

The same no-op workload as the engine suite (in-memory storage, audit Full), measured in
one run, interleaved, each measurement in a fresh interpreter, in these configurations:

- off: no observer, no capture (the baseline);
- otel: ``add_opentelemetry`` on the OpenTelemetry SDK, every span sampled, a
  ``BatchSpanProcessor`` exporting to an exporter that only counts, and an in-memory
  metric reader collected once at the end of the timed window;
- otel tracing only / metrics only: the same SDK with one signal (where the cost goes);
- otel sampled 10%: the same SDK with ``ParentBased(TraceIdRatioBased(0.1))``;
- otel API only: ``add_opentelemetry`` with no SDK configured (the instrumentation turns
  itself off at host start, so this should match "off");
- logcapture: the handler writes one ``self.logger.info`` line per task, persistent logger
  off, application logging at its defaults (the line is forwarded, WARNING drops it);
- logcapture persisted: the same with the persistent logger on (each line is kept and
  saved with the run);
- sdk floor: no engine and no EverTask code in the loop, which makes per task exactly the
  OpenTelemetry calls of one all-sampled no-op task on the ``otel`` pipeline: the PRODUCER
  span with the same attributes, the W3C context written and read back, the CONSUMER span
  with its attributes made current and detached, both spans ended, the two histogram
  values. The context is written and read in its minimal form (ids formatted, then parsed
  into the remote span context), cheaper than any propagator, so the floor is a lower
  bound: ``otel_best_possible_ratio`` = off cost / (off cost + floor) is the highest ratio
  any instrumentation on this SDK could reach if it added nothing of its own;
- sdk floor metrics only: the two histogram values alone (the floor of "metrics only");
- sdk floor sampled 10%: the floor loop on the 10%-sampled pipeline (the floor of "sampled
  10%"): a span the sampler drops costs what the SDK does to start it, nothing more;
- sdk floor on the engine's heap: the floor loop run while the rows of an engine run of
  the same size are kept alive (the in-memory storage's rows and audit trail): the garbage
  collector then walks what it walks under the engine, so this is the least the same
  calls cost any instrumentation on this storage (``otel_above_heap_floor_us_per_task``);
- sdk floor in the engine (also sampled 10% and metrics only): the whole no-op workload
  with the floor's calls made from the engine's observer hooks by a bare observer
  (:class:`FloorObserver`) instead of EverTask's instrumentation: its added cost over
  "off" is what the same SDK calls cost inside this engine (the collector walking the
  engine's young and old objects, the SDK's code run between the engine's), and
  ``<config>_above_engine_floor_us_per_task`` is what EverTask's instrumentation adds to
  that.

``<config>_above_floor_us_per_task`` is a configuration's added cost minus its floor: what
EverTask itself (and the engine's heap, which makes the SDK's garbage costlier to collect)
adds to the calls no implementation can avoid.

``--only otel`` or ``--only logcapture`` measures "off" and that part only (its
configurations and floors, same runs and medians).

Throughput is tasks per CPU second of the benchmark process (every thread, the garbage
collector and the SDK's export thread included): on a shared machine it is far steadier
than wall time, which is reported next to it (``*_wall_tasks_per_s``). The ratios and the
bars use the CPU figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from evertask import EverTaskOptions, EverTaskServiceBuilder, __version__, add_evertask
from evertask.ids import uuid7
from evertask.registry import HandlerRegistry
from evertask.run import TaskRun
from evertask.telemetry import TaskMetrics, add_opentelemetry
from evertask.telemetry.names import (
    ATTR_DISPATCH_KIND,
    ATTR_MESSAGE_ID,
    ATTR_OUTCOME,
    INSTRUMENTATION_NAME,
)
from evertask.telemetry.route import Route
from evertask_abstractions import AuditLevel, CancellationToken, EverTask, EverTaskHandler

from .common import Results, median, report
from .engine import Container, Noop, NoopHandler, Recorder


class CountingExporter(SpanExporter):
    """Counts exported spans and drops them."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


class Logged(EverTask):
    """A task whose handler writes one log line."""

    n: int = 0


class LoggedHandler(EverTaskHandler[Logged]):
    """Writes one log line, then counts like the no-op handler."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def handle(self, task: Logged, cancellation: CancellationToken) -> None:
        self.logger.info("processed task %d", task.n)
        r = self.recorder
        r.count += 1
        if r.count == r.target:
            r.done.set()


Setup = Callable[[EverTaskServiceBuilder], Any]


class Rates(NamedTuple):
    """Tasks per CPU second of the process (all its threads) and per wall second."""

    cpu: float
    wall: float


async def throughput(
    n: int,
    handler: type[EverTaskHandler[Any]],
    make: Callable[[int], EverTask],
    configure: Callable[[EverTaskOptions], Any] | None = None,
    setup: Setup | None = None,
    after: Callable[[], Any] | None = None,
    keep: list[Any] | None = None,
) -> Rates:
    """Dispatch n tasks on memory storage and wait until all ran (``keep``: receives the
    storage, to keep its rows alive after the run)."""
    container = Container()

    def options(o: EverTaskOptions) -> None:
        o.register_handler(handler)
        if configure is not None:
            configure(o)

    builder = add_evertask(container, options).add_memory_storage()
    if setup is not None:
        setup(builder)
    host = builder.build()
    if keep is not None:
        keep.append(host.storage)
    recorder = container.recorder()
    async with host:
        recorder.reset(n)
        dispatch = host.dispatcher.dispatch
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            await dispatch(make(i))
        await recorder.done.wait()
        if after is not None:
            after()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Rates(n / cpu, n / elapsed)


class Otel:
    """An SDK pipeline whose exporters only count."""

    def __init__(self, n: int, sample: float = 1.0) -> None:
        self.exporter = CountingExporter()
        self.tracer_provider = TracerProvider(
            sampler=ALWAYS_ON if sample >= 1 else ParentBased(TraceIdRatioBased(sample))
        )
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(self.exporter, max_queue_size=max(2048, 4 * n))
        )
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def setup(self, tracing: bool = True, metrics: bool = True) -> Setup:
        return lambda b: add_opentelemetry(
            b, self.tracer_provider, self.meter_provider, tracing=tracing, metrics=metrics
        )

    def collect(self) -> None:
        self.reader.get_metrics_data()

    def close(self) -> int:
        self.tracer_provider.force_flush()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        return self.exporter.count


def noop(i: int) -> EverTask:
    """The no-op task number ``i``."""
    return Noop(n=i)


def logged(i: int) -> EverTask:
    """The logging task number ``i``."""
    return Logged(n=i)


def otel_run(n: int, tracing: bool = True, metrics: bool = True, sample: float = 1.0) -> Rates:
    """The no-op workload with ``add_opentelemetry`` on a counting SDK pipeline."""
    otel = Otel(n, sample)
    rate = asyncio.run(
        throughput(n, NoopHandler, noop, setup=otel.setup(tracing, metrics), after=otel.collect)
    )
    exported = otel.close()
    expected = 2 * n if tracing and sample >= 1 else None
    if expected is not None and exported != expected:
        print(f"warning: {exported} spans exported, expected {expected}", file=sys.stderr)
    return rate


CONFIGS: dict[str, Callable[[int], Rates]] = {
    "off": lambda n: asyncio.run(throughput(n, NoopHandler, noop)),
    "otel": otel_run,
    "otel_tracing_only": lambda n: otel_run(n, metrics=False),
    "otel_metrics_only": lambda n: otel_run(n, tracing=False),
    "otel_sampled_10pct": lambda n: otel_run(n, sample=0.1),
    "otel_api_only": lambda n: asyncio.run(
        throughput(n, NoopHandler, noop, setup=add_opentelemetry)
    ),
    "logcapture": lambda n: asyncio.run(throughput(n, LoggedHandler, logged)),
    "logcapture_persisted": lambda n: asyncio.run(
        throughput(n, LoggedHandler, logged, lambda o: o.with_persistent_logger())
    ),
}


class Floor:
    """The OpenTelemetry calls of one no-op task, on an ``Otel`` pipeline.

    ``tracing=False`` leaves only the two histogram values (the metrics-only floor). On a
    sampled pipeline a span the sampler drops costs only what the SDK does to start it: the
    outcome attribute is set on recording spans only.
    """

    def __init__(self, otel: Otel, tracing: bool = True) -> None:
        self.tracer = otel.tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        self.metrics = TaskMetrics.for_provider(otel.meter_provider)  # the same instruments
        descriptor = HandlerRegistry().add(NoopHandler)
        assert descriptor is not None
        self.route = Route(descriptor, "default", AuditLevel.FULL, False)  # the same attributes
        self.tracing = tracing

    def dispatch(self, message_id: str) -> str:
        """The PRODUCER span, ended; its context as the stored ``traceparent``."""
        if not self.tracing:
            return ""
        route = self.route
        attrs = {
            **route.publish_attrs,
            ATTR_MESSAGE_ID: message_id,
            ATTR_DISPATCH_KIND: "immediate",
        }
        span = self.tracer.start_span(route.publish_name, kind=_PRODUCER, attributes=attrs)
        ids = span.get_span_context()
        stored = "00-%032x-%016x-%02x" % (ids.trace_id, ids.span_id, ids.trace_flags)  # noqa: UP031
        span.end()
        return stored

    def execute(self, message_id: str, stored: str) -> None:
        """The CONSUMER span continuing ``stored``: current, ended, detached; both histograms."""
        route, metrics = self.route, self.metrics
        if not self.tracing:
            metrics.queue_wait.record(0.05, route.metric_attrs)
            metrics.duration.record(0.02, route.completed_attrs)
            return
        remote = SpanContext(
            int(stored[3:35], 16), int(stored[36:52], 16), True, TraceFlags(int(stored[53:], 16))
        )
        parent = trace.set_span_in_context(NonRecordingSpan(remote), _ROOT)
        attrs = {**route.process_attrs, ATTR_MESSAGE_ID: message_id}
        span = self.tracer.start_span(
            route.process_name, context=parent, kind=_CONSUMER, attributes=attrs
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        metrics.queue_wait.record(0.05, route.metric_attrs)
        if span.is_recording():
            span.set_attribute(ATTR_OUTCOME, "completed")
        span.end()
        otel_context.detach(token)
        metrics.duration.record(0.02, route.completed_attrs)


_PRODUCER, _CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER
_ROOT = Context()


class FloorObserver:
    """A bare task observer making the floor's calls from the engine's hooks, in place of
    EverTask's instrumentation: at dispatch the PRODUCER span, its context kept with the run
    (stored with its row, as the instrumentation stores it); at execution the CONSUMER span
    and the two histograms. No scopes, no routes: what any instrumentation hooked into this
    engine pays for the same SDK calls (the collector walking the engine's heap and young
    objects, the SDK's code run between the engine's)."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    def dispatching(self, run: TaskRun, kind: str) -> None:
        if self.floor.tracing:
            run.trace_context = self.floor.dispatch(str(run.id))

    def executing(self, run: TaskRun, queue_wait_s: float | None) -> None:
        self.floor.execute(str(run.id), run.trace_context or "")


def sdk_floor_in_engine(n: int, sample: float = 1.0, tracing: bool = True) -> Rates:
    """The no-op workload with the floor's calls made by a :class:`FloorObserver`
    (``tracing=False``: the two histogram values only)."""
    otel = Otel(n, sample)
    observer = FloorObserver(Floor(otel, tracing))

    def setup(builder: EverTaskServiceBuilder) -> None:
        builder.on_build(lambda host: host.add_observer(observer))

    rate = asyncio.run(throughput(n, NoopHandler, noop, setup=setup, after=otel.collect))
    exported = otel.close()
    expected = 2 * n if tracing else 0
    if sample >= 1 and exported != expected:
        print(f"warning: {exported} spans exported, expected {expected}", file=sys.stderr)
    return rate


def sdk_floor(n: int, sample: float = 1.0, tracing: bool = True, on_heap: bool = False) -> Rates:
    """The SDK's own work for n no-op tasks: a tight loop, no engine. ``on_heap``: with
    the heap an engine run of n tasks leaves (its storage's rows kept alive), so that the
    garbage collector walks what it walks under the engine."""
    heap: list[Any] = []
    if on_heap:
        asyncio.run(throughput(n, NoopHandler, noop, keep=heap))
        gc.collect()
    otel = Otel(n, sample)
    floor = Floor(otel, tracing)
    message_ids = [str(uuid7()) for _ in range(n)]
    dispatch, execute = floor.dispatch, floor.execute
    start, cpu = time.perf_counter(), time.process_time()
    for message_id in message_ids:
        execute(message_id, dispatch(message_id))
    otel.collect()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    exported = otel.close()
    if tracing and sample >= 1 and exported != 2 * n:
        print(f"warning: {exported} spans exported, expected {2 * n}", file=sys.stderr)
    del heap
    return Rates(n / cpu, n / elapsed)


FLOOR = "sdk_floor"
HEAP_FLOOR = "sdk_floor_on_engine_heap"
"""The floor loop with the heap of an engine run kept alive (the collector's share)."""
# the floor of each configuration that has one: (configuration, floor measurement)
FLOORS: dict[str, str] = {
    "otel": FLOOR,
    "otel_metrics_only": "sdk_floor_metrics_only",
    "otel_sampled_10pct": "sdk_floor_sampled_10pct",
}
MEASURED: dict[str, Callable[[int], Rates]] = {
    **CONFIGS,
    FLOOR: sdk_floor,
    "sdk_floor_metrics_only": lambda n: sdk_floor(n, tracing=False),
    "sdk_floor_sampled_10pct": lambda n: sdk_floor(n, sample=0.1),
    HEAP_FLOOR: lambda n: sdk_floor(n, on_heap=True),
    "sdk_floor_in_engine": sdk_floor_in_engine,
    "sdk_floor_in_engine_sampled_10pct": lambda n: sdk_floor_in_engine(n, sample=0.1),
    "sdk_floor_in_engine_metrics_only": lambda n: sdk_floor_in_engine(n, tracing=False),
}
ENGINE_FLOORS: dict[str, str] = {
    "otel": "sdk_floor_in_engine",
    "otel_sampled_10pct": "sdk_floor_in_engine_sampled_10pct",
    "otel_metrics_only": "sdk_floor_in_engine_metrics_only",
}
"""The floor's calls made from the engine's hooks by a bare observer (whole engine runs:
their added cost over "off" is the floor through the engine)."""


def measure(name: str, n: int) -> Rates:
    """One measurement in a fresh interpreter (no heap or GC state left by another one)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.observability", "--child", name, str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    if out.stderr.strip():
        print(f"[{name}] {out.stderr.strip()}", file=sys.stderr)
    cpu, wall = json.loads(out.stdout.strip().splitlines()[-1])
    return Rates(cpu, wall)


def _child(name: str, n: int) -> None:
    logging.getLogger(LoggedHandler.__module__).setLevel(logging.NOTSET)
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)
    asyncio.run(throughput(min(n, 2000), NoopHandler, noop))  # warm up the interpreter
    gc.collect()
    print(json.dumps(list(MEASURED[name](n))))


PARTS: dict[str, list[str]] = {
    "otel": [name for name in MEASURED if name.startswith(("otel", "sdk_floor"))],
    "logcapture": ["logcapture", "logcapture_persisted"],
}
"""What ``--only`` runs besides "off"."""


def run(quick: bool = False, json_path: str | None = None, only: str | None = None) -> Results:
    """Run the suite and print it; ``only``: "off" and one part of it (see ``PARTS``)."""
    if only is not None and only not in PARTS:
        raise ValueError(f"no part {only!r} in the observability suite: {', '.join(PARTS)}")
    n = 20_000 if quick else 30_000
    reps = 1 if quick else 5
    names = list(MEASURED) if only is None else ["off", *PARTS[only]]
    samples: dict[str, list[Rates]] = {name: [] for name in names}
    for _ in range(reps):  # interleaved, so a noisy neighbour hits every configuration
        for name in names:
            samples[name].append(measure(name, n))
    otel = "otel" in samples
    floors = [*FLOORS.values(), HEAP_FLOOR] if otel else []
    floors_us = {floor: 1e6 / median([r.cpu for r in samples.pop(floor)]) for floor in floors}
    rate = {name: median([r.cpu for r in values]) for name, values in samples.items()}
    wall = {name: median([r.wall for r in values]) for name, values in samples.items()}
    off = rate["off"]
    off_us = 1e6 / off
    results: Results = {"tasks": float(n)}
    for name, value in rate.items():
        results[f"{name}_tasks_per_s"] = round(value, 1)
        results[f"{name}_wall_tasks_per_s"] = round(wall[name], 1)
    for name in rate:
        if name != "off":
            results[f"{name}_ratio_to_off"] = round(rate[name] / off, 4)
            results[f"{name}_overhead_us_per_task"] = round((1 / rate[name] - 1 / off) * 1e6, 2)
    if otel:
        for config, floor in FLOORS.items():
            results[f"{floor}_us_per_task"] = round(floors_us[floor], 2)
            best = off_us / (off_us + floors_us[floor])  # the highest ratio this SDK allows
            results[f"{config}_best_possible_ratio"] = round(best, 4)
            # EverTask's own cost: the configuration's added cost minus its floor
            above = results[f"{config}_overhead_us_per_task"] - floors_us[floor]
            results[f"{config}_above_floor_us_per_task"] = round(above, 2)
        # the same floor with the engine's heap alive: what the collector costs any
        # instrumentation on this SDK and this storage, and EverTask's cost beyond it
        heap_floor_us = floors_us[HEAP_FLOOR]
        results[f"{HEAP_FLOOR}_us_per_task"] = round(heap_floor_us, 2)
        results["otel_above_heap_floor_us_per_task"] = round(
            results["otel_overhead_us_per_task"] - heap_floor_us, 2
        )
        best_on_heap = off_us / (off_us + heap_floor_us)
        results["otel_best_possible_ratio_on_engine_heap"] = round(best_on_heap, 4)
        # the floor's calls made from the engine's hooks: what they cost inside the engine,
        # and what EverTask's instrumentation adds to them there
        for config, floor in ENGINE_FLOORS.items():
            above = (
                results[f"{config}_overhead_us_per_task"] - results[f"{floor}_overhead_us_per_task"]
            )
            results[f"{config}_above_engine_floor_us_per_task"] = round(above, 2)

    def row(label: str, name: str, bar: str = "") -> tuple[str, str]:
        return (
            label,
            f"{rate[name]:,.0f}  ratio {results[f'{name}_ratio_to_off']:.1%}  "
            f"+{results[f'{name}_overhead_us_per_task']:.1f} us/task{bar}",
        )

    def floor_row(config: str) -> tuple[str, str]:
        floor = FLOORS[config]
        return (
            "    its SDK floor, best possible ratio",
            f"{floors_us[floor]:.1f} us/task, "
            f"{results[f'{config}_best_possible_ratio']:.1%}  (added cost minus the floor: "
            f"{results[f'{config}_above_floor_us_per_task']:+.1f} us/task)",
        )

    rows = [
        ("tasks (no-op, memory storage, audit Full)", f"{n:,} x {reps} run(s), median"),
        ("off tasks per CPU second (wall)", f"{off:,.0f} ({wall['off']:,.0f})"),
    ]
    if otel:
        rows += [
            row("OpenTelemetry SDK, all sampled", "otel", "  (bar: >= 65%)"),
            (
                "  SDK floor: the same calls, no engine",
                f"{floors_us[FLOOR]:.1f} us/task  (otel's added cost minus the floor: "
                f"{results['otel_above_floor_us_per_task']:+.1f} us/task, bar: <= 10)",
            ),
            (
                "  best possible ratio on this SDK",
                f"{results['otel_best_possible_ratio']:.1%}  (off / (off + floor))",
            ),
            (
                "  SDK floor with an engine run's heap alive",
                f"{floors_us[HEAP_FLOOR]:.1f} us/task, best ratio "
                f"{results['otel_best_possible_ratio_on_engine_heap']:.1%}  (otel's added cost "
                f"minus it: {results['otel_above_heap_floor_us_per_task']:+.1f} us/task)",
            ),
            row("  SDK floor's calls made from the engine's hooks", "sdk_floor_in_engine"),
            (
                "    otel's added cost minus it",
                f"{results['otel_above_engine_floor_us_per_task']:+.1f} us/task",
            ),
            row("  tracing only", "otel_tracing_only"),
            row("  metrics only", "otel_metrics_only", "  (bar: >= 70%)"),
            floor_row("otel_metrics_only"),
            row(
                "    its floor's calls from the engine's hooks", "sdk_floor_in_engine_metrics_only"
            ),
            (
                "    metrics only's added cost minus it",
                f"{results['otel_metrics_only_above_engine_floor_us_per_task']:+.1f} us/task",
            ),
            row("  10% of traces sampled", "otel_sampled_10pct", "  (bar: >= 50%)"),
            floor_row("otel_sampled_10pct"),
            row(
                "    its floor's calls from the engine's hooks", "sdk_floor_in_engine_sampled_10pct"
            ),
            (
                "    10% sampled's added cost minus it",
                f"{results['otel_sampled_10pct_above_engine_floor_us_per_task']:+.1f} us/task",
            ),
            row("  add_opentelemetry() with no SDK (turns itself off)", "otel_api_only"),
        ]
    if "logcapture" in rate:
        rows += [
            row("log capture, 1 line/task, persistence off", "logcapture", "  (bar: >= 85%)"),
            row("log capture, 1 line/task, persisted", "logcapture_persisted", "  (bar: >= 75%)"),
        ]
    report(
        "python -m benchmarks observability"
        + (" --quick" if quick else "")
        + (f" --only {only}" if only else ""),
        rows,
        results,
        json_path,
    )
    return results


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        run("--quick" in sys.argv)
