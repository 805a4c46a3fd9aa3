"""Stable, versioned JSON for schedules (the ``recurring_task`` column).

Format (version 1; keys with empty values are omitted inside ``recurrence``)::

    {"v": 1,
     "start": null | {"kind": "now"} | {"kind": "delay", "delay_us": 300000000}
                   | {"kind": "at", "at": "2026-05-01T09:00:00+00:00"},
     "recurrence": null | {"kind": "cron", "expression": "*/5 * * * *"}
                   | {"kind": "every", "unit": "day", "interval": 1, "times": ["09:00:00"],
                      "second": 30, "minute": 15, "weekdays": [0, 4], "days": [1, 31],
                      "first_weekday": 0, "months": [1, 7]},
     "timezone": "Europe/Rome", "run_until": "2027-01-01T00:00:00+00:00", "max_runs": 10}

Reading never trusts the input: anything malformed raises ``ScheduleError`` (the engine then
marks the row Failed instead of re-running it forever).
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Any, TypeVar

from evertask_abstractions import ScheduleError

from .model import CronRecurrence, EveryRecurrence, FirstRun, FirstRunKind, Recurrence, Unit
from .protocols import ScheduleDefinition, ScheduleFactory
from .validation import fail

__all__ = ["FORMAT_VERSION", "schedule_from_json", "schedule_to_json"]

FORMAT_VERSION = 1

_T = TypeVar("_T")

_TOP_KEYS = frozenset({"v", "start", "recurrence", "timezone", "run_until", "max_runs"})
_EVERY_KEYS = frozenset(
    {
        "kind",
        "unit",
        "interval",
        "second",
        "minute",
        "times",
        "weekdays",
        "days",
        "first_weekday",
        "months",
    }
)


# -- writing --------------------------------------------------------------------------------


def _start_to_dict(start: FirstRun | None) -> dict[str, Any] | None:
    if start is None:
        return None
    if start.kind is FirstRunKind.DELAY:
        assert start.delay is not None
        return {"kind": "delay", "delay_us": start.delay // timedelta(microseconds=1)}
    if start.kind is FirstRunKind.AT:
        assert start.at is not None
        return {"kind": "at", "at": start.at.isoformat()}
    return {"kind": "now"}


def _recurrence_to_dict(recurrence: Recurrence | None) -> dict[str, Any] | None:
    if recurrence is None:
        return None
    if isinstance(recurrence, CronRecurrence):
        return {"kind": "cron", "expression": recurrence.expression}
    data: dict[str, Any] = {
        "kind": "every",
        "unit": recurrence.unit.value,
        "interval": recurrence.interval,
    }
    optional: dict[str, Any] = {
        "second": recurrence.second,
        "minute": recurrence.minute,
        "times": [t.isoformat() for t in recurrence.times],
        "weekdays": list(recurrence.weekdays),
        "days": list(recurrence.days),
        "first_weekday": recurrence.first_weekday,
        "months": list(recurrence.months),
    }
    data.update({k: v for k, v in optional.items() if v is not None and v != []})
    return data


def schedule_to_json(schedule: ScheduleDefinition) -> str:
    """Compact JSON with a fixed key order."""
    data = {
        "v": FORMAT_VERSION,
        "start": _start_to_dict(schedule.start),
        "recurrence": _recurrence_to_dict(schedule.recurrence),
        "timezone": schedule.timezone,
        "run_until": schedule.run_until.isoformat() if schedule.run_until else None,
        "max_runs": schedule.max_runs,
    }
    return json.dumps(data, separators=(",", ":"))


# -- reading --------------------------------------------------------------------------------


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(f"{what}: expected a JSON object, got {type(value).__name__}.")
    return value


def _keys(data: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        fail(f"{what}: unknown keys {unknown}.")


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(f"{what}: expected an integer, got {value!r}.")
    return value


def _opt_int(value: object, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        fail(f"{what}: expected a string, got {value!r}.")
    return value


def _ints(value: object, what: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        fail(f"{what}: expected a list of integers, got {value!r}.")
    return tuple(_int(item, what) for item in value)


def _instant(value: object, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_str(value, what))
    except ValueError:
        fail(f"{what}: {value!r} is not an ISO 8601 datetime.")
    if moment.tzinfo is None:
        fail(f"{what}: {value!r} has no UTC offset.")
    return moment


def _time(value: object, what: str) -> time:
    try:
        return time.fromisoformat(_str(value, what))
    except ValueError:
        fail(f"{what}: {value!r} is not an ISO 8601 time.")


def _start_from(value: object) -> FirstRun | None:
    if value is None:
        return None
    data = _object(value, "start")
    kind = _str(data.get("kind"), "start.kind")
    if kind == "now":
        _keys(data, frozenset({"kind"}), "start")
        return FirstRun(FirstRunKind.NOW)
    if kind == "delay":
        _keys(data, frozenset({"kind", "delay_us"}), "start")
        micros = _int(data.get("delay_us"), "start.delay_us")
        return FirstRun(FirstRunKind.DELAY, delay=timedelta(microseconds=micros))
    if kind == "at":
        _keys(data, frozenset({"kind", "at"}), "start")
        return FirstRun(FirstRunKind.AT, at=_instant(data.get("at"), "start.at"))
    return fail(f"start.kind: unknown first-run kind {kind!r} (expected 'now', 'delay' or 'at').")


def _recurrence_from(value: object) -> Recurrence | None:
    if value is None:
        return None
    data = _object(value, "recurrence")
    kind = _str(data.get("kind"), "recurrence.kind")
    if kind == "cron":
        _keys(data, frozenset({"kind", "expression"}), "recurrence")
        return CronRecurrence(_str(data.get("expression"), "recurrence.expression"))
    if kind != "every":
        fail(f"recurrence.kind: unknown kind {kind!r} (expected 'every' or 'cron').")
    _keys(data, _EVERY_KEYS, "recurrence")
    unit_name = _str(data.get("unit"), "recurrence.unit")
    try:
        unit = Unit(unit_name)
    except ValueError:
        fail(f"recurrence.unit: unknown unit {unit_name!r}.")
    times = data.get("times") or []
    if not isinstance(times, list):
        fail(f"recurrence.times: expected a list of times, got {times!r}.")
    return EveryRecurrence(
        unit=unit,
        interval=_int(data.get("interval", 1), "recurrence.interval"),
        second=_opt_int(data.get("second"), "recurrence.second"),
        minute=_opt_int(data.get("minute"), "recurrence.minute"),
        times=tuple(_time(t, "recurrence.times") for t in times),
        weekdays=_ints(data.get("weekdays"), "recurrence.weekdays"),
        days=_ints(data.get("days"), "recurrence.days"),
        first_weekday=_opt_int(data.get("first_weekday"), "recurrence.first_weekday"),
        months=_ints(data.get("months"), "recurrence.months"),
    )


def _parse(text: str | bytes, build: ScheduleFactory[_T]) -> _T:
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
        fail(f"not valid JSON ({exc}).")
    data = _object(raw, "schedule")
    version = data.get("v")
    if version != FORMAT_VERSION:
        fail(f"unsupported format version {version!r} (this version reads v{FORMAT_VERSION}).")
    _keys(data, _TOP_KEYS, "schedule")
    run_until = data.get("run_until")
    return build(
        recurrence=_recurrence_from(data.get("recurrence")),
        start=_start_from(data.get("start")),
        timezone=_str(data.get("timezone", "UTC"), "timezone"),
        run_until=None if run_until is None else _instant(run_until, "run_until"),
        max_runs=_opt_int(data.get("max_runs"), "max_runs"),
    )


def schedule_from_json(text: str | bytes, build: ScheduleFactory[_T]) -> _T:
    """Parse :func:`schedule_to_json` output and pass the fields to ``build``.

    Anything invalid, including what ``build`` itself rejects (e.g. an empty schedule or an
    unknown time zone), raises ``ScheduleError``.
    """
    try:
        return _parse(text, build)
    except ScheduleError as exc:
        raise ScheduleError(f"Corrupt recurring schedule JSON: {exc}") from exc
    except (TypeError, ValueError, KeyError, OverflowError, RecursionError) as exc:
        raise ScheduleError(f"Corrupt recurring schedule JSON: {exc}") from exc
