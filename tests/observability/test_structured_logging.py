"""Structured logging: JSON and console lines with task context and trace ids; structlog."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from evertask_abstractions import (
    CancellationToken,
    ConfigurationError,
    EverTask,
    EverTaskHandler,
    LinearRetryPolicy,
    QueuedTaskStatus,
)
from evertask_logging import (
    add_log_context,
    add_structured_logging,
    add_task_context,
    current_task_context,
)
from tests.helpers import build_host, wait_status
from tests.observability.conftest import Otel
from tests.observability.tasks import ALL, Flaky, Job, Levels

COMPLETED = QueuedTaskStatus.COMPLETED


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_lines_carry_the_task_context_and_trace_ids(otel: Otel) -> None:
    stream = io.StringIO()

    def setup(b: Any) -> None:
        otel.install(b)
        b.add_structured_logging(stream=stream)

    host, _ = build_host(ALL, builder=setup)
    async with host:
        tid = await host.dispatcher.dispatch(Job(n=7))
        await wait_status(host, tid, COMPLETED)
    (process,) = otel.spans("default process")
    (line,) = [x for x in lines(stream) if x["message"] == "job 7"]
    assert line["level"] == "INFO"
    assert line["logger"].endswith("tasks.JobHandler")
    assert line["timestamp"].endswith("Z")
    assert line["task_id"] == str(tid)
    assert line["task_type"].endswith("tasks:Job")
    assert line["handler"].endswith("tasks:JobHandler")
    assert line["queue"] == "default"
    assert line["attempt"] == 1
    assert line["trace_id"] == f"{process.context.trace_id:032x}"
    assert line["span_id"] == f"{process.context.span_id:016x}"


async def test_library_logs_attempts_extra_and_exceptions() -> None:
    stream = io.StringIO()
    host, _ = build_host(
        ALL,
        lambda o: o.set_default_retry_policy(
            LinearRetryPolicy(1, timedelta(milliseconds=1))
        ).with_persistent_logger(),
        builder=lambda b: add_structured_logging(b, stream=stream),
    )
    async with host:
        flaky = await host.dispatcher.dispatch(Flaky(key="structured", failures=1))
        levels = await host.dispatcher.dispatch(Levels())
        await wait_status(host, flaky, COMPLETED)
        await wait_status(host, levels, COMPLETED)
    out = lines(stream)
    attempts = [(x["message"], x["attempt"]) for x in out if x.get("task_id") == str(flaky)]
    assert ("attempt 1", 1) in attempts and ("attempt 2", 2) in attempts
    retry = next(x for x in out if x["logger"] == "evertask.executor")  # EverTask's own
    assert retry["task_id"] == str(flaky) and "retry attempt 1" in retry["message"]
    assert "trace_id" not in retry  # no OpenTelemetry SDK in this test
    mine = {x["message"]: x for x in out if x.get("task_id") == str(levels)}
    assert "debug d" not in mine  # below the sink's level
    assert mine["error with extra"]["order_id"] == 42
    assert "KeyError: 'boom'" in mine["caught it"]["exception"]


async def test_console_format_and_the_sink_is_removed_at_stop() -> None:
    stream = io.StringIO()
    evertask_logger = logging.getLogger("evertask")
    before = (evertask_logger.level, evertask_logger.propagate, list(evertask_logger.handlers))
    host, _ = build_host(
        ALL, builder=lambda b: add_structured_logging(b, format="console", stream=stream)
    )
    assert evertask_logger.propagate is False
    async with host:
        tid = await host.dispatcher.dispatch(Job(n=8))
        await wait_status(host, tid, COMPLETED)
    (line,) = [x for x in stream.getvalue().splitlines() if "job 8" in x]
    assert " INFO     " in line and f"task_id={tid}" in line and "queue=default" in line
    after = (evertask_logger.level, evertask_logger.propagate, list(evertask_logger.handlers))
    assert after == before


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="'json' or 'console'"):
        add_structured_logging(object(), format="xml")  # type: ignore[arg-type,type-var]


class Structured(EverTask):
    n: int


class StructuredHandler(EverTaskHandler[Structured]):
    async def handle(self, task: Structured, cancellation: CancellationToken) -> None:
        import structlog

        assert current_task_context() is not None
        structlog.get_logger().info("structured", n=task.n)


async def test_structlog_processor_adds_the_task_context(otel: Otel) -> None:
    structlog = pytest.importorskip("structlog")
    out = io.StringIO()
    structlog.configure(
        processors=[add_task_context, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        host, _ = build_host(
            [StructuredHandler], builder=lambda b: add_log_context(otel.install(b))
        )
        async with host:
            tid = await host.dispatcher.dispatch(Structured(n=1))
            await wait_status(host, tid, COMPLETED)
    finally:
        structlog.reset_defaults()
    (event,) = [json.loads(line) for line in out.getvalue().splitlines()]
    (process,) = otel.spans("default process")
    assert event["event"] == "structured" and event["n"] == 1
    assert event["task_id"] == str(tid) and event["queue"] == "default"
    assert event["task_type"].endswith(":Structured")
    assert event["trace_id"] == f"{process.context.trace_id:032x}"
    assert current_task_context() is None
