"""``evertask schedule``: next occurrences of a cron expression or a fluent schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from evertask import build_schedule
from tests.cli.conftest import evertask, invoke, invoke_json


def test_cron_in_a_zone_across_the_spring_dst_change() -> None:
    done = evertask(
        "schedule", "30 2 * * *", "--zone", "Europe/Rome", "--count", "3",
        "--after", "2026-03-28T00:00:00+01:00", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["timezone"] == "Europe/Rome"
    # 02:30 does not exist on 29 March 2026 in Rome: it fires once that day, as the
    # dispatcher's schedule does
    expected = build_schedule(
        lambda b: b.schedule().use_cron("30 2 * * *").in_timezone("Europe/Rome")
    ).occurrences(datetime(2026, 3, 27, 23, 0, tzinfo=UTC), 3)
    assert data["occurrences_utc"] == [m.isoformat() for m in expected]
    assert [o[:10] for o in data["occurrences"]] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert data["occurrences"][0] == "2026-03-28T02:30:00+01:00"
    assert data["occurrences"][2] == "2026-03-30T02:30:00+02:00"
    assert data["occurrences_utc"][0] == "2026-03-28T01:30:00+00:00"
    table = invoke("schedule", "0 9 * * MON", "-n", "2", "--after", "2026-01-01T00:00:00Z")
    assert table.returncode == 0
    assert "2026-01-05 09:00:00 UTC (Mon)" in table.stdout
    assert "2026-01-12 09:00:00 UTC (Mon)" in table.stdout


def test_the_fluent_builder_form() -> None:
    data = invoke_json(
        "schedule",
        "--python",
        "lambda b: b.schedule().every_day().at_times(time(9), time(14, 30))"
        ".in_timezone('America/New_York')",
        "--count", "3",
        "--after", "2026-07-01T10:00:00-04:00",
    )  # fmt: skip
    assert data["occurrences"] == [
        "2026-07-01T14:30:00-04:00",
        "2026-07-02T09:00:00-04:00",
        "2026-07-02T14:30:00-04:00",
    ]
    limited = invoke_json(
        "schedule", "--python", "lambda b: b.schedule().every(2).hours().max_runs(2)",
        "-n", "5", "--after", "2026-01-01T00:00:00Z",
    )  # fmt: skip
    assert len(limited["occurrences"]) == 2
    weekly = invoke_json(
        "schedule", "--python", "lambda b: b.schedule().on_days(MONDAY, FRIDAY).at_time(time(8))",
        "-n", "2", "--after", "2026-01-01T00:00:00Z",
    )  # fmt: skip
    assert weekly["occurrences"] == ["2026-01-02T08:00:00+00:00", "2026-01-05T08:00:00+00:00"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["61 * * * *"], "CRON"),
        (["* * * * *", "--zone", "Mars/Olympus"], "unknown time zone"),
        (["--python", "lambda b: b.every(5).minutes()"], "builder starts with schedule()"),
        (["--python", "lambda b: __import__('os')"], "unknown name '__import__'"),
        (["--python", "lambda b: b.__class__"], "private attributes"),
        (["--python", "b.schedule()"], "one-parameter lambda"),
        (["--python", "lambda b: b.schedule("], "not a Python expression"),
        ([], "exactly one"),
        (["* * * * *", "--python", "lambda b: b.run_now()"], "exactly one"),
        (["--python", "lambda b: b.run_now()", "--zone", "UTC"], "in_timezone"),
        (["* * * * *", "--after", "yesterday"], "ISO 8601"),
    ],
)
def test_bad_input_is_a_usage_error(args: list[str], message: str) -> None:
    done = invoke("schedule", *args)
    assert done.returncode == 2, done.stdout
    assert message in done.stderr
