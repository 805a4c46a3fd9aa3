"""Semantics: next matching wall time, grids and anchors, month ends, bounds, first runs."""

from __future__ import annotations

import calendar
import itertools
import time as clock
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from scheduling_helpers import local, utc

from evertask.scheduling import build_schedule

NOW = utc(2026, 3, 10, 12, 30)  # a Tuesday
KOLKATA = ZoneInfo("Asia/Kolkata")
ROME = ZoneInfo("Europe/Rome")

# -- "the next matching wall-clock time" (not EverTask's "add the interval, then snap") ---------


def test_every_day_at_13_dispatched_at_12_30_fires_today() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_day().at_time(time(13)))
    assert schedule.first_run(NOW) == utc(2026, 3, 10, 13)


def test_every_hour_at_minute_45_dispatched_at_10_30_fires_10_45() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_hour().at_minute(45))
    assert schedule.first_run(utc(2026, 3, 10, 10, 30)) == utc(2026, 3, 10, 10, 45)


def test_every_minute_fires_on_the_minute_not_at_the_dispatch_second() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_minute())
    assert schedule.first_run(utc(2026, 3, 10, 10, 0, 25)) == utc(2026, 3, 10, 10, 1)


def test_at_times_fires_at_every_listed_time_every_day() -> None:
    schedule = build_schedule(
        lambda b: b.schedule().every_day().at_times(time(9), time(14), time(20, 30))
    )
    assert schedule.occurrences(NOW, 7) == [
        utc(2026, 3, 10, 14),
        utc(2026, 3, 10, 20, 30),
        utc(2026, 3, 11, 9),
        utc(2026, 3, 11, 14),
        utc(2026, 3, 11, 20, 30),
        utc(2026, 3, 12, 9),
        utc(2026, 3, 12, 14),
    ]


def test_at_times_on_listed_weekdays() -> None:
    schedule = build_schedule(
        lambda b: (
            b.schedule().on_days(calendar.TUESDAY, calendar.THURSDAY).at_times(time(9), time(18))
        )
    )
    assert schedule.occurrences(NOW, 4) == [
        utc(2026, 3, 10, 18),
        utc(2026, 3, 12, 9),
        utc(2026, 3, 12, 18),
        utc(2026, 3, 17, 9),
    ]


def test_first_run_of_a_plain_schedule_is_at_or_after_now() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_day().at_time(time(12, 30)))
    assert schedule.first_run(NOW) == NOW  # an occurrence exactly at dispatch time is kept
    assert schedule.next_occurrence(NOW) == utc(2026, 3, 11, 12, 30)  # strictly after


# -- grids and anchors -------------------------------------------------------------------------


def test_every_5_minutes_is_clock_aligned_and_stays_on_its_grid() -> None:
    schedule = build_schedule(lambda b: b.schedule().every(5).minutes())
    first = schedule.first_run(utc(2026, 3, 10, 12, 31, 7))
    assert first == utc(2026, 3, 10, 12, 35)
    # a run that finished late (12:37:50) still continues on the grid: no drift
    assert schedule.next_after_run(first, 1, utc(2026, 3, 10, 12, 37, 50)).next_run == utc(
        2026, 3, 10, 12, 40
    )


def test_minute_grids_follow_local_marks_in_half_hour_zones() -> None:
    schedule = build_schedule(
        lambda b: b.schedule().every(15).minutes().in_timezone("Asia/Kolkata")
    )
    found = schedule.occurrences(utc(2026, 3, 10, 12, 31), 3)
    assert [m.astimezone(KOLKATA).minute for m in found] == [15, 30, 45]


def test_every_7_minutes_keeps_exact_spacing() -> None:
    schedule = build_schedule(lambda b: b.schedule().every(7).minutes())
    found = schedule.occurrences(NOW, 50)
    assert {b - a for a, b in itertools.pairwise(found)} == {timedelta(minutes=7)}
    anchor = schedule.anchor
    assert anchor == utc(2001, 1, 1)
    assert all((m - anchor) % timedelta(minutes=7) == timedelta(0) for m in found)


def test_every_2_hours_hits_even_local_hours_in_winter_and_summer() -> None:
    schedule = build_schedule(lambda b: b.schedule().every(2).hours().in_timezone("Europe/Rome"))
    winter = schedule.occurrences(utc(2026, 1, 10), 4)
    summer = schedule.occurrences(utc(2026, 7, 10), 4)
    assert [m.astimezone(ROME).hour % 2 for m in winter + summer] == [0] * 8


def test_interval_phases_come_from_the_2001_anchor() -> None:
    every_2_days = build_schedule(lambda b: b.schedule().every(2).days())
    # 2026-03-11 is 9200 days after 2001-01-01: an even day
    assert every_2_days.next_occurrence(NOW) == utc(2026, 3, 11)
    quarterly = build_schedule(lambda b: b.schedule().every(3).months().on_day(1))
    assert [m.month for m in quarterly.occurrences(NOW, 4)] == [4, 7, 10, 1]


def test_defaults_are_the_start_of_each_period() -> None:
    day = build_schedule(lambda b: b.schedule().every_day())
    week = build_schedule(lambda b: b.schedule().every_week())
    month = build_schedule(lambda b: b.schedule().every_month())
    hour = build_schedule(lambda b: b.schedule().every_hour())
    assert day.next_occurrence(NOW) == utc(2026, 3, 11)
    assert week.next_occurrence(NOW) == utc(2026, 3, 16)  # Monday 00:00
    assert month.next_occurrence(NOW) == utc(2026, 4, 1)
    assert hour.next_occurrence(NOW) == utc(2026, 3, 10, 13)


def test_run_at_anchors_the_grid_and_supplies_missing_fields() -> None:
    at = utc(2026, 3, 12, 10, 17, 30)  # a Thursday
    minutes = build_schedule(lambda b: b.run_at(at).then().every(90).minutes())
    assert minutes.occurrences(NOW, 3) == [at, at + timedelta(minutes=90), at + timedelta(hours=3)]
    weekly = build_schedule(lambda b: b.run_at(at).then().every_week())
    assert weekly.occurrences(NOW, 2) == [at, at + timedelta(weeks=1)]
    hourly = build_schedule(lambda b: b.run_at(at).then().every_hour().at_minute(45))
    assert hourly.occurrences(NOW, 2) == [at, utc(2026, 3, 12, 10, 45)]


# -- month ends and month rules ----------------------------------------------------------------


def test_on_day_31_clamps_to_the_last_day_of_short_months() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_month().on_day(31).at_time(time(6)))
    assert [m.date().isoformat() for m in schedule.occurrences(utc(2026, 1, 1), 5)] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
    ]


def test_february_29_in_leap_years() -> None:
    schedule = build_schedule(lambda b: b.schedule().on_months(2).on_day(30))
    assert [m.date().isoformat() for m in schedule.occurrences(utc(2026, 3, 1), 3)] == [
        "2027-02-28",
        "2028-02-29",
        "2029-02-28",
    ]


def test_on_days_collapsing_in_february_fire_once() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_month().on_days(29, 30, 31))
    found = schedule.occurrences(utc(2026, 2, 1), 4)
    assert [m.date().isoformat() for m in found] == [
        "2026-02-28",
        "2026-03-29",
        "2026-03-30",
        "2026-03-31",
    ]


def test_on_first_monday_of_each_month() -> None:
    schedule = build_schedule(
        lambda b: b.schedule().every_month().on_first(calendar.MONDAY).at_time(time(9))
    )
    found = schedule.occurrences(utc(2026, 1, 1), 6)
    assert [m.day for m in found] == [5, 2, 2, 6, 4, 1]
    assert {m.weekday() for m in found} == {calendar.MONDAY}


def test_on_months_restricts_months() -> None:
    schedule = build_schedule(lambda b: b.schedule().on_months(1, 7).on_first(calendar.FRIDAY))
    found = schedule.occurrences(NOW, 3)
    assert [(m.year, m.month, m.day) for m in found] == [(2026, 7, 3), (2027, 1, 1), (2027, 7, 2)]


def test_every_2_weeks_on_several_days() -> None:
    schedule = build_schedule(
        lambda b: b.schedule().every(2).weeks().on_days(calendar.MONDAY, calendar.THURSDAY)
    )
    found = schedule.occurrences(NOW, 4)
    assert [m.date().isoformat() for m in found] == [
        "2026-03-12",
        "2026-03-23",
        "2026-03-26",
        "2026-04-06",
    ]


# -- max_runs and run_until ----------------------------------------------------------------------


def test_max_runs_counts_real_executions() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_minute().max_runs(3))
    assert schedule.next_occurrence(NOW, current_run=2) == utc(2026, 3, 10, 12, 31)
    assert schedule.next_occurrence(NOW, current_run=3) is None
    assert len(schedule.occurrences(NOW, 10)) == 3
    assert len(schedule.occurrences(NOW, 10, current_run=2)) == 1
    assert schedule.next_after_run(NOW, 3, NOW).next_run is None


def test_run_until_is_exclusive() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_hour().run_until(utc(2026, 3, 10, 15)))
    assert schedule.occurrences(NOW, 10) == [utc(2026, 3, 10, 13), utc(2026, 3, 10, 14)]
    assert schedule.next_after_run(utc(2026, 3, 10, 14), 2, utc(2026, 3, 10, 14)).next_run is None


def test_max_runs_and_run_until_whichever_comes_first() -> None:
    until = utc(2026, 3, 10, 18)
    schedule = build_schedule(lambda b: b.schedule().every_hour().max_runs(3).run_until(until))
    assert len(schedule.occurrences(NOW, 10)) == 3
    assert len(schedule.occurrences(utc(2026, 3, 10, 16, 30), 10)) == 1


def test_first_run_respects_run_until() -> None:
    schedule = build_schedule(
        lambda b: (
            b.run_delayed(timedelta(hours=2)).then().every_hour().run_until(utc(2026, 3, 10, 14))
        )
    )
    assert schedule.first_run(NOW) is None
    assert schedule.first_run(utc(2026, 3, 10, 11)) == utc(2026, 3, 10, 13)


# -- first-run rules -----------------------------------------------------------------------------


def test_run_at_in_the_past_still_current_runs_now() -> None:
    at = utc(2026, 3, 10, 9)
    schedule = build_schedule(lambda b: b.run_at(at).then().every_day().at_time(time(9)))
    assert schedule.first_run(NOW) == at  # the next occurrence (tomorrow 09:00) is not yet due


def test_run_at_long_past_runs_the_most_recent_missed_occurrence_once() -> None:
    at = utc(2026, 1, 1, 9)
    schedule = build_schedule(lambda b: b.run_at(at).then().every_day().at_time(time(9)))
    assert schedule.first_run(NOW) == utc(2026, 3, 10, 9)


def test_bare_run_at_in_the_past_runs_now() -> None:
    at = utc(2025, 1, 1)
    schedule = build_schedule(lambda b: b.run_at(at))
    assert schedule.first_run(NOW) == at
    assert schedule.resume_at(at, 0, NOW) == at


# -- heuristics and speed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configure", "expected"),
    [
        (lambda b: b.schedule().every(5).minutes(), timedelta(minutes=5)),
        (lambda b: b.schedule().every_day().at_times(time(9), time(14)), timedelta(hours=5)),
        (lambda b: b.schedule().use_cron("*/10 * * * *"), timedelta(minutes=10)),
        (lambda b: b.schedule().every_week(), timedelta(weeks=1)),
        (lambda b: b.run_at(utc(2027, 1, 1)), timedelta.max),
    ],
)
def test_minimum_interval(configure: object, expected: timedelta) -> None:
    assert build_schedule(configure).minimum_interval() == expected  # type: ignore[arg-type]


def test_simple_interval_next_occurrence_takes_microseconds() -> None:
    schedule = build_schedule(lambda b: b.schedule().every(5).minutes())
    moment = NOW
    started = clock.perf_counter()
    for _ in range(10_000):
        found = schedule.next_occurrence(moment)
        assert found is not None
        moment = found
    per_call = (clock.perf_counter() - started) / 10_000
    assert per_call < 50e-6, per_call


def test_results_are_aware_utc_whatever_the_input_zone() -> None:
    schedule = build_schedule(
        lambda b: b.schedule().every_day().at_time(time(3)).in_timezone("Europe/Rome")
    )
    found = schedule.next_occurrence(datetime(2026, 3, 10, 12, tzinfo=ROME))
    assert found is not None
    assert found.tzinfo is UTC
    assert found == local(ROME, 2026, 3, 11, 3)
