"""Test helpers: a brute-force reference for fluent schedules, croniter's own iteration, zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

from croniter import croniter

from evertask.scheduling import EveryRecurrence, RecurringSchedule, Unit

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")

ZONES = (
    "UTC",
    "Europe/Rome",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kolkata",  # half-hour offset, no DST
    "Asia/Kathmandu",  # +05:45
    "America/Sao_Paulo",
    "Pacific/Apia",  # skipped a whole day in 2011
    "America/Santiago",  # DST transitions at midnight
    "Etc/GMT+5",
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    """``datetime(..., tzinfo=UTC)``."""
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def local(
    zone: tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    """A wall-clock time in ``zone`` as an aware UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=zone, fold=fold).astimezone(UTC)


def zone_of(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


@cache
def transitions(name: str, first_year: int = 2005, last_year: int = 2035) -> tuple[datetime, ...]:
    """UTC instants (to the hour) where the zone's offset changes."""
    zone = zone_of(name)
    found: list[datetime] = []
    day = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year, 1, 1, tzinfo=UTC)
    previous = day.astimezone(zone).utcoffset()
    while day < end:
        following = day + timedelta(days=1)
        offset = following.astimezone(zone).utcoffset()
        if offset != previous:
            moment = day
            while moment.astimezone(zone).utcoffset() == previous:
                moment += timedelta(minutes=30)
            found.append(moment)
            previous = offset
        day = following
    return tuple(found)


# -- brute-force reference for fluent wall-clock schedules -----------------------------------


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _last_day(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _date_matches(spec: EveryRecurrence, anchor: datetime, day: date) -> bool:
    n = spec.interval
    if spec.unit is Unit.DAY:
        if (day - anchor.date()).days % n:
            return False
        return not spec.weekdays or day.weekday() in spec.weekdays
    if spec.unit is Unit.WEEK:
        anchor_monday = anchor.date() - timedelta(days=anchor.weekday())
        monday = day - timedelta(days=day.weekday())
        if ((monday - anchor_monday).days // 7) % n:
            return False
        return day.weekday() in (spec.weekdays or (anchor.weekday(),))
    assert spec.unit is Unit.MONTH
    if spec.months:
        if day.month not in spec.months:
            return False
    elif (_month_index(day) - _month_index(anchor.date())) % n:
        return False
    if spec.first_weekday is not None:
        return day.day <= 7 and day.weekday() == spec.first_weekday
    last = _last_day(day.year, day.month)
    return day.day in {min(d, last) for d in (spec.days or (anchor.day,))}


def reference_occurrences(
    schedule: RecurringSchedule, after: datetime, until: datetime
) -> list[datetime]:
    """Every occurrence of a fluent wall-clock recurrence in ``(after, until]``, brute force.

    Enumerates candidate wall-clock times over a wide window, maps each with the documented
    DST rules (fold=0; both passes for an hourly cadence), sorts and de-duplicates.
    """
    spec = schedule.recurrence
    assert isinstance(spec, EveryRecurrence)
    assert not spec.is_elapsed
    zone = schedule.zone
    anchor = schedule.anchor.astimezone(zone).replace(tzinfo=None)
    lo = after.astimezone(zone).replace(tzinfo=None) - timedelta(days=3)
    hi = until.astimezone(zone).replace(tzinfo=None) + timedelta(days=3)
    candidates: list[datetime] = []
    if spec.unit is Unit.HOUR:
        floor = anchor.replace(minute=0, second=0, microsecond=0)
        if spec.minute is None and spec.second is None:
            offset = anchor - floor
        else:
            minute = spec.minute if spec.minute is not None else anchor.minute
            offset = timedelta(minutes=minute, seconds=spec.second or 0)
        hour = lo.replace(minute=0, second=0, microsecond=0)
        while hour <= hi:
            if int((hour - floor).total_seconds() // 3600) % spec.interval == 0:
                candidates.append(hour + offset)
            hour += timedelta(hours=1)
    else:
        times = spec.times or (anchor.time(),)
        day = lo.date()
        while day <= hi.date():
            if _date_matches(spec, anchor, day):
                candidates.extend(datetime.combine(day, t) for t in times)
            day += timedelta(days=1)
    both = spec.unit is Unit.HOUR and spec.interval == 1
    instants: set[datetime] = set()
    for wall_time in candidates:
        first = wall_time.replace(tzinfo=zone, fold=0).astimezone(UTC)
        instants.add(first)
        second = wall_time.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if both and second > first:
            instants.add(second)
    at = schedule.start.at if schedule.start is not None else None
    if at is not None:
        instants = {i for i in instants if i > at} | {at}
    return sorted(i for i in instants if after < i <= until)


# -- croniter's own iteration -----------------------------------------------------------------


def croniter_occurrences(
    expression: str, zone: tzinfo, after: datetime, count: int
) -> list[datetime]:
    """croniter iterated from ``after`` in ``zone``, minus second passes of repeated times when
    the hour field is not ``*`` (the one documented difference)."""
    six = len(expression.split()) == 6
    iterator = croniter(expression, after.astimezone(zone), second_at_beginning=six)
    keep_repeats = iterator.expanded[1] == ["*"]
    result: list[datetime] = []
    while len(result) < count:
        found: datetime = iterator.get_next(datetime)
        normal = found.astimezone(UTC).astimezone(zone)
        second_pass = normal.fold == 1 and normal.replace(fold=0).utcoffset() != normal.utcoffset()
        if second_pass and not keep_repeats:
            continue
        result.append(found.astimezone(UTC))
    return result


def is_real_local_time(moment: datetime, zone: tzinfo) -> bool:
    """The instant's wall-clock reading exists (is not inside a spring-forward gap)."""
    reading = moment.astimezone(zone)
    naive = reading.replace(tzinfo=None)
    return naive.replace(tzinfo=zone, fold=reading.fold).astimezone(UTC) == moment
