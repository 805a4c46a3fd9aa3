"""Rows that cannot be decoded are Failed at the first start, with the reason; transient
load failures are still counted across starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import field_validator

from evertask import EverTaskHost, QueuedTask, add_evertask, uuid7
from evertask.recovery import MAX_RECOVERY_ATTEMPTS
from evertask_abstractions import (
    CancellationToken,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
)
from tests.engine.tasks import Ping, PingHandler
from tests.helpers import Container

LOOKUP_UP = False


class Lookup(EverTask):
    """A task whose validator reads a resource that is down on the first starts."""

    code: str

    @field_validator("code")
    @classmethod
    def _resource(cls, value: str) -> str:
        if not LOOKUP_UP:
            raise ConnectionError("lookup service unavailable")
        return value


class LookupHandler(EverTaskHandler[Lookup]):
    async def handle(self, task: Lookup, cancellation: CancellationToken) -> None:
        pass


def _host(path: Path) -> EverTaskHost:
    return (
        add_evertask(Container(), lambda o: o.register_handler(PingHandler, LookupHandler))
        .add_sqlite_storage(str(path))
        .build()
    )


def _row(type_name: str, payload: str) -> QueuedTask:
    return QueuedTask(
        id=uuid7(),
        type=type_name,
        request=payload,
        handler="h",
        status=QueuedTaskStatus.QUEUED,
        created_at_utc=datetime.now(UTC) - timedelta(minutes=1),
    )


async def _start_once(path: Path) -> None:
    host = _host(path)
    async with host:
        await host.wait_recovered(5)


async def test_undecodable_rows_are_failed_at_the_first_start_with_the_reason(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    corrupt = _row(Ping.evertask_type_name(), '{"n": 1')
    wrong_shape = _row(Ping.evertask_type_name(), '{"n": "not a number"}')
    unknown = _row("app.tasks:SendEmail", "{}")
    host = _host(path)
    async with host:  # the rows of a previous process
        assert host.storage is not None
        for row in (corrupt, wrong_shape, unknown):
            await host.storage.persist(row)

    host = _host(path)
    async with host:
        await host.wait_recovered(5)
        storage = host.storage
        assert storage is not None
        rows = {r.id: await storage.get(r.id) for r in (corrupt, wrong_shape, unknown)}
    for stored in rows.values():
        assert stored is not None and stored.status is QueuedTaskStatus.FAILED, stored
        assert stored.recovery_dispatch_failure_count == 0
    bad_json = rows[corrupt.id].exception or ""  # type: ignore[union-attr]
    assert "Unreadable payload" in bad_json and "json" in bad_json.lower()
    assert "Unreadable payload" in (rows[wrong_shape.id].exception or "")  # type: ignore[union-attr]
    gone = rows[unknown.id].exception or ""  # type: ignore[union-attr]
    assert "'app.tasks:SendEmail' is not registered in this process" in gone
    assert "class SendEmail(EverTask, task_name='app.tasks:SendEmail')" in gone


async def test_a_transient_load_failure_is_counted_across_starts(tmp_path: Path) -> None:
    global LOOKUP_UP
    path = tmp_path / "t.db"
    row = _row(Lookup.evertask_type_name(), '{"code": "x"}')
    host = _host(path)
    async with host:
        assert host.storage is not None
        await host.storage.persist(row)
    try:
        for attempt in range(1, MAX_RECOVERY_ATTEMPTS):
            host = _host(path)
            async with host:
                await host.wait_recovered(5)
                assert host.storage is not None
                stored = await host.storage.get(row.id)
            assert stored is not None and stored.status is QueuedTaskStatus.QUEUED
            assert stored.recovery_dispatch_failure_count == attempt
        LOOKUP_UP = True  # the resource is back: the row runs and its counter is reset
        host = _host(path)
        async with host:
            await host.wait_recovered(5)
            assert host.storage is not None
            from tests.helpers import wait_status

            await wait_status(host, row.id, QueuedTaskStatus.COMPLETED)
            stored = await host.storage.get(row.id)
        assert stored is not None and stored.recovery_dispatch_failure_count == 0
    finally:
        LOOKUP_UP = False
