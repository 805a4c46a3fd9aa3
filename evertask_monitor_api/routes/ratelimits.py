"""``/ratelimits``: this host's keyed rate limiter and concurrency limits, now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..schemas import (
    AdaptiveThrottlingDto,
    ParkedKeyDto,
    ParkedTaskDto,
    RateLimitPolicyDto,
    RateLimitsDto,
    ThrottledHandlerDto,
    short_type_name,
)
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
    """Parked runs (earliest slot first, at most ``limit``), a summary per parked key (all
    of them), tracked keys, fail-opens and the handlers declaring ``rate_limit`` or
    ``max_concurrency`` with their running and waiting runs, for the serving host; whether
    budgets are cluster-wide, and adaptive throttling's state; ``available`` is false in
    standalone mode (no host)."""
    host = context.host
    if host is None:
        return RateLimitsDto(available=False)
    gate = host.rate_limiter
    snapshot = gate.parked_snapshot()
    parked_by_type: dict[str, int] = {}
    for p in snapshot:
        parked_by_type[p.task_type] = parked_by_type.get(p.task_type, 0) + 1
    handlers = [
        ThrottledHandlerDto(
            handler=d.handler_type_name,
            short_handler=short_type_name(d.handler_type_name),
            task_type=d.task_type_name,
            short_type=short_type_name(d.task_type_name),
            queue_name=d.queue_name,
            rate_limit=None if d.rate_limit is None else RateLimitPolicyDto.of(d.rate_limit),
            max_concurrency=d.max_concurrency,
            running=None if d.max_concurrency is None else gate.running_count(d.handler_class),
            waiting=None if d.max_concurrency is None else gate.waiting_count(d.handler_class),
            parked=parked_by_type.get(d.task_type_name, 0),
        )
        for d in host.handlers
        if d.rate_limit is not None or d.max_concurrency is not None
    ]
    handlers.sort(key=lambda h: h.handler)
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
        parked=[ParkedTaskDto.of(p) for p in snapshot[:limit]],
        keys=ParkedKeyDto.summarize(snapshot),
        handlers=handlers,
    )
