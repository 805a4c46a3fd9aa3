"""A child process of the cross-process trace test.

``python -m tests.observability.trace_child dispatch|execute DB SPANS [TASK_ID]``: ``dispatch`` starts a
host on the SQLite file DB, dispatches a Job one hour ahead inside a "client request" span
and exits; ``execute`` starts a host on the same file with its clock two hours ahead, so
recovery runs the job at once. Both append their finished spans to SPANS as JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from evertask import EverTaskOptions, SystemClock, add_evertask
from evertask.clock import TimerHandle
from tests.helpers import Container
from tests.observability.tasks import Job, JobHandler


class JsonLinesExporter(SpanExporter):
    """Appends each finished span to a file as one JSON object."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                parent = span.parent
                out.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "kind": span.kind.name,
                            "trace_id": f"{span.context.trace_id:032x}",
                            "span_id": f"{span.context.span_id:016x}",
                            "parent_span_id": f"{parent.span_id:016x}" if parent else None,
                            "attributes": dict(span.attributes or {}),
                        }
                    )
                    + "\n"
                )
        return SpanExportResult.SUCCESS


class AheadClock(SystemClock):
    """The system clock, two hours ahead."""

    offset = timedelta(hours=2)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        return super().call_at(when - self.offset, callback)


async def main(mode: str, db: str, spans: str, task_id: str = "") -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(spans)))
    container = Container()

    def configure(o: EverTaskOptions) -> None:
        o.register_handler(JobHandler)
        if mode == "execute":
            o.use_clock(AheadClock())

    host = (
        add_evertask(container, configure)
        .add_sqlite_storage(db)
        .add_opentelemetry(tracer_provider=provider, metrics=False)
        .build()
    )
    async with host:
        if mode == "dispatch":
            with provider.get_tracer("client").start_as_current_span("client request"):
                task_id = await host.dispatcher.dispatch(Job(n=1), timedelta(hours=1))
            print(task_id, flush=True)
        else:
            probe = container.probe()
            try:
                await probe.wait_for(lambda: probe.count("job") == 1, timeout=30)
            except AssertionError:
                assert host.storage is not None
                row = await host.storage.get(uuid.UUID(task_id))
                print(f"job did not run: {row!r} {host.recovery_report!r}", file=sys.stderr)
                raise
    provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
