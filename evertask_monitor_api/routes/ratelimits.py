"""``/ratelimits``: this host's keyed rate limiter and concurrency limits, now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..schemas import ParkedTaskDto, RateLimitsDto
from .deps import READ_RESPONSES, Context, require_ready, require_user

__all__ = ["router"]

router = APIRouter(
    prefix="/ratelimits",
    tags=["ratelimits"],
    dependencies=[Depends(require_user), Depends(require_ready)],
    responses=READ_RESPONSES,
)


@router.get("", response_model=RateLimitsDto)
async def ratelimits(
    context: Context, limit: Annotated[int, Query(ge=0, le=1000)] = 100
) -> RateLimitsDto:
    """Parked runs (earliest slot first, at most ``limit``), tracked keys and fail-opens
    of the serving host (per-host budgets); ``available`` is false in standalone mode."""
    host = context.host
    if host is None:
        return RateLimitsDto(available=False)
    gate = host.rate_limiter
    return RateLimitsDto(
        available=True,
        parked_task_count=gate.parked_task_count,
        max_parked_tasks=gate.max_parked_tasks,
        tracked_key_count=gate.tracked_key_count,
        fail_open_count=gate.fail_open_count,
        parked=[ParkedTaskDto.of(p) for p in gate.parked_snapshot()[:limit]],
    )
