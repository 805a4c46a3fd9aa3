"""``/queues``: metrics, configuration, a queue's tasks, pause and resume."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status

from evertask.storage.models import TaskQuery

from ..schemas import QueueActionResponse, QueueConfigurationDto, QueueMetricsDto, TasksPageResponse
from .deps import READ_RESPONSES, WRITE_RESPONSES, Context, require_ready, require_user
from .deps import require_writable as writable
from .params import Page, PageSize
from .tasks import list_page

__all__ = ["router"]

router = APIRouter(
    prefix="/queues",
    tags=["queues"],
    dependencies=[Depends(require_user), Depends(require_ready)],
    responses=READ_RESPONSES,
)

QueueName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f/]+$")]


@router.get("", response_model=list[QueueMetricsDto])
async def queues(context: Context) -> list[QueueMetricsDto]:
    """Every queue (configured or present in storage) with its counts."""
    return await context.queries.queue_metrics(context.queue_names())


@router.get("/configurations", response_model=list[QueueConfigurationDto])
async def configurations(context: Context) -> list[QueueConfigurationDto]:
    """Queues with their configuration (``configured`` is false for queues only seen in
    storage, e.g. in standalone mode) and their counts."""
    out: list[QueueConfigurationDto] = []
    for metrics in await context.queries.queue_metrics(context.queue_names()):
        config = context.queue_config(metrics.queue_name)
        extra: dict[str, object] = {"configured": config is not None}
        if config is not None:
            timeout = config.default_timeout
            extra.update(
                max_degree_of_parallelism=config.max_degree_of_parallelism,
                channel_capacity=config.channel_capacity,
                queue_full_behavior=config.queue_full_behavior.name,
                default_timeout_ms=timeout.total_seconds() * 1000 if timeout else None,
                waiting_in_memory=context.queued_in_memory(metrics.queue_name),
            )
        out.append(QueueConfigurationDto(**metrics.model_dump(), **extra))
    return out


@router.get("/{name}/tasks", response_model=TasksPageResponse)
async def queue_tasks(
    context: Context, name: QueueName, page: Page = 1, page_size: PageSize = 20
) -> TasksPageResponse:
    """The queue's tasks, newest first."""
    return await list_page(context, TaskQuery(queue_name=name, page=page, page_size=page_size))


async def _set_paused(context: Context, name: str, paused: bool) -> QueueActionResponse:
    host = context.host
    assert host is not None
    if name not in host.queue_names:
        known = ", ".join(sorted(host.queue_names))
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"No queue named {name!r}; configured queues: {known}."
        )
    if paused:
        await host.pause_queue(name)
    else:
        await host.resume_queue(name)
    verb = "paused: its tasks wait until it is resumed" if paused else "resumed"
    return QueueActionResponse(queue_name=name, paused=paused, message=f"Queue {name!r} {verb}.")


@router.post(
    "/{name}/pause",
    response_model=QueueActionResponse,
    responses=WRITE_RESPONSES,
    dependencies=[Depends(writable)],
)
async def pause(context: Context, name: QueueName) -> QueueActionResponse:
    """Stop starting the queue's tasks (they keep being accepted; running ones finish).
    The pause is stored and survives restarts."""
    return await _set_paused(context, name, True)


@router.post(
    "/{name}/resume",
    response_model=QueueActionResponse,
    responses=WRITE_RESPONSES,
    dependencies=[Depends(writable)],
)
async def resume(context: Context, name: QueueName) -> QueueActionResponse:
    """Start the queue's tasks again."""
    return await _set_paused(context, name, False)
