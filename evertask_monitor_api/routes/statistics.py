"""``/statistics``: success-rate trend, task types and execution times."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..schemas import (
    ExecutionTimePoint,
    Range,
    SuccessRatePeriod,
    SuccessRateTrendResponse,
    TaskTypesResponse,
)
from .deps import READ_RESPONSES, Context, require_ready, require_user

__all__ = ["router"]

router = APIRouter(
    prefix="/statistics",
    tags=["statistics"],
    dependencies=[Depends(require_user), Depends(require_ready)],
    responses=READ_RESPONSES,
)


@router.get("/success-rate-trend", response_model=SuccessRateTrendResponse)
async def success_rate_trend(
    context: Context,
    period: Annotated[SuccessRatePeriod, Query()] = SuccessRatePeriod.LAST_7_DAYS,
) -> SuccessRateTrendResponse:
    """Completed / (Completed + Failed) per day (7 or 30 days) or per week (90 days)."""
    return await context.queries.success_rate_trend(period)


@router.get("/task-types", response_model=TaskTypesResponse)
async def task_types(
    context: Context, range: Annotated[Range, Query()] = Range.WEEK
) -> TaskTypesResponse:
    """Tasks per type created within the range."""
    return await context.queries.task_types(range)


@router.get("/execution-times", response_model=list[ExecutionTimePoint])
async def execution_times(
    context: Context, range: Annotated[Range, Query()] = Range.TODAY
) -> list[ExecutionTimePoint]:
    """Average execution time of completed tasks per hour (Today), day (Week, Month) or
    week (All)."""
    return await context.queries.execution_times(range)
