"""Property tests: random schedules, zones and reference times (hypothesis, bounded)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scheduling_helpers import croniter_occurrences, is_real_local_time, reference_occurrences
from scheduling_strategies import fluent_specs, moments, zones

from evertask.scheduling import (
    CronRecurrence,
    EveryRecurrence,
    FirstRun,
    FirstRunKind,
    RecurringSchedule,
)

PROFILE = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def fluent_cases(draw: st.DrawFn) -> tuple[RecurringSchedule, datetime]:
    zone = draw(zones)
    spec = draw(fluent_specs())
    start = None
    if draw(st.integers(0, 4)) == 0:
        start = FirstRun(FirstRunKind.AT, at=draw(moments(zone)))
    schedule = RecurringSchedule(recurrence=spec, start=start, timezone=zone)
    return schedule, draw(moments(zone))


@PROFILE
@given(fluent_cases())
def test_fluent_occurrences_are_increasing_real_and_strictly_after(
    case: tuple[RecurringSchedule, datetime],
) -> None:
    schedule, after = case
    found = schedule.occurrences(after, 12)
    assert len(found) == 12
    previous = after
    for moment in found:
        assert moment.tzinfo is UTC
        assert moment > previous
        assert is_real_local_time(moment, schedule.zone)
        assert schedule.next_occurrence(previous) == moment
        previous = moment


@PROFILE
@given(fluent_cases())
def test_fluent_matches_brute_force_reference(case: tuple[RecurringSchedule, datetime]) -> None:
    schedule, after = case
    spec = schedule.recurrence
    assert isinstance(spec, EveryRecurrence)
    found = schedule.occurrences(after, 8)
    if spec.is_elapsed:
        at = schedule.start.at if schedule.start is not None else None
        grid = [moment for moment in found if moment != at]
        step = timedelta(**{spec.unit.value + "s": spec.interval})
        assert all(b - a == step for a, b in itertools.pairwise(grid))
        if spec.second is not None:
            assert all(moment.second == spec.second for moment in grid)
        return
    expected = reference_occurrences(schedule, after, found[-1])
    assert found == expected


@PROFILE
@given(fluent_cases(), st.integers(0, 5000), st.integers(1, 400))
def test_latest_missed_occurrence_runs_once(
    case: tuple[RecurringSchedule, datetime], minutes_late: int, periods_late: int
) -> None:
    schedule, after = case
    scheduled = schedule.next_occurrence(after)
    assert scheduled is not None
    following = schedule.next_occurrence(scheduled)
    assert following is not None
    now = following + (following - scheduled) * periods_late // 7 + timedelta(minutes=minutes_late)
    result = schedule.next_after_run(scheduled, 1, now)
    nxt = result.next_run
    assert nxt is not None
    assert nxt >= following
    if nxt <= now:  # the single catch-up: an occurrence whose follower is not yet due
        assert schedule.next_occurrence(nxt - timedelta(microseconds=1)) == nxt
        upcoming = schedule.next_occurrence(nxt)
        assert upcoming is not None
        assert upcoming > now
    else:
        assert nxt == following
        assert result.skipped == 0
    if result.skipped < 200:
        assert len(schedule.occurrences(scheduled, result.skipped + 1)) == result.skipped + 1
        assert schedule.occurrences(scheduled, result.skipped + 1)[-1] == nxt


# -- cron ----------------------------------------------------------------------------------------


def _field(draw: st.DrawFn, low: int, high: int, bias: list[int]) -> str:
    kind = draw(st.sampled_from(["*", "value", "list", "range", "step", "range_step"]))
    value = st.one_of(st.sampled_from(bias), st.integers(low, high))
    if kind == "*":
        return "*"
    if kind == "value":
        return str(draw(value))
    if kind == "list":
        return ",".join(str(v) for v in sorted(set(draw(st.lists(value, min_size=2, max_size=4)))))
    a, b = sorted((draw(value), draw(value)))
    if kind == "range":
        return f"{a}-{b}"
    step = draw(st.integers(1, max(1, (high - low) // 2)))
    return f"*/{step}" if kind == "step" else f"{a}-{b}/{step}"


@st.composite
def cron_expressions(draw: st.DrawFn) -> str:
    fields = [
        _field(draw, 0, 59, [0, 30]),
        _field(draw, 0, 23, [0, 1, 2, 3]),
        draw(st.sampled_from(["*", "*", "1", "15", "1,15", "28-31", "L"])),
        draw(st.sampled_from(["*", "*", "3", "10,11", "3-11", "*/2"])),
        draw(st.sampled_from(["*", "*", "*", "0", "1-5", "6"])),
    ]
    if draw(st.integers(0, 3)) == 0:
        fields.insert(0, _field(draw, 0, 59, [0, 15]))
    return " ".join(fields)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.data())
def test_cron_equals_croniter_iteration_in_zone(data: st.DataObject) -> None:
    expression = data.draw(cron_expressions())
    zone = data.draw(zones)
    after = data.draw(moments(zone))
    recurrence = CronRecurrence(expression)
    schedule = RecurringSchedule(recurrence=recurrence, timezone=zone)
    found = schedule.occurrences(after, 10)
    assume(len(found) == 10)
    assert found == croniter_occurrences(recurrence.expression, schedule.zone, after, 10)
    previous = after
    for moment in found:
        assert moment > previous
        assert is_real_local_time(moment, schedule.zone)
        previous = moment
