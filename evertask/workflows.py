"""Workflows: task results and continuations (docs/workflows.md).

A handler's returned value is serialized with pydantic (its ``result_type``, else the
value's own type) and stored with the Completed write. A continuation is a row persisted
WaitingParent; the parent's terminal write releases it in the same transaction (see the
storage protocol). Released rows are ordinary unowned Queued rows: the node that wrote the
release claims them at once through its cluster claim (as the queues make room), and when
that node dies first, any node's claim, or recovery at the next start, runs them.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import TypeAdapter

from evertask_abstractions import QueuedTaskStatus, TaskResultError

from .registry import HandlerDescriptor, handler_type_name
from .storage.protocol import TaskStorage

__all__ = ["read_result", "result_json"]

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
