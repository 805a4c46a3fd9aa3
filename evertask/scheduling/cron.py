"""Cron recurrences, evaluated by croniter in the schedule's time zone.

Occurrences are exactly croniter's iteration in the zone, with one documented exception: at a
fall-back, croniter fires a repeated wall-clock time twice; we keep only the first pass,
unless the hour field is ``*`` (the expression fires every hour anyway, so both passes of
the repeated hour run, as in Vixie cron).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadDateError, CroniterError, croniter

from .validation import fail

__all__ = ["CronEvaluator", "normalize_cron"]

_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_REFERENCE = datetime(2001, 1, 1, tzinfo=UTC)
_REPEAT_LIMIT = 64
_FORMAT_HINT = (
    "Use 5 fields 'minute hour day-of-month month day-of-week' (e.g. '*/5 * * * *'), "
    "6 fields with seconds first (e.g. '30 */5 * * * *'), or a macro such as '@daily'."
)


def _has_seconds(expression: str) -> bool:
    return len(expression.split()) == 6


def _parse(expression: str, start: datetime) -> croniter:
    return croniter(expression, start, second_at_beginning=_has_seconds(expression))


def normalize_cron(expression: object) -> str:
    """Validate a cron expression (syntax, field count, can ever match); return it normalised."""
    if not isinstance(expression, str):
        fail(f"use_cron({expression!r}): expected a string. {_FORMAT_HINT}")
    text = " ".join(expression.split())
    where = f"use_cron({expression!r})"
    if text.startswith("@"):
        if text.lower() not in _MACROS:
            fail(f"{where}: unknown macro. Known: {', '.join(sorted(_MACROS))}.")
        text = text.lower()
    elif len(text.split()) not in (5, 6):
        fail(f"{where}: expected 5 or 6 fields, got {len(text.split())}. {_FORMAT_HINT}")
    try:
        _parse(text, _REFERENCE).get_next(datetime)
    except CroniterBadDateError:
        fail(f"{where}: the expression never matches a real date (e.g. 30 February).")
    except (CroniterError, ValueError, KeyError, IndexError, TypeError) as exc:
        fail(f"{where}: invalid cron expression ({exc}). {_FORMAT_HINT}")
    return text


def _is_second_pass(moment: datetime, zone: tzinfo) -> bool:
    local = moment.astimezone(UTC).astimezone(zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


class CronEvaluator:
    """Next occurrence of a cron expression in a zone (thread-safe)."""

    __slots__ = ("_both_passes", "_iterator", "_lock", "_step", "_zone")

    def __init__(self, expression: str, zone: tzinfo) -> None:
        self._zone = zone
        self._iterator = _parse(expression, _REFERENCE.astimezone(zone))
        hours = self._iterator.expanded[1]
        self._both_passes = hours == ["*"]
        self._step = timedelta(seconds=1) if _has_seconds(expression) else timedelta(minutes=1)
        self._lock = threading.Lock()

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after ``after`` (aware UTC), None if there is none."""
        with self._lock:
            self._iterator.set_current(after.astimezone(self._zone), force=True)
            try:
                for _ in range(_REPEAT_LIMIT):
                    found: datetime = self._iterator.get_next(datetime)
                    if self._both_passes or not _is_second_pass(found, self._zone):
                        return found.astimezone(UTC)
            except (CroniterBadDateError, OverflowError, ValueError):
                return None
        return None  # pragma: no cover - a repeated time cannot recur 64 times in a row

    def grid(self) -> tuple[datetime, timedelta] | None:
        """Cron occurrences are never treated as a uniform grid."""
        return None

    def period_hint(self) -> timedelta:
        """The finest cron resolution (search windows grow from here)."""
        return self._step
