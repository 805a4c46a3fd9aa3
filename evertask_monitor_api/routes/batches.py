"""``/batches``: batches and workflows with their progress, members, stages, compensations
and continuations; cancel (docs/workflows.md)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from evertask.storage.models import QueuedTask, TaskBatch
from evertask.storage.protocol import BatchStore
from evertask_abstractions import BatchKind, BatchStatus, TaskNotFoundError

from ..schemas import (
    BatchActionResponse,
    BatchDetailDto,
    BatchDto,
    BatchesPageResponse,
    BatchMemberDto,
    BatchRecordDto,
    WorkflowStageDto,
    short_type_name,
)
from .deps import READ_RESPONSES, WRITE_RESPONSES, Context, require_ready, require_user
from .deps import require_writable as writable
from .params import Page, PageSize

__all__ = ["MAX_CONTINUATIONS", "MAX_MEMBERS", "router", "workflow_stages"]

MAX_MEMBERS = 1000
"""Members returned inside a record's detail (``memberCount`` says how many there are)."""
MAX_CONTINUATIONS = 100
"""Continuations returned inside a record's detail, oldest first."""
MAX_GROUPS = 10_000
"""Groups of one workflow read for its stages (one per parallel stage)."""
DEFAULT_KINDS = (BatchKind.BATCH, BatchKind.WORKFLOW)
"""What the list shows unless asked: groups and compensations appear in their workflow."""

router = APIRouter(
    prefix="/batches",
    tags=["batches"],
    dependencies=[Depends(require_user), Depends(require_ready)],
    responses=READ_RESPONSES,
)


def _store(context: Context) -> BatchStore | None:
    storage: object = context.storage
    return storage if isinstance(storage, BatchStore) else None


async def _record(store: BatchStore | None, batch_id: uuid.UUID) -> TaskBatch:
    record = None if store is None else await store.get_batch(batch_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No batch or workflow with id {batch_id}.")
    return record


@router.get("", response_model=BatchesPageResponse)
async def list_batches(
    context: Context,
    kind: Annotated[
        list[BatchKind] | None,
        Query(description="Any of (repeatable); default Batch and Workflow"),
    ] = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> BatchesPageResponse:
    """Batches and workflows, newest first, one page at a time (``hasMore``: there is a
    next page). A workflow's groups and compensations are listed inside it (ask for the
    kinds ``Group`` or ``Compensation`` to list them here)."""
    store = _store(context)
    if store is None:  # a storage that keeps no batches has none
        return BatchesPageResponse(items=[], page=page, page_size=page_size, has_more=False)
    kinds = [k.value for k in (kind or DEFAULT_KINDS)]
    found = await store.list_batches(
        kinds=kinds, limit=page_size + 1, offset=(page - 1) * page_size
    )
    writable = not context.read_only
    return BatchesPageResponse(
        items=[BatchDto.of(b, writable) for b in found[:page_size]],
        page=page,
        page_size=page_size,
        has_more=len(found) > page_size,
    )


@router.get("/{batch_id}", response_model=BatchDetailDto, responses={404: WRITE_RESPONSES[404]})
async def batch_detail(context: Context, batch_id: uuid.UUID) -> BatchDetailDto:
    """A record with its progress and members; a workflow's stages (each step, or a group
    with its record) and compensation records with their members; the continuations
    dispatched after the record."""
    store = _store(context)
    record = await _record(store, batch_id)
    assert store is not None
    writable = not context.read_only
    members, continuations = await asyncio.gather(
        store.batch_members(batch_id),
        store.continuations(batch_id, limit=MAX_CONTINUATIONS),
    )
    stages: list[WorkflowStageDto] = []
    compensations: list[BatchRecordDto] = []
    undo: dict[str, str] = {}
    if record.kind is BatchKind.WORKFLOW:
        groups = await store.list_batches(
            kinds=[BatchKind.GROUP.value], workflow_id=batch_id, limit=MAX_GROUPS
        )
        stages = workflow_stages(members, {g.id: BatchDto.of(g, writable) for g in groups})
        members = _in_stage_order(members, stages)
        undo = _compensated_steps(record.definition)
        for comp in await store.list_batches(
            kinds=[BatchKind.COMPENSATION.value], workflow_id=batch_id
        ):
            rows = await store.batch_members(comp.id)  # (a chain: last step's undo first)
            rows = _in_stage_order(rows, workflow_stages(rows, {}))
            compensations.append(
                BatchRecordDto(
                    **BatchDto.of(comp, writable).model_dump(),
                    members=[BatchMemberDto.of(r, writable) for r in rows[:MAX_MEMBERS]],
                )
            )
    return BatchDetailDto(
        **BatchDto.of(record, writable).model_dump(),
        members=[
            BatchMemberDto.of(m, writable, undo.get(str(m.id))) for m in members[:MAX_MEMBERS]
        ],
        member_count=len(members),
        member_limit=MAX_MEMBERS,
        stages=stages,
        compensations=compensations,
        continuations=[BatchMemberDto.of(c, writable) for c in continuations],
        continuation_limit=MAX_CONTINUATIONS,
    )


def _compensated_steps(definition: str | None) -> dict[str, str]:
    """Step id -> the short type of its compensating task, from a saga's definition."""
    if not definition:
        return {}
    try:
        specs: Any = json.loads(definition).get("compensations", {})
        return {str(k): short_type_name(str(v["type"])) for k, v in specs.items()}
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}


def workflow_stages(
    steps: list[QueuedTask], groups: dict[uuid.UUID, BatchDto]
) -> list[WorkflowStageDto]:
    """A workflow's stages, in order, from its steps' parents: the first stage waits for
    nothing, each later one for the stage before it (its single step, or its group's
    record). Steps whose chain cannot be followed (rows removed by retention) come last,
    one stage per group or step."""
    by_parent: dict[uuid.UUID | None, list[QueuedTask]] = {}
    for step in steps:
        by_parent.setdefault(step.parent_task_id, []).append(step)
    stages: list[WorkflowStageDto] = []
    placed: set[uuid.UUID] = set()
    anchor: uuid.UUID | None = None
    while True:
        stage = [s for s in by_parent.get(anchor, []) if s.id not in placed]
        if not stage:
            break
        group_id = stage[0].batch_id
        stage = [s for s in stage if s.batch_id == group_id]
        placed.update(s.id for s in stage)
        stages.append(_stage(len(stages) + 1, group_id, stage, groups))
        anchor = group_id if group_id is not None else stage[0].id
        if len(stage) > 1 and group_id is None:
            break  # (not a workflow's shape: several single steps after one parent)
    rest = [s for s in steps if s.id not in placed]
    while rest:
        group_id = rest[0].batch_id
        stage = [s for s in rest if s.batch_id == group_id] if group_id else rest[:1]
        placed.update(s.id for s in stage)
        stages.append(_stage(len(stages) + 1, group_id, stage, groups))
        rest = [s for s in rest if s.id not in placed]
    return stages


def _in_stage_order(rows: list[QueuedTask], stages: list[WorkflowStageDto]) -> list[QueuedTask]:
    """``rows`` stage by stage (ids of one unit are not ordered: a compensation's are
    derived from its steps', and SQL Server orders uniqueidentifiers its own way)."""
    by_id = {r.id: r for r in rows}
    return [by_id[i] for stage in stages for i in stage.task_ids]


def _stage(
    index: int,
    group_id: uuid.UUID | None,
    steps: list[QueuedTask],
    groups: dict[uuid.UUID, BatchDto],
) -> WorkflowStageDto:
    return WorkflowStageDto(
        index=index,
        group=None if group_id is None else groups.get(group_id),
        task_ids=[s.id for s in steps],
    )


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchActionResponse,
    responses=WRITE_RESPONSES,
    dependencies=[Depends(writable)],
)
async def cancel_batch(context: Context, batch_id: uuid.UUID) -> BatchActionResponse:
    """Cancel a running batch or workflow: its members that have not finished (running
    ones are stopped, as a task's cancel does) and the continuations waiting for it (409
    once it has finished)."""
    store = _store(context)
    record = await _record(store, batch_id)
    assert store is not None
    label = f"{record.kind.value} {batch_id}"
    if record.status is not BatchStatus.RUNNING:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{label} is {record.status.value}; only a running batch or workflow can be cancelled.",
        )
    assert context.host is not None
    try:
        await context.host.dispatcher.cancel_batch(batch_id)
    except TaskNotFoundError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"No batch or workflow with id {batch_id}."
        ) from None
    after = await _record(store, batch_id)
    if after.status is not BatchStatus.CANCELLED:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{label} finished ({after.status.value}) before it could be cancelled.",
        )
    return BatchActionResponse(
        batch_id=batch_id,
        kind=after.kind,
        status=after.status,
        message=f"{label} was cancelled: {after.cancelled} of its {after.total} tasks are "
        "cancelled.",
    )
