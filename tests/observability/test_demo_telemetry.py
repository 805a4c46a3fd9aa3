"""The demo's observability: traces and metrics over OTLP/HTTP, JSON logs on stdout."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evertask import add_evertask
from evertask_abstractions import QueuedTaskStatus
from samples.fastapi_app.telemetry import configure_observability
from tests.helpers import Container, wait_until
from tests.observability.tasks import Job, JobHandler


class Collector(ThreadingHTTPServer):
    """A stand-in OTLP/HTTP receiver: keeps (path, body) of every POST."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = self
        super().__init__(("127.0.0.1", 0), Handler)

    def bodies(self, path: str) -> bytes:
        return b"".join(body for p, body in self.received if p == path)


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_demo_exports_otlp_and_writes_json_logs(
    collector: Collector, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
    monkeypatch.setenv("EVERTASK_DEMO_JSON_LOGS", "1")
    container = Container()
    builder = add_evertask(container, lambda o: o.register_handler(JobHandler))
    observability = configure_observability(builder.add_memory_storage(), set_global=False)
    assert observability.enabled == ["json-logs", "otlp"]
    host = builder.build()
    try:
        async with host:
            tid = await host.dispatcher.dispatch(Job(n=11))
            probe = container.probe()
            await probe.wait_for(lambda: probe.count("job") == 1)
            await wait_until(lambda: b"default process" in collector.bodies("/v1/traces"))
            await wait_until(lambda: b"evertask.tasks.completed" in collector.bodies("/v1/metrics"))
            assert host.storage is not None
            row = await host.storage.get(tid)
            assert row is not None and row.status is not QueuedTaskStatus.FAILED
    finally:
        observability.shutdown()
    traces = collector.bodies("/v1/traces")
    assert b"default publish" in traces and b"evertask-demo" in traces
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    (line,) = [x for x in lines if x["message"] == "job 11"]
    assert line["task_id"] == str(tid) and len(line["trace_id"]) == 32
