"""The fluent builder: every method, the .NET chains (inventory §2.1), and every invalid input."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from scheduling_helpers import utc

from evertask.scheduling import (
    CronRecurrence,
    EveryRecurrence,
    FirstRun,
    FirstRunKind,
    RecurringSchedule,
    RecurringTaskBuilder,
    Unit,
    build_schedule,
)
from evertask_abstractions import ScheduleError
from evertask_abstractions import recurring as protocols

NOW = utc(2026, 3, 10, 12, 30)  # a Tuesday
Configure = Callable[[RecurringTaskBuilder], object]


def every(configure: Configure) -> EveryRecurrence:
    recurrence = build_schedule(configure).recurrence
    assert isinstance(recurrence, EveryRecurrence)
    return recurrence


# -- first runs ----------------------------------------------------------------------------------


def test_run_now_alone_is_a_single_run_now() -> None:
    schedule = build_schedule(lambda b: b.run_now())
    assert schedule.start == FirstRun(FirstRunKind.NOW)
    assert not schedule.is_recurring
    assert schedule.first_run(NOW) == NOW
    assert schedule.next_occurrence(NOW) is None


def test_run_delayed_alone_is_a_single_delayed_run() -> None:
    schedule = build_schedule(lambda b: b.run_delayed(timedelta(minutes=5)))
    assert schedule.first_run(NOW) == NOW + timedelta(minutes=5)
    assert not schedule.is_recurring


def test_run_at_alone_is_a_single_run_at_that_instant() -> None:
    at = datetime(2026, 3, 11, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    schedule = build_schedule(lambda b: b.run_at(at))
    assert schedule.start is not None
    assert schedule.start.at == utc(2026, 3, 11, 8, 0)
    assert schedule.first_run(NOW) == at
    assert schedule.occurrences(NOW, 5) == [at]
    assert not schedule.is_recurring


def test_run_now_then_recurs() -> None:
    schedule = build_schedule(lambda b: b.run_now().then().every_minute())
    assert schedule.is_recurring
    assert schedule.first_run(NOW) == NOW
    assert schedule.next_after_run(NOW, 1, NOW).next_run == utc(2026, 3, 10, 12, 31)


def test_run_delayed_then_recurs() -> None:
    schedule = build_schedule(
        lambda b: b.run_delayed(timedelta(seconds=90)).then().every(5).minutes()
    )
    first = schedule.first_run(NOW)
    assert first == utc(2026, 3, 10, 12, 31, 30)
    assert schedule.next_after_run(first, 1, first).next_run == utc(2026, 3, 10, 12, 35)


def test_run_at_then_recurs_after_the_instant() -> None:
    at = utc(2026, 3, 12, 7, 45)
    schedule = build_schedule(lambda b: b.run_at(at).then().every_day().at_time(time(9)))
    assert schedule.first_run(NOW) == at
    assert schedule.occurrences(NOW, 3) == [at, utc(2026, 3, 12, 9), utc(2026, 3, 13, 9)]


# -- recurrences --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configure", "unit", "interval"),
    [
        (lambda b: b.schedule().every(7).seconds(), Unit.SECOND, 7),
        (lambda b: b.schedule().every(5).minutes(), Unit.MINUTE, 5),
        (lambda b: b.schedule().every(3).hours(), Unit.HOUR, 3),
        (lambda b: b.schedule().every(2).days(), Unit.DAY, 2),
        (lambda b: b.schedule().every(2).weeks(), Unit.WEEK, 2),
        (lambda b: b.schedule().every(3).months(), Unit.MONTH, 3),
        (lambda b: b.schedule().every_second(), Unit.SECOND, 1),
        (lambda b: b.schedule().every_minute(), Unit.MINUTE, 1),
        (lambda b: b.schedule().every_hour(), Unit.HOUR, 1),
        (lambda b: b.schedule().every_day(), Unit.DAY, 1),
        (lambda b: b.schedule().every_week(), Unit.WEEK, 1),
        (lambda b: b.schedule().every_month(), Unit.MONTH, 1),
    ],
)
def test_every_units(configure: Configure, unit: Unit, interval: int) -> None:
    recurrence = every(configure)
    assert (recurrence.unit, recurrence.interval) == (unit, interval)


def test_use_cron_five_six_fields_and_macros() -> None:
    five = build_schedule(lambda b: b.schedule().use_cron("*/5  * * * *"))
    assert five.recurrence == CronRecurrence("*/5 * * * *")
    assert five.next_occurrence(NOW) == utc(2026, 3, 10, 12, 35)
    six = build_schedule(lambda b: b.schedule().use_cron("30 */5 * * * *"))  # seconds first
    assert six.next_occurrence(NOW) == utc(2026, 3, 10, 12, 30, 30)
    daily = build_schedule(lambda b: b.schedule().use_cron("@DAILY"))
    assert daily.next_occurrence(NOW) == utc(2026, 3, 11)


def test_at_second_and_at_minute() -> None:
    assert every(lambda b: b.schedule().every(5).minutes().at_second(30)).second == 30
    hourly = every(lambda b: b.schedule().every_hour().at_minute(15))
    assert (hourly.minute, hourly.second) == (15, None)
    both = every(lambda b: b.schedule().every(2).hours().at_minute(15).at_second(30))
    assert (both.minute, both.second) == (15, 30)
    assert build_schedule(
        lambda b: b.schedule().every_hour().at_minute(15).at_second(30)
    ).next_occurrence(NOW) == utc(2026, 3, 10, 13, 15, 30)


def test_at_time_and_at_times_varargs_or_iterable_sorted_unique() -> None:
    assert every(lambda b: b.schedule().every_day().at_time(time(3))).times == (time(3),)
    varargs = every(lambda b: b.schedule().every_day().at_times(time(14), time(9), time(14)))
    iterable = every(lambda b: b.schedule().every_day().at_times([time(9), time(14)]))
    assert varargs.times == iterable.times == (time(9), time(14))


def test_on_days_from_the_interval_builder_and_the_weekly_builder() -> None:
    days = every(lambda b: b.schedule().on_days(calendar.FRIDAY, calendar.MONDAY))
    assert (days.unit, days.weekdays) == (Unit.DAY, (0, 4))
    assert every(lambda b: b.schedule().on_days([0, 4])).weekdays == (0, 4)
    weekly = every(lambda b: b.schedule().every_week().on_days(calendar.THURSDAY, 0))
    assert (weekly.unit, weekly.weekdays) == (Unit.WEEK, (0, 3))
    assert every(lambda b: b.schedule().every_week().on_day(calendar.SUNDAY)).weekdays == (6,)


def test_monthly_day_rules_and_on_months() -> None:
    assert every(lambda b: b.schedule().every_month().on_day(15)).days == (15,)
    assert every(lambda b: b.schedule().every_month().on_days(15, 1)).days == (1, 15)
    assert every(lambda b: b.schedule().every_month().on_days([31])).days == (31,)
    first = every(lambda b: b.schedule().every_month().on_first(calendar.MONDAY))
    assert first.first_weekday == calendar.MONDAY
    months = every(lambda b: b.schedule().on_months(7, 1).on_day(1))
    assert (months.unit, months.months, months.days) == (Unit.MONTH, (1, 7), (1,))
    assert every(lambda b: b.schedule().on_months(range(1, 4))).months == (1, 2, 3)


def test_bounds_and_time_zone_chain_in_any_order() -> None:
    until = utc(2027, 1, 1)
    schedule = build_schedule(
        lambda b: (
            b.schedule()
            .every(5)
            .minutes()
            .at_second(30)
            .run_until(until)
            .in_timezone("Europe/Rome")
            .max_runs(10)
        )
    )
    assert (schedule.run_until, schedule.max_runs, schedule.timezone) == (until, 10, "Europe/Rome")
    again = build_schedule(
        lambda b: b.schedule().every_day().max_runs(3).in_timezone("UTC").run_until(until)
    )
    assert (again.max_runs, again.run_until) == (3, until)


@pytest.mark.parametrize(
    ("configure", "expected"),
    [  # the .NET chains of the inventory, §2.1
        (lambda b: b.schedule().every(5).minutes().at_second(30), utc(2026, 3, 10, 12, 30, 30)),
        (lambda b: b.schedule().every_hour().at_minute(15), utc(2026, 3, 10, 13, 15)),
        (lambda b: b.schedule().every_day().at_time(time(13)), utc(2026, 3, 10, 13)),
        (lambda b: b.schedule().every_day().at_times(time(9), time(14)), utc(2026, 3, 10, 14)),
        (lambda b: b.schedule().on_days(calendar.MONDAY).at_time(time(9)), utc(2026, 3, 16, 9)),
        (
            lambda b: b.schedule().every_week().on_days(calendar.TUESDAY).at_time(time(13)),
            utc(2026, 3, 10, 13),
        ),
        (lambda b: b.schedule().every(2).weeks().on_day(calendar.FRIDAY), utc(2026, 3, 13)),
        (lambda b: b.schedule().every_month().on_day(15).at_time(time(8)), utc(2026, 3, 15, 8)),
        (lambda b: b.schedule().every_month().on_first(calendar.MONDAY), utc(2026, 4, 6)),
        (lambda b: b.schedule().on_months(6, 12).on_days(1, 15), utc(2026, 6, 1)),
        (lambda b: b.schedule().use_cron("0 9 * * 1-5"), utc(2026, 3, 11, 9)),
        (lambda b: b.run_now().then().every(10).seconds(), utc(2026, 3, 10, 12, 30, 10)),
        (lambda b: b.schedule().every_second().max_runs(3), utc(2026, 3, 10, 12, 30, 1)),
    ],
)
def test_inventory_chains(configure: Configure, expected: datetime) -> None:
    assert build_schedule(configure).next_occurrence(NOW) == expected


def test_configure_may_return_anything_and_now_validates() -> None:
    schedule = build_schedule(lambda b: [b.schedule().every_day(), "ignored"], now=NOW)
    assert schedule.is_recurring
    with pytest.raises(ScheduleError, match="not after now"):
        build_schedule(lambda b: b.schedule().every_day().run_until(utc(2026, 1, 1)), now=NOW)


def test_builder_build_directly() -> None:
    builder = RecurringTaskBuilder()
    builder.schedule().every_day().at_time(time(3)).in_timezone("Europe/Rome")
    assert str(builder.build()) == "every day at 03:00 (Europe/Rome)"
    assert isinstance(builder.build(), RecurringSchedule)


def test_stages_satisfy_the_published_protocols() -> None:
    # statically checked by mypy in evertask/scheduling/builder.py; here: at runtime
    builder: protocols.RecurringTaskBuilder = RecurringTaskBuilder()
    stage: protocols.BuildableSchedulerBuilder = builder.schedule().every_day()
    stage.max_runs(2).run_until(utc(2027, 1, 1)).in_timezone("UTC")
    for name in ("run_now", "run_delayed", "run_at", "schedule"):
        assert callable(getattr(RecurringTaskBuilder(), name))


def test_stage_methods_do_not_leak_into_other_stages() -> None:
    with pytest.raises(AttributeError):
        build_schedule(lambda b: b.schedule().every_day().at_second(5))  # type: ignore[attr-defined]


# -- invalid input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configure", "message"),
    [
        (lambda b: b.schedule().every_minute().at_second(60), r"at_second\(60\).*between 0 and 59"),
        (lambda b: b.schedule().every_hour().at_minute(-1), r"at_minute\(-1\).*between 0 and 59"),
        (lambda b: b.schedule().every(0).minutes(), r"every\(0\).*1 or more"),
        (lambda b: b.schedule().every(-3).days(), r"every\(-3\).*1 or more"),
        (lambda b: b.schedule().every("5").minutes(), r"whole number"),
        (lambda b: b.schedule().every(True).minutes(), r"whole number"),
        (lambda b: b.schedule().every_month().on_day(32), r"on_day\(32\).*between 1 and 31"),
        (lambda b: b.schedule().every_month().on_days(0, 5), r"between 1 and 31"),
        (lambda b: b.schedule().on_months(13), r"between 1 \(January\) and 12"),
        (lambda b: b.schedule().on_months(0), r"between 1 \(January\) and 12"),
        (lambda b: b.schedule().on_days(7), r"0 \(calendar.MONDAY\) and 6 \(calendar.SUNDAY\)"),
        (lambda b: b.schedule().every_week().on_day(7), r"on_day\(7\).*calendar.SUNDAY"),
        (lambda b: b.schedule().every_month().on_first(-1), r"on_first\(-1\).*weekdays"),
        (lambda b: b.schedule().every_day().max_runs(0), r"max_runs\(0\).*1 or more"),
        (lambda b: b.schedule().use_cron("61 * * * *"), r"invalid cron expression.*5 fields"),
        (lambda b: b.schedule().use_cron("* * *"), r"expected 5 or 6 fields, got 3"),
        (lambda b: b.schedule().use_cron("every minute"), r"expected 5 or 6 fields"),
        (lambda b: b.schedule().use_cron("@sometimes"), r"unknown macro"),
        (lambda b: b.schedule().use_cron("0 0 30 2 *"), r"never matches"),
        (lambda b: b.schedule().every_day().in_timezone("Europe/Rom"), r"unknown time zone"),
        (lambda b: b.schedule().every_day().in_timezone(""), r"IANA"),
        (lambda b: b.schedule().every_day().at_times(), r"at_times\(\): give at least one"),
        (lambda b: b.schedule().every_day().at_times([]), r"at least one"),
        (lambda b: b.schedule().on_days(), r"on_days\(\): give at least one"),
        (lambda b: b.schedule().on_months([]), r"on_months\(\): give at least one"),
        (lambda b: b.schedule().every_day().at_time("09:00"), r"expected a datetime.time"),
        (
            lambda b: b.schedule().every_day().at_time(time(9, tzinfo=UTC)),
            r"naive time.*in_timezone",
        ),
        (lambda b: b.run_at(datetime(2026, 5, 1, 9)), r"run_at.*naive datetime.*tzinfo=UTC"),
        (
            lambda b: b.schedule().every_day().run_until(datetime(2027, 1, 1)),
            r"run_until.*naive datetime",
        ),
        (lambda b: b.run_delayed(timedelta(seconds=-1)), r"must not be negative"),
        (lambda b: b.run_delayed(5), r"expected a datetime.timedelta"),
        (lambda b: None, r"builder was not used"),
        (lambda b: b.schedule(), r"schedule\(\) must be followed by a recurrence"),
        (lambda b: b.run_now().then(), r"run_now\(\)\.then\(\) must be followed by a recurrence"),
        (
            lambda b: (b.run_now(), b.schedule().every_day()),
            r"already started with run_now\(\)",
        ),
        (
            lambda b: (lambda i: (i.every_day(), i.every_hour()))(b.schedule()),
            r"already recurs with every\(1\)\.days\(\)",
        ),
        (lambda b: b.schedule().every_day().max_runs(2).max_runs(3), r"max_runs is already set"),
        (
            lambda b: b.schedule().every_day().in_timezone("UTC").in_timezone("Europe/Rome"),
            r"time zone is already set",
        ),
        (
            lambda b: (lambda m: (m.on_day(1), m.on_first(0)))(b.schedule().every_month()),
            r"day of the month is already set by on_day\(1\)",
        ),
    ],
)
def test_invalid_input_raises_a_clear_schedule_error(configure: Configure, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        build_schedule(configure)


def test_schedule_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        build_schedule(lambda b: b.schedule().every(0).minutes())


def test_validate_needs_now_for_run_until_in_the_past() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_day().run_until(utc(2026, 3, 1)))
    with pytest.raises(ScheduleError, match=r"run_until\(2026-03-01T00:00:00\+00:00\).*never run"):
        schedule.validate(NOW)
    schedule.validate(utc(2026, 2, 1))


def test_validate_rejects_a_schedule_without_a_future_occurrence() -> None:
    schedule = build_schedule(
        lambda b: b.schedule().every_day().at_time(time(13)).run_until(utc(2026, 3, 10, 12, 45))
    )
    with pytest.raises(ScheduleError, match=r"first run would be at 2026-03-10T13:00.*run_until"):
        schedule.validate(NOW)
    assert schedule.first_run(NOW) is None


def test_validate_rejects_naive_now() -> None:
    schedule = build_schedule(lambda b: b.schedule().every_day())
    with pytest.raises(ScheduleError, match="naive"):
        schedule.validate(datetime(2026, 1, 1))
    with pytest.raises(ScheduleError, match="naive"):
        schedule.next_occurrence(datetime(2026, 1, 1))


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ScheduleError, match="empty"):
        RecurringSchedule()
    with pytest.raises(ScheduleError, match=r"on_days.*every\(n\).days"):
        EveryRecurrence(Unit.DAY, 2, weekdays=(1,))
    with pytest.raises(ScheduleError, match=r"on_months.*every\(n\).months"):
        EveryRecurrence(Unit.MONTH, 2, months=(1,))
    with pytest.raises(ScheduleError, match="at_second applies"):
        EveryRecurrence(Unit.DAY, second=3)
