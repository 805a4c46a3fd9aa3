"""After each run and at restart: no drift, one catch-up for missed runs, realignment."""

from __future__ import annotations

import calendar
import time as clock
from datetime import time, timedelta

from scheduling_helpers import utc

from evertask.scheduling import NextRun, build_schedule

MINUTELY = build_schedule(lambda b: b.schedule().every_minute())
DAILY_9 = build_schedule(lambda b: b.schedule().every_day().at_time(time(9)))


# -- next_after_run --------------------------------------------------------------------------------


def test_next_run_is_computed_from_the_scheduled_time() -> None:
    scheduled = utc(2026, 3, 10, 12, 0)
    finished = utc(2026, 3, 10, 12, 0, 40)
    assert MINUTELY.next_after_run(scheduled, 1, finished) == NextRun(utc(2026, 3, 10, 12, 1), 0)


def test_three_days_of_downtime_give_one_catch_up_then_the_grid() -> None:
    scheduled = utc(2026, 3, 10, 12, 0)
    now = utc(2026, 3, 13, 12, 0, 30)
    result = MINUTELY.next_after_run(scheduled, 1, now)
    assert result.next_run == utc(2026, 3, 13, 12, 0)  # the most recent missed minute, once
    assert result.skipped == 3 * 1440 - 1  # 12:01 on day 1 .. 11:59 on day 4
    # after the catch-up ran (at 12:00:31), the series is back on its grid: no replay storm
    after_catch_up = MINUTELY.next_after_run(result.next_run, 2, now + timedelta(seconds=1))
    assert after_catch_up == NextRun(utc(2026, 3, 13, 12, 1), 0)


def test_a_run_longer_than_the_period_continues_without_overlap_or_storm() -> None:
    scheduled = utc(2026, 3, 10, 12, 0)
    result = MINUTELY.next_after_run(scheduled, 1, utc(2026, 3, 10, 12, 3, 20))
    assert result == NextRun(utc(2026, 3, 10, 12, 3), 2)  # 12:01 and 12:02 skipped


def test_calendar_schedule_downtime_realigns_with_exact_skipped_count() -> None:
    schedule = build_schedule(
        lambda b: (
            b.schedule()
            .on_days(calendar.MONDAY, calendar.WEDNESDAY)
            .at_times(time(9), time(17))
            .in_timezone("Europe/Rome")
        )
    )
    scheduled = utc(2026, 3, 2, 8)  # Monday 09:00 Rome
    now = utc(2026, 3, 26, 12)  # Thursday, three and a half weeks later
    result = schedule.next_after_run(scheduled, 1, now)
    assert result.next_run == utc(2026, 3, 25, 16)  # Wednesday 17:00 Rome
    assert result.skipped == 14  # Mon 2 17:00, then 4 a week, up to Wed 25 09:00
    assert schedule.next_after_run(result.next_run, 2, now).next_run == utc(2026, 3, 30, 7)


def test_cron_downtime() -> None:
    schedule = build_schedule(lambda b: b.schedule().use_cron("0 */6 * * *"))
    result = schedule.next_after_run(utc(2026, 3, 1), 1, utc(2026, 3, 3, 13))
    assert result == NextRun(utc(2026, 3, 3, 12), 9)  # 1 March 06:00 .. 3 March 06:00


def test_missed_run_is_skipped_when_run_until_passed_during_downtime() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_hour().run_until(utc(2026, 3, 10, 15)))
    assert schedule.next_after_run(utc(2026, 3, 10, 12), 1, utc(2026, 3, 10, 17)).next_run is None
    # still current before run_until's following occurrence: runs once
    result = schedule.next_after_run(utc(2026, 3, 10, 12), 1, utc(2026, 3, 10, 14, 30))
    assert result == NextRun(utc(2026, 3, 10, 14), 1)


def test_max_runs_reached_ends_the_series() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_minute().max_runs(2))
    assert schedule.next_after_run(utc(2026, 3, 10), 1, utc(2026, 3, 10)).next_run is not None
    assert schedule.next_after_run(utc(2026, 3, 10), 2, utc(2026, 3, 10)) == NextRun(None)


def test_single_run_has_no_next_run() -> None:
    schedule = build_schedule(lambda b: b.run_at(utc(2026, 3, 10)))
    assert schedule.next_after_run(utc(2026, 3, 10), 1, utc(2026, 3, 10)) == NextRun(None)


def test_uniform_grids_jump_in_constant_time() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_second())
    started = clock.perf_counter()
    result = schedule.next_after_run(utc(2016, 3, 10), 1, utc(2026, 3, 10, 0, 0, 0, 500_000))
    assert clock.perf_counter() - started < 0.05
    assert result.next_run == utc(2026, 3, 10)
    assert result.skipped == (utc(2026, 3, 10) - utc(2016, 3, 10)) // timedelta(seconds=1) - 1


def test_calendar_walks_are_bounded() -> None:
    schedule = build_schedule(lambda b: b.schedule().use_cron("* * * * * *"))  # every second
    started = clock.perf_counter()
    result = schedule.next_after_run(utc(2026, 3, 10), 1, utc(2026, 3, 13, 0, 0, 0, 500_000))
    assert clock.perf_counter() - started < 1.0
    assert result.next_run == utc(2026, 3, 13)
    exact = 3 * 86400 - 1
    assert abs(result.skipped - exact) <= exact // 100  # estimated beyond 1,000


# -- resume_at (restart recovery) -----------------------------------------------------------------


def test_resume_keeps_a_future_next_run_as_is() -> None:
    stored = utc(2026, 3, 11, 9)
    assert DAILY_9.resume_at(stored, 3, utc(2026, 3, 10, 20)) == stored
    off_grid = utc(2026, 3, 11, 9, 0, 7)  # not even on the grid: still kept
    assert DAILY_9.resume_at(off_grid, 3, utc(2026, 3, 10, 20)) == off_grid


def test_resume_runs_a_past_but_still_current_occurrence_now() -> None:
    stored = utc(2026, 3, 10, 9)
    assert DAILY_9.resume(stored, 3, utc(2026, 3, 10, 20)) == NextRun(stored, 0)


def test_resume_after_long_downtime_runs_the_most_recent_missed_once() -> None:
    stored = utc(2026, 3, 1, 9)
    result = DAILY_9.resume(stored, 3, utc(2026, 3, 10, 20))
    assert result == NextRun(utc(2026, 3, 10, 9), 9)  # 1 .. 9 March never ran


def test_resume_before_the_first_daily_occurrence_of_the_day() -> None:
    stored = utc(2026, 3, 1, 9)
    assert DAILY_9.resume_at(stored, 3, utc(2026, 3, 10, 8)) == utc(2026, 3, 9, 9)


def test_resume_returns_none_when_the_series_is_over() -> None:
    now = utc(2026, 3, 10, 20)
    assert DAILY_9.resume_at(None, 3, now) is None
    limited = build_schedule(lambda b: b.schedule().every_day().at_time(time(9)).max_runs(3))
    assert limited.resume_at(utc(2026, 3, 11, 9), 3, now) is None
    until = build_schedule(
        lambda b: b.schedule().every_day().at_time(time(9)).run_until(utc(2026, 3, 5))
    )
    assert until.resume_at(utc(2026, 3, 4, 9), 1, now) is None
    assert until.resume_at(utc(2026, 3, 6, 9), 1, utc(2026, 3, 1)) is None


def test_resume_of_a_single_past_run_runs_it() -> None:
    at = utc(2026, 3, 1)
    schedule = build_schedule(lambda b: b.run_at(at))
    assert schedule.resume_at(at, 0, utc(2026, 3, 10)) == at


def test_resume_of_a_run_now_first_run_after_downtime() -> None:
    schedule = build_schedule(lambda b: b.run_now().then().every_hour())
    dispatched = utc(2026, 3, 10, 12, 34)
    assert schedule.resume_at(dispatched, 0, utc(2026, 3, 10, 12, 50)) == dispatched
    assert schedule.resume_at(dispatched, 0, utc(2026, 3, 10, 15, 10)) == utc(2026, 3, 10, 15)
