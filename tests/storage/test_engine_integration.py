"""The SQL storages under the engine: builder extensions, end to end, restart recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import containers, providers

from evertask import add_evertask
from evertask.builder import EverTaskServiceBuilder
from evertask.storage import TaskQuery
from evertask_abstractions import (
    AuditLevel,
    CancellationToken,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
)
from evertask_storage_efcore_like import RetentionComponent, RetentionPolicy, SqlTaskStorage

from .conftest import PG_URL

Q = QueuedTaskStatus


class Counter:
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.event = asyncio.Event()
        self.target = 0

    def hit(self, n: int) -> None:
        self.seen.append(n)
        if len(self.seen) >= self.target:
            self.event.set()


class Job(EverTask):
    n: int


class JobHandler(EverTaskHandler[Job]):
    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        self.logger.info("job %d", task.n)
        self.counter.hit(task.n)


class Services(containers.DeclarativeContainer):
    counter = providers.Singleton(Counter)


Configure = Callable[[EverTaskServiceBuilder], EverTaskServiceBuilder]


def _configure(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Configure:
    if backend == "sqlite":
        path = tmp_path / "engine.db"
        return lambda b: b.add_sqlite_storage(
            str(path), retention=RetentionPolicy(status_audit_retention_days=30)
        )
    schema = request.getfixturevalue("pg_schema")
    return lambda b: b.add_postgres_storage(PG_URL, schema=schema)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_tasks_run_and_resume_after_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    configure = _configure(backend, tmp_path, request)

    def build(container: Services) -> Any:
        return configure(
            add_evertask(
                container, lambda o: o.register_handler(JobHandler).set_max_degree_of_parallelism(8)
            )
        ).build()

    first = Services()
    host = build(first)
    storage = host.storage
    assert isinstance(storage, SqlTaskStorage)
    if backend == "sqlite":
        assert any(isinstance(c, RetentionComponent) for c in host.components)
    counter = first.counter()
    counter.target = 40
    async with host:
        await host.wait_recovered(10)
        ids = await asyncio.gather(*(host.dispatcher.dispatch(Job(n=i)) for i in range(40)))
        await asyncio.wait_for(counter.event.wait(), 10)
        later = await host.dispatcher.dispatch(
            Job(n=99), timedelta(hours=1), audit_level=AuditLevel.NONE
        )
        await host.pause_queue("default")
        paused = await host.dispatcher.dispatch(Job(n=100))
    assert sorted(counter.seen) == list(range(40))

    second = Services()
    host = build(second)
    counter = second.counter()
    counter.target = 1
    async with host:
        assert host.engine.queues.queues["default"].paused  # the pause survived
        await host.wait_recovered(10)
        storage = host.storage
        assert isinstance(storage, SqlTaskStorage)
        page = await storage.query_tasks(
            TaskQuery(statuses=frozenset({Q.COMPLETED}), page_size=100)
        )
        assert {t.id for t in page.items} == set(ids)
        delayed = await storage.get(later)
        assert delayed is not None and delayed.status is Q.WAITING_QUEUE
        await host.resume_queue("default")
        await asyncio.wait_for(counter.event.wait(), 10)
        assert counter.seen == [100]
        for _ in range(100):
            row = await storage.get(paused)
            if row is not None and row.status is Q.COMPLETED:
                break
            await asyncio.sleep(0.02)
        assert row is not None and row.status is Q.COMPLETED
        audits = await storage.get_status_audits(paused)
        assert [a.new_status for a in audits][-2:] == [Q.IN_PROGRESS, Q.COMPLETED]
