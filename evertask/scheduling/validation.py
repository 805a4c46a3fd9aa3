"""Argument checks shared by the builder and by ``from_json``: one clear message per mistake."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import NoReturn

from evertask_abstractions import ScheduleError

__all__ = [
    "WEEKDAY_NAMES",
    "fail",
    "flatten",
    "require_aware",
    "require_day_of_month",
    "require_delay",
    "require_interval",
    "require_max_runs",
    "require_minute",
    "require_month",
    "require_second",
    "require_time",
    "require_weekday",
]

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def fail(message: str) -> NoReturn:
    """Raise :class:`ScheduleError` with ``message``."""
    raise ScheduleError(message)


def _whole(value: object, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(f"{where}: {what} must be a whole number (int), got {value!r}.")
    return int(value)


def require_interval(value: object, where: str) -> int:
    """A positive whole interval, e.g. ``every(5)``."""
    n = _whole(value, where, "the interval")
    if n < 1:
        fail(
            f"{where}: the interval must be 1 or more, got {n}. "
            "Use e.g. every(5).minutes(), or every_minute() for an interval of 1."
        )
    return n


def require_second(value: object, where: str) -> int:
    """A second of the minute, 0-59."""
    s = _whole(value, where, "the second")
    if not 0 <= s <= 59:
        fail(f"{where}: the second of the minute must be between 0 and 59, got {s}.")
    return s


def require_minute(value: object, where: str) -> int:
    """A minute of the hour, 0-59."""
    m = _whole(value, where, "the minute")
    if not 0 <= m <= 59:
        fail(f"{where}: the minute of the hour must be between 0 and 59, got {m}.")
    return m


def require_day_of_month(value: object, where: str) -> int:
    """A day of the month, 1-31 (clamped later to the month's last day)."""
    d = _whole(value, where, "the day of the month")
    if not 1 <= d <= 31:
        fail(
            f"{where}: the day of the month must be between 1 and 31, got {d} "
            "(a day past the end of a short month runs on that month's last day)."
        )
    return d


def require_month(value: object, where: str) -> int:
    """A month, 1 (January) - 12 (December)."""
    m = _whole(value, where, "the month")
    if not 1 <= m <= 12:
        fail(f"{where}: months must be between 1 (January) and 12 (December), got {m}.")
    return m


def require_weekday(value: object, where: str) -> int:
    """A Python weekday, 0 (``calendar.MONDAY``) - 6 (``calendar.SUNDAY``)."""
    d = _whole(value, where, "the weekday")
    if not 0 <= d <= 6:
        fail(
            f"{where}: weekdays must be between 0 (calendar.MONDAY) and 6 (calendar.SUNDAY), "
            f"got {d}. Python numbers weekdays from Monday = 0, not Sunday = 0."
        )
    return d


def require_time(value: object, where: str) -> time:
    """A naive ``datetime.time`` (the zone comes from ``in_timezone``), normalised to fold 0."""
    if not isinstance(value, time):
        fail(f"{where}: expected a datetime.time such as time(9, 30), got {value!r}.")
    if value.tzinfo is not None:
        fail(
            f"{where}: {value!r} carries a tzinfo; pass a naive time such as time(9, 30) and set "
            "the zone with in_timezone('Europe/Rome') (the default is UTC)."
        )
    return value.replace(fold=0)


def require_aware(value: object, where: str) -> datetime:
    """An aware datetime, converted to UTC."""
    if not isinstance(value, datetime):
        fail(f"{where}: expected an aware datetime, got {value!r}.")
    if value.tzinfo is None or value.utcoffset() is None:
        fail(
            f"{where}: {value.isoformat()} is a naive datetime; pass an aware one, e.g. "
            "datetime(2027, 1, 1, tzinfo=UTC) or datetime(..., tzinfo=ZoneInfo('Europe/Rome'))."
        )
    return value.astimezone(UTC)


def require_delay(value: object, where: str) -> timedelta:
    """A non-negative ``timedelta``."""
    if not isinstance(value, timedelta):
        fail(f"{where}: expected a datetime.timedelta such as timedelta(minutes=5), got {value!r}.")
    if value < timedelta(0):
        fail(f"{where}: the delay must not be negative, got {value}.")
    return value


def require_max_runs(value: object, where: str) -> int:
    """A run count of 1 or more."""
    n = _whole(value, where, "the run count")
    if n < 1:
        fail(
            f"{where}: the run count must be 1 or more, got {n}; "
            "leave max_runs out for a series without a run limit."
        )
    return n


def flatten(values: tuple[object, ...], where: str, example: str) -> list[object]:
    """``f(1, 2)`` or ``f([1, 2])``: varargs, or a single iterable, as one list."""
    if len(values) == 1 and isinstance(values[0], Iterable) and not isinstance(values[0], str):
        items = list(values[0])
    else:
        items = list(values)
    if not items:
        fail(f"{where}: give at least one value, e.g. {example}.")
    return items
