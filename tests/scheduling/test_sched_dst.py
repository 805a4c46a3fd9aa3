"""DST in Europe/Rome and America/New_York: daily, weekly, hourly, minute and cron schedules.

Europe/Rome 2026: spring forward Sun 29 March 02:00 -> 03:00; fall back Sun 25 October
03:00 -> 02:00. America/New_York 2026: Sun 8 March 02:00 -> 03:00; Sun 1 November
02:00 -> 01:00.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from scheduling_helpers import NEW_YORK, ROME, croniter_occurrences, local, utc

from evertask.scheduling import RecurringSchedule, build_schedule


def in_zone(zone: str, configure: Callable[[Any], Any]) -> RecurringSchedule:
    return build_schedule(lambda b: configure(b).in_timezone(zone))


def wall_times(found: list[datetime], zone: ZoneInfo) -> list[str]:
    return [m.astimezone(zone).strftime("%m-%d %H:%M%z") for m in found]


# -- daily ---------------------------------------------------------------------------------------


def test_rome_daily_time_skipped_by_spring_forward_fires_once_shifted() -> None:
    schedule = in_zone("Europe/Rome", lambda b: b.schedule().every_day().at_time(time(2, 30)))
    found = schedule.occurrences(utc(2026, 3, 27, 12), 3)
    assert wall_times(found, ROME) == ["03-28 02:30+0100", "03-29 03:30+0200", "03-30 02:30+0200"]


def test_rome_daily_time_repeated_by_fall_back_fires_once_first_pass() -> None:
    schedule = in_zone("Europe/Rome", lambda b: b.schedule().every_day().at_time(time(2, 30)))
    found = schedule.occurrences(utc(2026, 10, 24, 12), 3)
    assert found == [
        local(ROME, 2026, 10, 25, 2, 30, fold=0),  # 00:30 UTC, the first 02:30
        local(ROME, 2026, 10, 26, 2, 30),
        local(ROME, 2026, 10, 27, 2, 30),
    ]
    # from inside the repeated hour's second pass, the next one is tomorrow
    second_pass = local(ROME, 2026, 10, 25, 2, 10, fold=1)
    assert schedule.next_occurrence(second_pass) == local(ROME, 2026, 10, 26, 2, 30)


def test_rome_several_times_around_the_gap_keep_time_order() -> None:
    schedule = in_zone(
        "Europe/Rome",
        lambda b: b.schedule().every_day().at_times(time(1, 30), time(2, 30), time(3, 0), time(4)),
    )
    found = schedule.occurrences(utc(2026, 3, 28, 12), 4)
    assert wall_times(found, ROME) == [
        "03-29 01:30+0100",
        "03-29 03:00+0200",
        "03-29 03:30+0200",  # 02:30 does not exist: shifted by the gap, after 03:00
        "03-29 04:00+0200",
    ]
    # asked from between 03:00 and the shifted 02:30, the shifted 02:30 is still ahead
    assert schedule.next_occurrence(local(ROME, 2026, 3, 29, 3, 10)) == local(
        ROME, 2026, 3, 29, 3, 30
    )


def test_new_york_daily_spring_and_fall() -> None:
    schedule = in_zone("America/New_York", lambda b: b.schedule().every_day().at_time(time(2, 30)))
    spring = schedule.occurrences(utc(2026, 3, 7, 12), 2)
    assert wall_times(spring, NEW_YORK) == ["03-08 03:30-0400", "03-09 02:30-0400"]
    repeated = in_zone("America/New_York", lambda b: b.schedule().every_day().at_time(time(1, 30)))
    fall = repeated.occurrences(utc(2026, 10, 31, 12), 2)
    assert fall == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]  # EDT 01:30 once, then EST


def test_daily_wall_time_keeps_local_time_across_dst() -> None:
    schedule = in_zone("Europe/Rome", lambda b: b.schedule().every_day().at_time(time(9)))
    found = schedule.occurrences(utc(2026, 3, 27), 4)
    assert {m.astimezone(ROME).hour for m in found} == {9}
    assert [m.hour for m in found] == [8, 8, 7, 7]  # UTC hour changes with the offset


# -- weekly --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "spring", "fall", "week_after"),
    [
        # Rome: 02:30 skipped (-> 03:30 CEST), then repeated (first pass, CEST)
        ("Europe/Rome", utc(2026, 3, 29, 1, 30), utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)),
        # New York: 02:30 skipped (-> 03:30 EDT); at fall back 01:00-02:00 repeats, 02:30 is EST
        (
            "America/New_York",
            utc(2026, 3, 8, 7, 30),
            utc(2026, 11, 1, 7, 30),
            utc(2026, 11, 8, 7, 30),
        ),
    ],
)
def test_weekly_sunday_0230_across_both_transitions(
    zone: str, spring: datetime, fall: datetime, week_after: datetime
) -> None:
    schedule = in_zone(
        zone, lambda b: b.schedule().every_week().on_day(calendar.SUNDAY).at_time(time(2, 30))
    )
    assert schedule.next_occurrence(spring - timedelta(days=3)) == spring
    assert schedule.next_occurrence(fall - timedelta(days=3)) == fall
    assert schedule.next_occurrence(fall) == week_after


# -- hourly and minute cadences -------------------------------------------------------------------


def test_every_hour_runs_through_both_passes_of_the_repeated_hour() -> None:
    schedule = in_zone("Europe/Rome", lambda b: b.schedule().every_hour().at_minute(15))
    day = schedule.occurrences(local(ROME, 2026, 10, 25, 0, 0), 30)
    on_the_day = [m for m in day if m < local(ROME, 2026, 10, 26, 0, 0)]
    assert len(on_the_day) == 25  # a 25-hour day
    spring = schedule.occurrences(local(ROME, 2026, 3, 29, 0, 0), 30)
    assert len([m for m in spring if m < local(ROME, 2026, 3, 30, 0, 0)]) == 23
    assert {b - a for a, b in itertools.pairwise(day)} == {timedelta(hours=1)}


def test_every_2_hours_fires_a_repeated_hour_once() -> None:
    schedule = in_zone("Europe/Rome", lambda b: b.schedule().every(2).hours())
    found = schedule.occurrences(local(ROME, 2026, 10, 24, 23, 0), 4)
    assert wall_times(found, ROME) == [
        "10-25 00:00+0200",
        "10-25 02:00+0200",
        "10-25 04:00+0100",
        "10-25 06:00+0100",
    ]
    spring = schedule.occurrences(local(ROME, 2026, 3, 28, 23, 0), 3)
    assert wall_times(spring, ROME) == ["03-29 00:00+0100", "03-29 03:00+0200", "03-29 04:00+0200"]


@pytest.mark.parametrize("zone", ["Europe/Rome", "America/New_York"])
def test_minute_cadences_keep_exact_spacing_across_dst(zone: str) -> None:
    schedule = in_zone(zone, lambda b: b.schedule().every(15).minutes())
    for start in (
        utc(2026, 3, 8, 5),
        utc(2026, 3, 29, 0),
        utc(2026, 10, 25, 0),
        utc(2026, 11, 1, 5),
    ):
        found = schedule.occurrences(start, 20)
        assert {b - a for a, b in itertools.pairwise(found)} == {timedelta(minutes=15)}


# -- cron ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Europe/Rome", utc(2026, 3, 28)),
        ("Europe/Rome", utc(2026, 10, 24)),
        ("America/New_York", utc(2026, 3, 7)),
        ("America/New_York", utc(2026, 10, 31)),
    ],
)
@pytest.mark.parametrize(
    "expression",
    ["30 2 * * *", "30 1 * * *", "15 * * * *", "*/20 * * * *", "0 0 * * 0", "*/30 1-3 * * *"],
)
def test_cron_equals_croniter_in_the_zone(zone: str, start: datetime, expression: str) -> None:
    schedule = in_zone(zone, lambda b: b.schedule().use_cron(expression))
    found = schedule.occurrences(start, 30)
    assert found == croniter_occurrences(expression, ZoneInfo(zone), start, 30)
    assert all(b > a for a, b in itertools.pairwise(found))


def test_cron_fixed_time_in_spring_gap_fires_once_at_the_gap_end() -> None:
    schedule = in_zone("Europe/Rome", lambda b: b.schedule().use_cron("30 2 * * *"))
    found = schedule.occurrences(utc(2026, 3, 28, 12), 2)
    assert wall_times(found, ROME) == ["03-29 03:00+0200", "03-30 02:30+0200"]  # croniter's rule


def test_cron_fixed_time_repeated_by_fall_back_fires_once() -> None:
    schedule = in_zone("Europe/Rome", lambda b: b.schedule().use_cron("30 2 * * *"))
    found = schedule.occurrences(utc(2026, 10, 24, 12), 2)
    assert found == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_cron_with_hour_wildcard_runs_both_passes() -> None:
    schedule = in_zone("America/New_York", lambda b: b.schedule().use_cron("0 * * * *"))
    found = schedule.occurrences(utc(2026, 11, 1, 4, 30), 3)
    assert found == [utc(2026, 11, 1, 5), utc(2026, 11, 1, 6), utc(2026, 11, 1, 7)]
    assert wall_times(found, NEW_YORK) == [
        "11-01 01:00-0400",
        "11-01 01:00-0500",
        "11-01 02:00-0500",
    ]


def test_cron_is_evaluated_in_the_zone() -> None:
    schedule = in_zone("Europe/Rome", lambda b: b.schedule().use_cron("0 9 * * *"))
    assert schedule.next_occurrence(utc(2026, 7, 1)) == utc(2026, 7, 1, 7)
    assert schedule.next_occurrence(utc(2026, 12, 1)) == utc(2026, 12, 1, 8)
