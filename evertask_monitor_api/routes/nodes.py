"""``/nodes``: the hosts of the cluster sharing this storage, alive or dead."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..schemas import NodeDto
from .deps import READ_RESPONSES, Context, require_ready, require_user

__all__ = ["router"]

router = APIRouter(
    prefix="/nodes",
    tags=["nodes"],
    dependencies=[Depends(require_user), Depends(require_ready)],
    responses=READ_RESPONSES,
)


@router.get("", response_model=list[NodeDto])
async def nodes(context: Context) -> list[NodeDto]:
    """Every registered node, oldest first: ``alive`` while its lease is valid (by the
    host's clock); ``running`` counts the executions of this host's own node only."""
    host = context.host
    if host is None:
        return [
            NodeDto.of(n, context.now(), None, None) for n in await context.storage.list_nodes()
        ]
    infos = await host.cluster_nodes()
    running = sum(host.queue_running(name) for name in host.queue_names)
    now = context.now()
    return [NodeDto.of(n, now, host.node_id, running) for n in infos]
