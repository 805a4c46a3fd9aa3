"""The engine suite's storage floor makes the storage calls the engine makes for a task."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from typing import Any

from benchmarks import engine as be
from evertask import add_evertask
from evertask.storage import MemoryTaskStorage, QueuedTask

_VARYING = {"id", "created_at_utc", "last_execution_utc", "execution_time_ms", "owner_node"}


class Recording(MemoryTaskStorage):
    """Records each write: its name and what it stores, ids and times left out."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, ...]] = []

    async def persist(self, task: QueuedTask) -> None:
        assert task.owner_node is not None  # the dispatching node, a node id in the floor
        fields = {k: v for k, v in asdict(task).items() if k not in _VARYING}
        self.calls.append(("persist", sorted(fields.items(), key=repr)))
        await super().persist(task)

    async def set_in_progress(self, task_id: uuid.UUID, audit_level: Any) -> None:
        self.calls.append(("set_in_progress", audit_level))
        await super().set_in_progress(task_id, audit_level)

    async def set_completed(
        self, task_id: uuid.UUID, ms: float, audit_level: Any, *args: Any, **kw: Any
    ) -> Any:
        self.calls.append(("set_completed", audit_level))
        return await super().set_completed(task_id, ms, audit_level, *args, **kw)

    async def histories(self) -> list[list[tuple[Any, Any]]]:
        """Each row's status history (status, exception), rows in id order."""
        ids = sorted(row.id for row in self._tasks.values())
        return [
            [(a.new_status, a.exception) for a in await self.get_status_audits(tid)] for tid in ids
        ]


async def test_the_storage_floor_writes_what_the_engine_writes() -> None:
    engine_storage, floor_storage = Recording(), Recording()
    container = be.Container()
    host = (
        add_evertask(container, lambda o: o.register_handler(be.NoopHandler))
        .use_storage(engine_storage)
        .build()
    )
    recorder = container.recorder()
    async with host:
        recorder.reset(3)
        for i in range(3):
            await host.dispatcher.dispatch(be.Noop(n=i))
        await asyncio.wait_for(recorder.done.wait(), 10)
    await be.storage_floor(3, floor_storage)
    assert len(engine_storage.calls) == 9
    assert sorted(floor_storage.calls, key=repr) == sorted(engine_storage.calls, key=repr)
    assert await floor_storage.histories() == await engine_storage.histories()


async def test_the_engine_runs_without_a_storage() -> None:
    assert await be.engine_throughput(50, storage=False) > 0
