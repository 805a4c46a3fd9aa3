"""to_json/from_json round trips, corrupt input, and human-readable descriptions."""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from datetime import time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from scheduling_helpers import utc
from scheduling_strategies import fluent_specs, zones

from evertask.scheduling import (
    FORMAT_VERSION,
    EveryRecurrence,
    RecurringSchedule,
    RecurringTaskBuilder,
    build_schedule,
)
from evertask_abstractions import ScheduleError

NOW = utc(2026, 3, 10, 12, 30)

SAMPLES: list[Callable[[RecurringTaskBuilder], Any]] = [
    lambda b: b.run_now(),
    lambda b: b.run_delayed(timedelta(minutes=5, microseconds=7)),
    lambda b: b.run_at(utc(2026, 5, 1, 9)),
    lambda b: b.run_now().then().every(5).minutes().at_second(30),
    lambda b: b.run_delayed(timedelta(hours=1)).then().every_hour().at_minute(15).at_second(5),
    lambda b: b.run_at(utc(2026, 5, 1, 9)).then().every(2).days().at_times(time(9), time(14, 30)),
    lambda b: b.schedule().every_week().on_days(0, 3).at_time(time(2, 30, 0, 250)),
    lambda b: b.schedule().every(3).months().on_days(1, 31),
    lambda b: b.schedule().every_month().on_first(calendar.MONDAY).at_time(time(9)),
    lambda b: b.schedule().on_months(1, 7).on_day(15).in_timezone("Europe/Rome"),
    lambda b: b.schedule().on_days(calendar.SATURDAY).max_runs(4).run_until(utc(2027, 1, 1)),
    lambda b: b.schedule().use_cron("0 9 * * 1-5").in_timezone("America/New_York"),
    lambda b: b.schedule().use_cron("*/10 * * * * *"),
]


@pytest.mark.parametrize("configure", SAMPLES)
def test_round_trip(configure: Callable[[RecurringTaskBuilder], Any]) -> None:
    schedule = build_schedule(configure)
    text = schedule.to_json()
    again = RecurringSchedule.from_json(text)
    assert again == schedule
    assert again.to_json() == text
    assert json.loads(text)["v"] == FORMAT_VERSION
    assert again.occurrences(NOW, 5) == schedule.occurrences(NOW, 5)
    assert str(again) == str(schedule)
    assert RecurringSchedule.from_json(text.encode()) == schedule


def test_json_format_is_stable() -> None:
    schedule = build_schedule(
        lambda b: (
            b.run_at(utc(2026, 5, 1, 7))
            .then()
            .every_day()
            .at_time(time(9))
            .in_timezone("Europe/Rome")
            .max_runs(10)
        )
    )
    assert schedule.to_json() == (
        '{"v":1,"start":{"kind":"at","at":"2026-05-01T07:00:00+00:00"},'
        '"recurrence":{"kind":"every","unit":"day","interval":1,"times":["09:00:00"]},'
        '"timezone":"Europe/Rome","run_until":null,"max_runs":10}'
    )


@settings(max_examples=100, deadline=None, database=None)
@given(fluent_specs(), zones)
def test_round_trip_property(spec: EveryRecurrence, zone: str) -> None:
    schedule = RecurringSchedule(recurrence=spec, timezone=zone)
    assert RecurringSchedule.from_json(schedule.to_json()) == schedule


_VALID = json.loads(build_schedule(lambda b: b.schedule().every_day()).to_json())


def _with(**changes: Any) -> str:
    data = dict(_VALID)
    data.update(changes)
    return json.dumps(data)


def _every(**changes: Any) -> str:
    return _with(recurrence={"kind": "every", "unit": "day", "interval": 1, **changes})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"start": null}', "unsupported format version None"),
        (_with(v=2), "unsupported format version 2"),
        (_with(extra=1), r"unknown keys \['extra'\]"),
        (_with(recurrence=None, start=None), "empty"),
        (_with(timezone="Mars/Olympus"), "unknown time zone"),
        (_with(timezone=5), "expected a string"),
        (_with(max_runs=0), "1 or more"),
        (_with(max_runs=True), "expected an integer"),
        (_with(run_until="2027-01-01T00:00:00"), "no UTC offset"),
        (_with(run_until="tomorrow"), "not an ISO 8601 datetime"),
        (_with(recurrence={"kind": "weird"}), "unknown kind 'weird'"),
        (_with(recurrence="daily"), "expected a JSON object"),
        (_with(recurrence={"kind": "cron", "expression": "61 * * * *"}), "invalid cron"),
        (_with(recurrence={"kind": "cron"}), "expected a string"),
        (_every(unit="fortnight"), "unknown unit 'fortnight'"),
        (_every(interval=0), "1 or more"),
        (_every(interval="1"), "expected an integer"),
        (_every(times=["25:00"]), "not an ISO 8601 time"),
        (_every(times="09:00"), "expected a list of times"),
        (_every(weekdays=[9]), "weekdays must be between 0"),
        (_every(days=[5]), "on_day/on_first/on_months apply to month"),
        (_every(unit="month", days=[40]), "between 1 and 31"),
        (_every(unit="month", months=[13]), "between 1 \\(January\\) and 12"),
        (_every(second=70), "between 0 and 59"),
        (_with(start={"kind": "later"}), "unknown first-run kind"),
        (_with(start={"kind": "delay", "delay_us": -5}), "must not be negative"),
        (_with(start={"kind": "at", "at": "2026-01-01T00:00:00"}), "no UTC offset"),
        (_with(start={"kind": "now", "at": "x"}), "unknown keys"),
    ],
)
def test_corrupt_json_raises_schedule_error(text: str | bytes, message: str) -> None:
    with pytest.raises(ScheduleError, match="Corrupt recurring schedule JSON") as info:
        RecurringSchedule.from_json(text)
    assert info.match(message)


# -- descriptions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configure", "expected"),
    [
        (
            lambda b: b.schedule().every_day().at_time(time(3)).in_timezone("Europe/Rome"),
            "every day at 03:00 (Europe/Rome)",
        ),
        (
            lambda b: (
                b.schedule()
                .every(5)
                .minutes()
                .at_second(30)
                .run_until(utc(2027, 1, 1))
                .max_runs(10)
            ),
            "every 5 minutes at second 30, until 2027-01-01 00:00 UTC, at most 10 runs",
        ),
        (lambda b: b.schedule().use_cron("*/5 * * * *"), "cron '*/5 * * * *' (UTC)"),
        (lambda b: b.schedule().every_second(), "every second"),
        (lambda b: b.schedule().every(2).hours(), "every 2 hours (UTC)"),
        (lambda b: b.schedule().every_hour().at_minute(15), "every hour at minute 15 (UTC)"),
        (
            lambda b: b.schedule().every_hour().at_minute(0).at_second(30),
            "every hour at minute 0, second 30 (UTC)",
        ),
        (
            lambda b: b.schedule().every_day().at_times(time(9), time(14), time(20, 30, 15)),
            "every day at 09:00, 14:00 and 20:30:15 (UTC)",
        ),
        (
            lambda b: b.schedule().on_days(calendar.MONDAY, calendar.FRIDAY).at_time(time(9)),
            "every Monday and Friday at 09:00 (UTC)",
        ),
        (
            lambda b: b.schedule().every(2).weeks().on_days(0, 3).at_time(time(9)),
            "every 2 weeks on Monday and Thursday at 09:00 (UTC)",
        ),
        (lambda b: b.schedule().every_week(), "every week on Monday at 00:00 (UTC)"),
        (
            lambda b: b.schedule().every_month().on_first(calendar.MONDAY).at_time(time(9)),
            "every month on the first Monday at 09:00 (UTC)",
        ),
        (
            lambda b: b.schedule().every(3).months().on_days(1, 15),
            "every 3 months on days 1 and 15 at 00:00 (UTC)",
        ),
        (
            lambda b: b.schedule().every_month().on_day(31),
            "every month on day 31 (or the month's last day, if shorter) at 00:00 (UTC)",
        ),
        (
            lambda b: b.schedule().on_months(1, 7).on_day(1),
            "every January and July on day 1 at 00:00 (UTC)",
        ),
        (lambda b: b.run_now(), "run once now"),
        (lambda b: b.run_delayed(timedelta(hours=1, minutes=30)), "run once after 1h 30m"),
        (lambda b: b.run_delayed(timedelta(0)), "run once after 0s"),
        (lambda b: b.run_at(utc(2026, 5, 1, 9)), "run once at 2026-05-01 09:00 UTC"),
        (
            lambda b: b.run_now().then().every_minute().max_runs(1),
            "run now, then every minute, at most 1 run",
        ),
        (
            lambda b: b.run_delayed(timedelta(seconds=90)).then().every_day(),
            "run after 1m 30s, then every day at 00:00 (UTC)",
        ),
        (
            lambda b: (
                b.run_at(utc(2026, 5, 1, 7, 15))
                .then()
                .every_week()
                .in_timezone("Europe/Rome")
                .run_until(utc(2026, 12, 31, 23))
            ),
            "run at 2026-05-01 09:15 Europe/Rome, then every week on Friday at 09:15 "
            "(Europe/Rome), until 2027-01-01 00:00 Europe/Rome",
        ),
    ],
)
def test_descriptions(configure: Callable[[RecurringTaskBuilder], Any], expected: str) -> None:
    assert str(build_schedule(configure)) == expected
