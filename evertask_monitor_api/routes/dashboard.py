"""``/dashboard``: overview figures and the recent-activity feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..schemas import OverviewResponse, Range, RecentActivityDto
from .deps import READ_RESPONSES, Context, require_ready, require_user

__all__ = ["router"]

router = APIRouter(
    prefix="/dashboard",
    tags=["dashboard"],
    dependencies=[Depends(require_user), Depends(require_ready)],
    responses=READ_RESPONSES,
)


@router.get("/overview", response_model=OverviewResponse)
async def overview(
    context: Context, range: Annotated[Range, Query()] = Range.TODAY
) -> OverviewResponse:
    """KPIs and status distribution for a range, tasks per hour over the last 24 hours,
    and every queue's pending, running and finished counts."""
    return await context.queries.overview(range, context.queue_names())


@router.get("/recent-activity", response_model=list[RecentActivityDto])
async def recent_activity(
    context: Context, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[RecentActivityDto]:
    """The newest tasks (by creation) with where they are now."""
    return await context.queries.recent_activity(limit)
