"""The persistent logger: per-execution capture, forwarding, limits and isolation."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest

from evertask import EverTaskOptions
from evertask.logcapture import PersistentLogCapture
from evertask.storage.models import ExecutionLogs, TaskExecutionLog
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler, QueuedTaskStatus
from tests.helpers import build_host, wait_status
from tests.observability.tasks import (
    ALL,
    Chatty,
    ChattyHandler,
    Failing,
    Hanging,
    Levels,
    LevelsHandler,
    SyncChatty,
)

COMPLETED, FAILED = QueuedTaskStatus.COMPLETED, QueuedTaskStatus.FAILED


async def logs_of(host: Any, task_id: uuid.UUID) -> list[TaskExecutionLog]:
    return list(await host.storage.get_execution_logs(task_id))


def persistent(**settings: Any) -> Any:
    def configure(o: EverTaskOptions) -> None:
        o.with_persistent_logger(lambda p: [getattr(p, k)(v) for k, v in settings.items()])

    return configure


def capture_session(**settings: Any) -> tuple[Any, ChattyHandler, Any]:
    """A capture session of a persistent logger with ``settings``, begun for a handler
    outside any host run: (session, handler, run)."""
    host, _ = build_host(ALL, persistent(**settings))
    capture = host.log_capture
    assert isinstance(capture, PersistentLogCapture)
    handler = ChattyHandler(None)  # type: ignore[arg-type]
    run: Any = type("Run", (), {"id": uuid.uuid4()})()
    return capture.begin(run, handler), handler, run


async def test_no_capture_object_when_the_persistent_logger_is_off() -> None:
    host, _ = build_host(ALL)
    assert host.log_capture is None
    async with host:
        tid = await host.dispatcher.dispatch(Chatty(tag="off"))
        await wait_status(host, tid, COMPLETED)
        assert await logs_of(host, tid) == []


async def test_logs_of_concurrent_tasks_never_mix() -> None:
    host, _ = build_host(ALL, persistent(set_capture_library_logs=True))
    tags = [f"t{i}" for i in range(20)]
    async with host:
        ids = {
            tag: await host.dispatcher.dispatch(Chatty(tag=tag, lines=4, library_lines=2))
            for tag in tags
        }
        sync_ids = {tag: await host.dispatcher.dispatch(SyncChatty(tag=tag)) for tag in tags[:5]}
        for tid in [*ids.values(), *sync_ids.values()]:
            await wait_status(host, tid, COMPLETED)
        for tag, tid in ids.items():
            logs = await logs_of(host, tid)
            messages = [log.message for log in logs]
            assert messages == [
                f"{tag} line 0",
                f"library says {tag}",
                f"{tag} line 1",
                f"library says {tag}",
                f"{tag} line 2",
                f"{tag} line 3",
            ]
            assert [log.sequence_number for log in logs] == list(range(6))
            assert all(log.task_id == tid for log in logs)
            assert len({log.id for log in logs}) == 6 and all(log.id.version == 7 for log in logs)
        for tag, tid in sync_ids.items():  # a sync handler runs in a thread: same isolation
            messages = [log.message for log in await logs_of(host, tid)]
            assert messages == [f"sync {tag}", f"sync library {tag}"]


async def test_library_logs_are_captured_only_when_the_option_is_on() -> None:
    host, _ = build_host(ALL, persistent())
    async with host:
        tid = await host.dispatcher.dispatch(Chatty(tag="x", lines=1, library_lines=1))
        await wait_status(host, tid, COMPLETED)
        assert [log.message for log in await logs_of(host, tid)] == ["x line 0"]


async def test_levels_minimum_level_rendering_and_exceptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the application drops DEBUG, the capture keeps it: capture is independent of logging
    caplog.set_level(logging.INFO, logger=f"{LevelsHandler.__module__}.LevelsHandler")
    host, _ = build_host(ALL, persistent(set_minimum_level=logging.DEBUG))
    async with host:
        tid = await host.dispatcher.dispatch(Levels())
        await wait_status(host, tid, COMPLETED)
        logs = await logs_of(host, tid)
    assert [(log.level, log.message) for log in logs] == [
        ("Debug", "debug d"),
        ("Information", "info i"),
        ("Warning", "warning w"),
        ("Error", "error with extra"),
        ("Error", "caught it"),
        ("Critical", "bad %d"),
    ]
    caught = logs[4].exception_details
    assert caught is not None and "Traceback" in caught and "KeyError: 'boom'" in caught
    assert all(log.exception_details is None for log in logs[:4])
    # forwarded to the application's logging: handler-named logger, task id and user extra
    # merged, the caller reported (not the capture module), DEBUG filtered by logging
    records = [r for r in caplog.records if r.name.endswith("LevelsHandler")]
    assert [r.getMessage() for r in records[:3]] == ["info i", "warning w", "error with extra"]
    assert all(r.evertask_task_id == tid for r in records)  # type: ignore[attr-defined]
    assert records[2].order_id == 42  # type: ignore[attr-defined]
    assert {r.filename for r in records} == {"tasks.py"}
    assert records[3].exc_info is not None


async def test_minimum_level_filters_what_is_stored() -> None:
    host, _ = build_host(ALL, persistent(set_minimum_level="WARNING"))
    async with host:
        tid = await host.dispatcher.dispatch(Levels())
        await wait_status(host, tid, COMPLETED)
        levels = [log.level for log in await logs_of(host, tid)]
    assert levels == ["Warning", "Error", "Error", "Critical"]


async def test_max_logs_per_task_keeps_the_first_records_and_one_marker() -> None:
    host, _ = build_host(ALL, persistent(set_max_logs_per_task=5))
    async with host:
        tid = await host.dispatcher.dispatch(Chatty(tag="many", lines=12))
        await wait_status(host, tid, COMPLETED)
        logs = await logs_of(host, tid)
    assert [log.message for log in logs[:5]] == [f"many line {i}" for i in range(5)]
    marker = logs[5]
    assert len(logs) == 6 and marker.sequence_number == 5
    assert marker.level == "Warning"
    assert marker.message == "[EverTask] 7 log entries truncated: max_logs_per_task (5) reached"


async def test_logs_are_persisted_when_the_run_fails_or_times_out() -> None:
    host, _ = build_host(ALL, persistent())
    events: list[Any] = []
    host.events.subscribe(events.append)
    async with host:
        failed = await host.dispatcher.dispatch(Failing())
        timed_out = await host.dispatcher.dispatch(Hanging())
        await wait_status(host, failed, FAILED)
        await wait_status(host, timed_out, FAILED)
        assert [log.message for log in await logs_of(host, failed)] == ["about to fail"]
        assert [log.message for log in await logs_of(host, timed_out)] == ["waiting forever"]
        for _ in range(100):  # events are delivered asynchronously
            if sum(1 for e in events if e.execution_logs) >= 2:
                break
            await asyncio.sleep(0)
    attached = {e.task_id: e.execution_logs for e in events if e.execution_logs}
    assert [log.message for log in attached[failed]] == ["about to fail"]
    assert [log.message for log in attached[timed_out]] == ["waiting forever"]


async def test_the_capture_stops_with_the_execution() -> None:
    session, handler, run = capture_session(set_capture_library_logs=True)
    handler.logger.info("during")
    logs = session.finish()
    handler.logger.info("after finish")  # still forwarded to logging, no longer kept
    logging.getLogger("tests.observability.somelib").warning("after finish")
    assert logs is not None and [log.message for log in logs] == ["during"]
    assert len(session.entries) == 1


async def test_the_kept_records_become_rows_when_read() -> None:
    session, handler, run = capture_session(set_minimum_level=logging.DEBUG)
    handler.logger.debug("first %s", "line")
    try:
        raise ValueError("boom")
    except ValueError:
        handler.logger.error("second", exc_info=True)
    handler.logger.log(25, "between Information and Warning")
    logs = session.finish()
    assert isinstance(logs, ExecutionLogs) and len(logs) == 3
    rows = list(logs)
    assert rows == list(logs) == logs[:] == [logs[0], logs[1], logs[-1]]  # equal on every read
    with pytest.raises(IndexError):
        logs[3]
    assert [(r.sequence_number, r.level, r.message) for r in rows] == [
        (0, "Debug", "first line"),
        (1, "Error", "second"),
        (2, "Information", "between Information and Warning"),
    ]
    assert all(r.task_id == run.id and r.id.version == 7 for r in rows)
    assert rows[0].id < rows[1].id < rows[2].id
    assert rows[0].timestamp_utc <= rows[1].timestamp_utc and rows[0].timestamp_utc.tzinfo
    assert rows[1].exception_details is not None and "ValueError: boom" in rows[1].exception_details
    assert rows[0].exception_details is None


async def test_records_kept_by_several_threads_get_distinct_sequence_numbers() -> None:
    session, handler, run = capture_session(set_max_logs_per_task=None)

    def chatter(thread: int) -> None:
        for i in range(300):
            handler.logger.info("thread %d line %d", thread, i)

    await asyncio.gather(*(asyncio.to_thread(chatter, t) for t in range(4)))
    logs = session.finish()
    assert logs is not None and len(logs) == 1200
    assert [log.sequence_number for log in logs] == list(range(1200))
    assert len({log.id for log in logs}) == 1200


class MakesRecords(EverTask):
    pass


class MakesRecordsHandler(EverTaskHandler[MakesRecords]):
    async def handle(self, task: MakesRecords, cancellation: CancellationToken) -> None:
        # what logging.handlers.QueueListener and socket receivers do with received records
        rebuilt = logging.makeLogRecord({"msg": "rebuilt", "levelno": logging.INFO})
        assert rebuilt.getMessage() == "rebuilt"
        logging.getLogger("some.library").warning("after it")


async def test_records_rebuilt_with_make_log_record_do_not_break_library_capture() -> None:
    host, _ = build_host([*ALL, MakesRecordsHandler], persistent(set_capture_library_logs=True))
    async with host:
        tid = await host.dispatcher.dispatch(MakesRecords())
        await wait_status(host, tid, COMPLETED)
        assert [log.message for log in await logs_of(host, tid)] == ["after it"]
