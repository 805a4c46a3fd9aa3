"""Workflows: task results and continuations (docs/workflows.md).

A handler's returned value is serialized with pydantic (its ``result_type``, else the
value's own type) and stored with the Completed write. A continuation is a row persisted
WaitingParent; the parent's terminal write releases it in the same transaction (see the
storage protocol), and the node that wrote it adopts the released rows at once. When that
node dies first, they are ordinary unowned Queued rows: any node's claim, or recovery at
the next start, runs them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from pydantic import TypeAdapter

from evertask_abstractions import QueuedTaskStatus, TaskResultError

from .clock import Clock
from .cluster import Node
from .recovery import Recovery
from .registry import HandlerDescriptor, handler_type_name
from .storage.protocol import TaskStorage

__all__ = ["ContinuationAdopter", "read_result", "result_json"]

log = logging.getLogger("evertask.workflows")

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(result_type: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(result_type)
    if adapter is None:
        adapter = _ADAPTERS[result_type] = TypeAdapter(result_type)
    return adapter


def result_json(descriptor: HandlerDescriptor, value: Any) -> str | None:
    """The JSON text a handler's returned ``value`` is stored as; raises
    :class:`TaskResultError` (naming the handler and the type) when it cannot be."""
    declared = descriptor.handler_class.result_type
    try:
        if declared is None:
            return _adapter(Any).dump_json(value).decode()
        adapter = _adapter(declared)
        return adapter.dump_json(adapter.validate_python(value)).decode()
    except Exception as exc:
        kind = declared if declared is not None else type(value)
        name = getattr(kind, "__qualname__", None) or repr(kind)
        raise TaskResultError(
            f"Handler {handler_type_name(descriptor.handler_class)} returned a result that "
            f"cannot be stored as {name} (JSON): {exc}"
        ) from exc


async def read_result(storage: TaskStorage | None, task_id: uuid.UUID, result_type: Any) -> Any:
    """A completed task's stored result as ``result_type`` (``Any``: decoded JSON)."""
    if storage is None:
        raise TaskResultError("Results need a storage; this host has none.")
    row = await storage.get(task_id)
    if row is None:
        raise TaskResultError(f"Task {task_id} does not exist (or was removed).")
    if row.status is not QueuedTaskStatus.COMPLETED or row.is_recurring:
        detail = f": {row.exception}" if row.exception else ""
        raise TaskResultError(
            f"Task {task_id} has no result: it is {row.status.value}"
            + (" (a recurring series keeps no result)" if row.is_recurring else "")
            + f"{detail}"
        )
    if row.result is None:
        return None
    try:
        return _adapter(result_type).validate_json(row.result)
    except Exception as exc:
        name = getattr(result_type, "__qualname__", None) or repr(result_type)
        raise TaskResultError(f"The result of task {task_id} does not fit {name}: {exc}") from exc


class ContinuationAdopter:
    """Runs the continuations a terminal write released: claims them for this node and
    hands them to recovery's adoption (in the background: a worker never waits)."""

    def __init__(self, storage: TaskStorage, node: Node, clock: Clock, recovery: Recovery) -> None:
        self._storage = storage
        self._node = node
        self._clock = clock
        self._recovery = recovery
        self._tasks: set[asyncio.Task[None]] = set()

    def released(self, parent_id: uuid.UUID) -> None:
        """Adopt the released continuations of ``parent_id``."""
        if not self._node.runs_workers:
            return
        task = asyncio.get_running_loop().create_task(self._adopt(parent_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, parent_id: uuid.UUID) -> None:
        try:
            rows = await self._storage.released_children(parent_id)
            claimed = []
            for row in rows:
                if await self._storage.claim_task(row.id, self._node.id, self._clock.now()):
                    row.owner_node = self._node.id
                    claimed.append(row)
            if claimed:
                await self._recovery.adopt(claimed)
        except Exception as exc:  # they stay unowned Queued rows: a claim or a start runs them
            log.warning("Could not adopt the continuations of task %s: %r", parent_id, exc)

    async def stop(self) -> None:
        """Wait for adoptions under way."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
