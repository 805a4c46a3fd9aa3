"""Hypothesis strategies for schedules: fluent specs, zones, instants near DST transitions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import strategies as st
from scheduling_helpers import ZONES, transitions

from evertask.scheduling import EveryRecurrence, Unit

zones = st.sampled_from(ZONES)
# hours near DST changes (00-03) are over-represented on purpose
hours = st.one_of(st.integers(0, 3), st.integers(0, 23))
times = st.builds(
    time,
    hour=hours,
    minute=st.sampled_from([0, 0, 15, 30, 45, 59]),
    second=st.sampled_from([0, 0, 0, 30]),
)
time_lists = st.lists(times, min_size=0, max_size=4).map(tuple)
weekday_sets = st.lists(st.integers(0, 6), max_size=3).map(tuple)


@st.composite
def fluent_specs(draw: st.DrawFn) -> EveryRecurrence:
    unit = draw(st.sampled_from(list(Unit)))
    if unit is Unit.SECOND:
        return EveryRecurrence(unit, draw(st.integers(1, 200)))
    if unit is Unit.MINUTE:
        second = draw(st.none() | st.integers(0, 59))
        return EveryRecurrence(unit, draw(st.integers(1, 150)), second=second)
    if unit is Unit.HOUR:
        minute = draw(st.none() | st.integers(0, 59))
        second = draw(st.none() | st.integers(0, 59)) if minute is not None else None
        return EveryRecurrence(unit, draw(st.integers(1, 30)), minute=minute, second=second)
    if unit is Unit.DAY:
        interval = draw(st.integers(1, 9))
        weekdays = draw(weekday_sets) if interval == 1 else ()
        return EveryRecurrence(unit, interval, times=draw(time_lists), weekdays=weekdays)
    if unit is Unit.WEEK:
        return EveryRecurrence(
            unit, draw(st.integers(1, 4)), times=draw(time_lists), weekdays=draw(weekday_sets)
        )
    rule = draw(st.sampled_from(["days", "first", "default"]))
    months: tuple[int, ...] = ()
    interval = 1
    if draw(st.booleans()):
        months = tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=4)))
    else:
        interval = draw(st.integers(1, 14))
    return EveryRecurrence(
        unit,
        interval,
        times=draw(time_lists),
        days=tuple(
            draw(st.lists(st.sampled_from([1, 2, 15, 28, 29, 30, 31]), min_size=1, max_size=3))
        )
        if rule == "days"
        else (),
        first_weekday=draw(st.integers(0, 6)) if rule == "first" else None,
        months=months,
    )


@st.composite
def moments(draw: st.DrawFn, zone: str) -> datetime:
    """Random instants, half of them within a few days of one of the zone's transitions."""
    edges = transitions(zone)
    near_edge: bool = draw(st.booleans())
    if edges and near_edge:
        edge = draw(st.sampled_from(edges))
        return edge + timedelta(minutes=draw(st.integers(-3 * 1440, 3 * 1440)))
    base = datetime(2005, 1, 1, tzinfo=UTC)
    return base + timedelta(seconds=draw(st.integers(0, 30 * 365 * 86400)))
