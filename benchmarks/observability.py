"""The observability suite: engine throughput with OpenTelemetry and log capture.

The same no-op workload as the engine suite (in-memory storage, audit Full), measured in
one run, interleaved, in these configurations:

- off: no observer, no capture (the baseline);
- otel: ``add_opentelemetry`` on the OpenTelemetry SDK, every span sampled, a
  ``BatchSpanProcessor`` exporting to an exporter that only counts, and an in-memory
  metric reader collected once at the end of the timed window;
- otel tracing only / metrics only: the same SDK with one signal (where the cost goes);
- logcapture: the handler writes one ``self.logger.info`` line per task, persistent logger
  off, application logging at its defaults (the line is forwarded, WARNING drops it);
- logcapture persisted: the same with the persistent logger on (each line is kept and
  saved with the run).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from evertask import EverTaskOptions, EverTaskServiceBuilder, add_evertask
from evertask.telemetry import add_opentelemetry
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler

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


async def throughput(
    n: int,
    handler: type[EverTaskHandler[Any]],
    make: Callable[[int], EverTask],
    configure: Callable[[EverTaskOptions], Any] | None = None,
    setup: Setup | None = None,
    after: Callable[[], Any] | None = None,
) -> float:
    """Dispatch n tasks on memory storage and wait until all ran (tasks per second)."""
    container = Container()

    def options(o: EverTaskOptions) -> None:
        o.register_handler(handler)
        if configure is not None:
            configure(o)

    builder = add_evertask(container, options).add_memory_storage()
    if setup is not None:
        setup(builder)
    host = builder.build()
    recorder = container.recorder()
    async with host:
        recorder.reset(n)
        dispatch = host.dispatcher.dispatch
        start = time.perf_counter()
        for i in range(n):
            await dispatch(make(i))
        await recorder.done.wait()
        if after is not None:
            after()
        elapsed = time.perf_counter() - start
    return n / elapsed


class Otel:
    """An SDK pipeline whose exporters only count."""

    def __init__(self, n: int) -> None:
        self.exporter = CountingExporter()
        self.tracer_provider = TracerProvider()
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


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Run the suite and print it."""
    n = 20_000 if quick else 50_000
    reps = 1 if quick else 3
    logging.getLogger(LoggedHandler.__module__).setLevel(logging.NOTSET)

    def noop(i: int) -> EverTask:
        return Noop(n=i)

    def logged(i: int) -> EverTask:
        return Logged(n=i)

    def otel_run(tracing: bool = True, metrics: bool = True) -> float:
        otel = Otel(n)
        rate = asyncio.run(
            throughput(
                n, NoopHandler, noop, setup=otel.setup(tracing, metrics), after=otel.collect
            )
        )
        exported = otel.close()
        expected = 2 * n if tracing else 0
        if exported != expected:
            print(f"warning: {exported} spans exported, expected {expected}", file=sys.stderr)
        return rate

    configs: dict[str, Callable[[], float]] = {
        "off": lambda: asyncio.run(throughput(n, NoopHandler, noop)),
        "otel": otel_run,
        "otel_tracing_only": lambda: otel_run(metrics=False),
        "otel_metrics_only": lambda: otel_run(tracing=False),
        "logcapture": lambda: asyncio.run(throughput(n, LoggedHandler, logged)),
        "logcapture_persisted": lambda: asyncio.run(
            throughput(n, LoggedHandler, logged, lambda o: o.with_persistent_logger())
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(reps):
        for name, fn in configs.items():
            gc.collect()
            samples[name].append(fn())
    rate = {name: median(values) for name, values in samples.items()}
    off = rate["off"]
    results: Results = {"tasks": float(n)}
    for name, value in rate.items():
        results[f"{name}_tasks_per_s"] = round(value, 1)
    for name in ("otel", "logcapture", "otel_tracing_only", "otel_metrics_only"):
        results[f"{name}_ratio_to_off"] = round(rate[name] / off, 4)
    results["logcapture_persisted_ratio_to_off"] = round(rate["logcapture_persisted"] / off, 4)
    for name in ("otel", "otel_tracing_only", "otel_metrics_only", "logcapture"):
        results[f"{name}_overhead_us_per_task"] = round((1 / rate[name] - 1 / off) * 1e6, 2)
    rows = [
        ("tasks (no-op, memory storage, audit Full)", f"{n:,} x {reps} run(s), median"),
        ("off tasks/s", f"{off:,.0f}"),
        (
            "OpenTelemetry SDK (2 spans + metrics) tasks/s",
            f"{rate['otel']:,.0f}  ratio {results['otel_ratio_to_off']:.1%}  "
            f"+{results['otel_overhead_us_per_task']:.1f} us/task  (bar: >= 65%)",
        ),
        (
            "  tracing only",
            f"{rate['otel_tracing_only']:,.0f}  ratio "
            f"{results['otel_tracing_only_ratio_to_off']:.1%}  "
            f"+{results['otel_tracing_only_overhead_us_per_task']:.1f} us/task",
        ),
        (
            "  metrics only",
            f"{rate['otel_metrics_only']:,.0f}  ratio "
            f"{results['otel_metrics_only_ratio_to_off']:.1%}  "
            f"+{results['otel_metrics_only_overhead_us_per_task']:.1f} us/task",
        ),
        (
            "log capture, 1 line/task, persistence off",
            f"{rate['logcapture']:,.0f}  ratio {results['logcapture_ratio_to_off']:.1%}  "
            f"+{results['logcapture_overhead_us_per_task']:.1f} us/task  (bar: >= 85%)",
        ),
        (
            "log capture, 1 line/task, persisted",
            f"{rate['logcapture_persisted']:,.0f}  ratio "
            f"{results['logcapture_persisted_ratio_to_off']:.1%}",
        ),
    ]
    report(
        "python -m benchmarks observability" + (" --quick" if quick else ""),
        rows,
        results,
        json_path,
    )
    return results


if __name__ == "__main__":  # pragma: no cover
    run("--quick" in sys.argv)
