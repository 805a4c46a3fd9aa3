"""The in-memory storage's inline intake of immediate dispatches equals ``persist``."""

from __future__ import annotations

from datetime import UTC, datetime

from evertask import MemoryTaskStorage, QueuedTask, uuid7
from evertask_abstractions import AuditLevel, QueuedTaskStatus

NOW = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)


async def test_persist_queued_stores_what_persist_stores() -> None:
    for level in (AuditLevel.FULL, AuditLevel.MINIMAL, AuditLevel.NONE):
        inline, reference = MemoryTaskStorage(), MemoryTaskStorage()
        tid = uuid7()
        row = QueuedTask(
            tid,
            "app.tasks:Mail",
            '{"to":"a@b.c"}',
            "app.handlers:MailHandler",
            QueuedTaskStatus.QUEUED,
            NOW,
            "mail",
            level,
            trace_context="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        )
        await reference.persist(row)
        persist = inline.inline_persist()
        assert persist is not None
        persist(tid, row.type, row.request, row.handler, NOW, "mail", level, row.trace_context)
        assert await inline.get(tid) == await reference.get(tid) == row
        inline_audits = [(a.new_status, a.exception) for a in await inline.get_status_audits(tid)]
        reference_audits = [
            (a.new_status, a.exception) for a in await reference.get_status_audits(tid)
        ]
        assert inline_audits == reference_audits
        assert inline_audits == (
            [(QueuedTaskStatus.QUEUED, None)] if level is AuditLevel.FULL else []
        )
        page = await inline.retrieve_pending(None, None, 10)
        assert [t.id for t in page] == [tid]


def test_a_subclass_that_overrides_persist_gets_every_row() -> None:
    class Audited(MemoryTaskStorage):
        async def persist(self, task: QueuedTask) -> None:
            await super().persist(task)

    assert Audited().inline_persist() is None
    assert MemoryTaskStorage().inline_persist() is not None
