"""``/ratelimits``: this host's keyed rate limiter and concurrency limits, now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..schemas import AdaptiveThrottlingDto, ParkedTaskDto, RateLimitsDto
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
    of the serving host, whether budgets are cluster-wide, and adaptive throttling's state;
    ``available`` is false in standalone mode."""
    host = context.host
    if host is None:
        return RateLimitsDto(available=False)
    gate = host.rate_limiter
    adaptive = host.adaptive_throttling
    state = None if adaptive is None else adaptive.state
    return RateLimitsDto(
        available=True,
        cluster_wide=gate.cluster_wide,
        adaptive=(
            AdaptiveThrottlingDto(enabled=False)
            if state is None
            else AdaptiveThrottlingDto(
                enabled=True,
                paused=state.paused,
                reason=state.reason,
                since=state.since,
                cpu=state.cpu,
                memory_bytes=state.memory_bytes,
                cpu_threshold=state.cpu_threshold,
                memory_threshold_bytes=state.memory_threshold_bytes,
                pauses=state.pauses,
            )
        ),
        parked_task_count=gate.parked_task_count,
        max_parked_tasks=gate.max_parked_tasks,
        tracked_key_count=gate.tracked_key_count,
        fail_open_count=gate.fail_open_count,
        parked=[ParkedTaskDto.of(p) for p in gate.parked_snapshot()[:limit]],
    )
