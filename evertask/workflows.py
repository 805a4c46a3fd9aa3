"""Workflows: task results, continuations, batches and sagas (docs/workflows.md).

A handler's returned value is serialized with pydantic (its ``result_type``, else the
value's own type) and stored with the Completed write. A continuation is a row persisted
WaitingParent; the parent's terminal write releases it in the same transaction (see the
storage protocol), which hands the released rows to the node that writes it while that
node takes work, as many as its claim would take (see ``Membership.hand_over``): it adopts
them as it adopts the rows its cluster claim takes. The others are unowned Queued rows,
which any node's claim takes; and when the owner dies first, its rows are a dead node's
rows, which the live nodes' claims or the next start's recovery take.

Batches and workflows are units: their records (``TaskBatch``) and rows are inserted in
one transaction, built here by :class:`UnitBuilder`. A saga's compensations are kept in
its workflow record; a compensating task (:class:`CompensateWorkflow`), a continuation of
the workflow that runs when it fails, dispatches those of the completed steps.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from evertask_abstractions import (
    AuditLevel,
    BatchKind,
    BatchStatus,
    ConfigurationError,
    ContinueWhen,
    EverTask,
    QueuedTaskStatus,
    TaskResultError,
    Workflow,
)

from .ids import uuid7
from .registry import HandlerDescriptor, handler_type_name
from .storage.models import QueuedTask, TaskBatch
from .storage.protocol import BatchStore, TaskStorage

__all__ = [
    "CompensateWorkflow",
    "Unit",
    "UnitBuilder",
    "read_parent",
    "read_result",
    "result_json",
]

Q = QueuedTaskStatus

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


async def read_parent(
    storage: TaskStorage | None, parent_id: uuid.UUID, result_type: Any, many: bool
) -> Any:
    """A continuation's view of its parent: the parent task's result, or (``many``) the
    results of a parent batch's members in dispatch order (``[result]`` for a task)."""
    found: object = storage
    batches = found if isinstance(found, BatchStore) else None
    batch = None if batches is None else await batches.get_batch(parent_id)
    if batch is None:
        value = await read_result(storage, parent_id, result_type)
        return [value] if many else value
    if not many:
        raise TaskResultError(
            f"The parent {parent_id} is a {batch.kind.value.lower()}, not a task: read its "
            "members' results with parent_results()."
        )
    assert batches is not None
    adapter = _adapter(result_type)
    values: list[Any] = []
    for member in await batches.batch_members(parent_id):
        if member.status is not Q.COMPLETED or member.result is None:
            values.append(None)
            continue
        try:
            values.append(adapter.validate_json(member.result))
        except Exception as exc:
            name = getattr(result_type, "__qualname__", None) or repr(result_type)
            raise TaskResultError(
                f"The result of task {member.id} (of {parent_id}) does not fit {name}: {exc}"
            ) from exc
    return values


# -- units: batches and workflows dispatched in one transaction -----------------------------
_COMPENSATION = uuid.UUID("5b0c7f1e-3a52-4d8e-9c1a-6f2e8d4b7a10")
"""The namespace of a saga's compensation ids (uuid5 of it and the workflow's id): a
second run of the compensating task finds the first one's rows."""


@dataclass(slots=True)
class Unit:
    """Records and rows committed together (``BatchStore.persist_unit``)."""

    id: uuid.UUID
    """The batch's or the workflow's id."""
    batches: list[TaskBatch]
    tasks: list[QueuedTask]


class UnitBuilder:
    """Builds the rows of a batch, a workflow or a saga's compensations."""

    def __init__(
        self,
        storage: BatchStore,
        make_row: Callable[[EverTask, AuditLevel, str], QueuedTask],
        describe: Callable[[EverTask], dict[str, str]],
        now: datetime,
    ) -> None:
        self.storage = storage
        self._make_row = make_row
        self._describe = describe
        self._now = now

    def row(
        self,
        task: EverTask,
        level: AuditLevel,
        kind: str,
        *,
        parent: uuid.UUID | None = None,
        when: ContinueWhen = ContinueWhen.SUCCEEDED,
        batch_id: uuid.UUID | None = None,
        workflow_id: uuid.UUID | None = None,
    ) -> QueuedTask:
        """One row, built as the dispatcher builds any (``kind``: what observers see):
        Queued without an owner (any worker node's claim takes it), or WaitingParent for
        ``parent`` (a task or a batch of the same unit)."""
        if not isinstance(task, EverTask):
            raise ConfigurationError(
                f"Batches and workflows take EverTask instances, got {type(task).__qualname__}."
            )
        row = self._make_row(task, level, kind)
        row.owner_node = None
        if parent is not None:
            row.status = Q.WAITING_PARENT
            row.parent_task_id, row.continue_when = parent, when.value
        row.batch_id, row.workflow_id = batch_id, workflow_id
        return row

    def _record(
        self,
        kind: BatchKind,
        total: int,
        *,
        record_id: uuid.UUID | None = None,
        name: str | None = None,
        workflow_id: uuid.UUID | None = None,
    ) -> TaskBatch:
        return TaskBatch(
            id=record_id or uuid7(),
            kind=kind,
            status=BatchStatus.RUNNING,
            created_at_utc=self._now,
            total=total,
            name=name,
            workflow_id=workflow_id,
        )

    def batch(self, tasks: Sequence[EverTask], name: str | None, level: AuditLevel) -> Unit:
        """A batch of ``tasks`` (each Queued), counted in one record."""
        if not tasks:
            raise ConfigurationError("A batch needs at least one task.")
        if name is not None and len(name) > 200:
            raise ConfigurationError("A batch name is at most 200 characters.")
        record = self._record(BatchKind.BATCH, len(tasks), name=name)
        rows = [self.row(t, level, "batch", batch_id=record.id) for t in tasks]
        return Unit(record.id, [record], rows)

    def workflow(self, workflow: Workflow, level: AuditLevel) -> Unit:
        """Every step of ``workflow``: the first stage Queued, each later stage waiting
        for the one before (its task, or its group's record); a saga's compensations in
        the workflow record and its compensating task waiting for the workflow to fail."""
        if not isinstance(workflow, Workflow):
            raise ConfigurationError(
                f"dispatch_workflow takes a Workflow, got {type(workflow).__qualname__}."
            )
        stages = workflow.stages
        if not stages:
            raise ConfigurationError("A workflow needs at least one step: call then() or group().")
        record = self._record(
            BatchKind.WORKFLOW, sum(len(stage) for stage in stages), name=workflow.name
        )
        wid = record.id
        unit = Unit(wid, [record], [])
        compensations: dict[str, dict[str, Any]] = {}
        previous: uuid.UUID | None = None
        for stage in stages:
            group = None
            if len(stage) > 1:
                group = self._record(BatchKind.GROUP, len(stage), workflow_id=wid)
                unit.batches.append(group)
            for step in stage:
                row = self.row(
                    step.task,
                    level,
                    "workflow",
                    parent=previous,
                    batch_id=None if group is None else group.id,
                    workflow_id=wid,
                )
                unit.tasks.append(row)
                if step.compensate is not None:
                    compensations[str(row.id)] = self._describe(step.compensate)
            previous = unit.tasks[-1].id if group is None else group.id
        if compensations:
            record.definition = json.dumps({"compensations": compensations})
            unit.tasks.append(
                self.row(
                    CompensateWorkflow(workflow_id=wid),
                    level,
                    "workflow",
                    parent=wid,
                    when=ContinueWhen.FAILED,
                )
            )
        return unit

    async def compensations(self, workflow_id: uuid.UUID) -> Unit | None:
        """The compensations of a failed saga's completed steps, last step first, each
        waiting for the one before it to finish (``None``: nothing to compensate)."""
        record = await self.storage.get_batch(workflow_id)
        if record is None or not record.definition:
            return None
        specs: dict[str, dict[str, Any]] = json.loads(record.definition)["compensations"]
        members = await self.storage.batch_members(workflow_id)
        done = [m for m in members if m.status is Q.COMPLETED and str(m.id) in specs]
        if not done:
            return None
        cid = uuid.uuid5(_COMPENSATION, str(workflow_id))
        batch = self._record(
            BatchKind.COMPENSATION, len(done), record_id=cid, workflow_id=workflow_id
        )
        unit = Unit(cid, [batch], [])
        previous: uuid.UUID | None = None
        for member in reversed(done):
            spec = specs[str(member.id)]
            row = QueuedTask(
                id=uuid.uuid5(cid, str(member.id)),
                type=spec["type"],
                request=spec["request"],
                handler=spec["handler"],
                status=Q.QUEUED if previous is None else Q.WAITING_PARENT,
                created_at_utc=self._now,
                queue_name=spec["queue"],
                audit_level=member.audit_level,
                owner_node=None,
                parent_task_id=previous,
                continue_when=None if previous is None else ContinueWhen.FINISHED.value,
                batch_id=cid,
            )
            unit.tasks.append(row)
            previous = row.id
        return unit


class CompensateWorkflow(EverTask, task_name="evertask.CompensateWorkflow"):
    """EverTask's own task: compensate a failed saga (dispatched with the workflow; run by
    :class:`evertask.compensation.CompensateWorkflowHandler`)."""

    workflow_id: uuid.UUID
