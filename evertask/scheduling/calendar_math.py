"""Wall-clock and calendar arithmetic: zones, local <-> instant with DST rules, months, weeks."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .validation import fail

__all__ = [
    "TRANSITION_RADIUS",
    "ceil_div",
    "ceil_div_delta",
    "days_in_month",
    "first_weekday_of_month",
    "instants_of",
    "is_fixed_zone",
    "load_zone",
    "month_index",
    "month_of_index",
    "near_transition",
    "to_instant",
    "wall",
    "week_start",
]

TRANSITION_RADIUS = timedelta(hours=27)
"""Larger than any UTC-offset change in tzdata (Pacific/Apia skipped a whole day in 2011)."""

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


@lru_cache(maxsize=256)
def load_zone(name: str) -> tzinfo:
    """The zone for an IANA name (``"UTC"`` is the fast built-in UTC)."""
    if not isinstance(name, str) or not name.strip():
        fail(f"in_timezone({name!r}): expected an IANA time zone name such as 'Europe/Rome'.")
    if name in _UTC_NAMES or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        fail(
            f"in_timezone({name!r}): unknown time zone ({exc.__class__.__name__}). Use an IANA "
            "name such as 'Europe/Rome', 'America/New_York' or 'UTC' (on Windows install the "
            "'tzdata' package)."
        )


def is_fixed_zone(zone: tzinfo) -> bool:
    """True for zones without DST or other offset changes in the range we care about."""
    if zone is UTC:
        return True
    key = getattr(zone, "key", "")
    return isinstance(key, str) and key.startswith("Etc/")


def wall(instant: datetime, zone: tzinfo) -> datetime:
    """The naive local wall-clock reading of an aware instant in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def to_instant(local: datetime, zone: tzinfo, fold: int = 0) -> datetime:
    """The UTC instant of a naive wall-clock time.

    ``fold=0`` gives the DST rules of fluent schedules: a time repeated by a fall-back maps to
    its first occurrence; a time skipped by a spring-forward maps to the instant shifted by the
    gap (02:30 in a 02:00 -> 03:00 gap becomes 03:30).
    """
    if zone is UTC:
        return local.replace(tzinfo=UTC)
    return local.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def instants_of(local: datetime, zone: tzinfo, both_passes: bool) -> tuple[datetime, ...]:
    """The instants at which a wall-clock time fires: one, or two in a fall-back fold."""
    first = to_instant(local, zone, 0)
    if both_passes and zone is not UTC:
        second = to_instant(local, zone, 1)
        if second > first:  # a fold (repeated time); in a gap fold=1 maps earlier
            return first, second
    return (first,)


def near_transition(instant: datetime | None, zone: tzinfo) -> bool:
    """Whether the zone's UTC offset changes within :data:`TRANSITION_RADIUS` of ``instant``."""
    if instant is None:
        return False
    try:
        before = (instant - TRANSITION_RADIUS).astimezone(zone).utcoffset()
        after = (instant + TRANSITION_RADIUS).astimezone(zone).utcoffset()
    except OverflowError:
        return True
    return before != after


def ceil_div(a: int, b: int) -> int:
    """Ceiling of ``a / b`` for ``b > 0``."""
    return -((-a) // b)


def ceil_div_delta(a: timedelta, b: timedelta) -> int:
    """Ceiling of ``a / b`` for durations (``b > 0``)."""
    return -((-a) // b)


def month_index(year: int, month: int) -> int:
    """Months since year 0 (a linear month counter)."""
    return year * 12 + month - 1


def month_of_index(index: int) -> tuple[int, int]:
    """Inverse of :func:`month_index`: ``(year, month)``."""
    year, m0 = divmod(index, 12)
    return year, m0 + 1


def days_in_month(year: int, month: int) -> int:
    """28-31."""
    return calendar.monthrange(year, month)[1]


def first_weekday_of_month(year: int, month: int, weekday: int) -> date:
    """The first ``weekday`` (Monday = 0) of the month."""
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7)


def week_start(day: date) -> date:
    """The Monday of ``day``'s week (ISO weeks)."""
    return day - timedelta(days=day.weekday())
