"""Shared query parameters: text without NUL characters, instants normalised to UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError

__all__ = ["Page", "PageSize", "Text", "utc"]

_NO_NUL = r"^[^\x00]*$"

Text = Annotated[str | None, Query(max_length=200, pattern=_NO_NUL)]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=200, description="Rows per page")]


def utc(value: datetime | None, name: str) -> datetime | None:
    """An aware UTC instant (a naive one is taken as UTC); 422 if it cannot be represented."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", name),
                    "msg": "The instant is outside the representable range.",
                    "input": value.isoformat(),
                }
            ]
        ) from None
