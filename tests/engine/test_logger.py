"""``self.logger`` in handlers: named after the handler, carries the task id, merges ``extra``."""

from __future__ import annotations

import logging

import pytest

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler, QueuedTaskStatus
from tests.helpers import build_host, wait_status


class Talk(EverTask):
    pass


class TalkHandler(EverTaskHandler[Talk]):
    async def handle(self, task: Talk, cancellation: CancellationToken) -> None:
        self.logger.warning("hello %s", "world", extra={"order_id": 42})


async def test_handler_logger_records_carry_task_id_and_caller_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, _ = build_host([TalkHandler])
    with caplog.at_level(logging.WARNING):
        async with host:
            tid = await host.dispatcher.dispatch(Talk())
            await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
    record = next(r for r in caplog.records if r.getMessage() == "hello world")
    assert record.name.endswith("TalkHandler")
    assert record.evertask_task_id == tid  # type: ignore[attr-defined]
    assert record.order_id == 42  # type: ignore[attr-defined]
