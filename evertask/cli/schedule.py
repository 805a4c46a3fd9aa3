"""``evertask schedule``: preview the next occurrences of a cron expression or of a fluent
recurring schedule (the same schedule objects the dispatcher persists)."""

from __future__ import annotations

import ast
import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import click

from .output import echo_json, print_table

__all__ = ["SAFE_NAMES", "compile_builder", "schedule"]

SAFE_NAMES: dict[str, Any] = {
    "time": time,
    "timedelta": timedelta,
    "datetime": datetime,
    "date": date,
    "timezone": timezone,
    "UTC": UTC,
    "MONDAY": calendar.MONDAY,
    "TUESDAY": calendar.TUESDAY,
    "WEDNESDAY": calendar.WEDNESDAY,
    "THURSDAY": calendar.THURSDAY,
    "FRIDAY": calendar.FRIDAY,
    "SATURDAY": calendar.SATURDAY,
    "SUNDAY": calendar.SUNDAY,
    "range": range,
}
"""The names a ``--python`` expression may use besides its parameter."""

_BUILDER_HINT = (
    "the builder starts with schedule(), run_now(), run_delayed(timedelta(...)) or "
    "run_at(datetime(...)), e.g. lambda b: b.schedule().every(5).minutes() or "
    "lambda b: b.schedule().every_day().at_time(time(3, 0)).in_timezone('Europe/Rome')"
)


def compile_builder(text: str) -> Callable[[Any], object]:
    """The function a ``lambda b: ...`` expression defines, evaluated with
    :data:`SAFE_NAMES` only: no builtins, no private attributes, no other names.

    This keeps typing mistakes from doing anything but fail; it is not a sandbox for
    untrusted text.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise click.BadParameter(f"not a Python expression: {error.msg}.") from None
    function = tree.body
    if not isinstance(function, ast.Lambda) or len(function.args.args) != 1:
        raise click.BadParameter(f"expected a one-parameter lambda: {_BUILDER_HINT}.")
    if function.args.posonlyargs or function.args.kwonlyargs or function.args.vararg:
        raise click.BadParameter(f"expected a one-parameter lambda: {_BUILDER_HINT}.")
    parameter = function.args.args[0].arg
    for node in ast.walk(function.body):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise click.BadParameter(f"private attributes are not allowed ({node.attr!r}).")
        if isinstance(node, ast.Name) and node.id != parameter and node.id not in SAFE_NAMES:
            allowed = ", ".join(sorted(SAFE_NAMES))
            raise click.BadParameter(f"unknown name {node.id!r}; available: {allowed}.")
        if isinstance(node, ast.Lambda | ast.NamedExpr | ast.comprehension):
            raise click.BadParameter("only one lambda calling the builder is allowed.")
    code = compile(tree, "<--python>", "eval")
    built = eval(code, {"__builtins__": {}, **SAFE_NAMES})
    assert callable(built)
    return built  # type: ignore[no-any-return]


def _build(cron: str | None, python: str | None, zone: str | None) -> Any:
    from evertask.scheduling import build_schedule
    from evertask_abstractions import EverTaskError

    configure: Callable[[Any], object]
    if cron is not None:

        def configure(b: Any) -> object:
            stage = b.schedule().use_cron(cron)
            return stage.in_timezone(zone) if zone else stage

    else:
        assert python is not None
        try:
            configure = compile_builder(python)
        except click.BadParameter as error:
            error.param_hint = "'--python'"
            raise
    hint = "CRON" if cron is not None else "'--python'"
    try:
        return build_schedule(configure)
    except EverTaskError as error:
        raise click.BadParameter(str(error), param_hint=hint) from None
    except AttributeError as error:
        raise click.BadParameter(f"{error}: {_BUILDER_HINT}.", param_hint=hint) from None
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint=hint) from None


def _parse_after(value: str | None, zone: Any) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (2026-03-29T01:30:00+01:00).",
            param_hint="'--after'",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


@click.command()
@click.argument("cron", required=False)
@click.option(
    "--zone",
    "-z",
    default=None,
    metavar="IANA",
    help="Time zone of the CRON expression (default UTC), e.g. Europe/Rome.",
)
@click.option(
    "--count",
    "-n",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="How many occurrences.",
)
@click.option(
    "--python",
    "python",
    default=None,
    metavar="LAMBDA",
    help='A fluent schedule instead of CRON: "lambda b: b.schedule().every(5).minutes()".',
)
@click.option(
    "--after",
    default=None,
    metavar="TIME",
    help="Start from this ISO 8601 time instead of now (naive: in the schedule's zone).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def schedule(
    cron: str | None,
    zone: str | None,
    count: int,
    python: str | None,
    after: str | None,
    as_json: bool,
) -> None:
    """Print the next occurrences of a CRON expression (5 fields, or 6 with seconds first)
    or, with --python, of a fluent recurring schedule.

    \b
    Examples:
      evertask schedule "0 3 * * *" --zone Europe/Rome --count 3
      evertask schedule --python "lambda b: b.schedule().every_day().at_time(time(9, 30))"
    """
    if (cron is None) == (python is None):
        raise click.UsageError("Give a CRON expression or --python LAMBDA (exactly one).")
    if python is not None and zone is not None:
        raise click.UsageError(
            "--zone applies to a CRON expression; in --python call .in_timezone('Zone/Name')."
        )
    built = _build(cron, python, zone)
    start = _parse_after(after, built.zone)
    moments: list[datetime] = []
    first = built.first_run(start)
    if first is not None:
        moments.append(first)
        while len(moments) < count:
            following = built.next_occurrence(moments[-1], current_run=len(moments))
            if following is None:
                break
            moments.append(following)
    local = [m.astimezone(built.zone) for m in moments]
    if as_json:
        echo_json(
            {
                "schedule": str(built),
                "timezone": built.timezone,
                "after": start,
                "occurrences": local,
                "occurrences_utc": [m.astimezone(UTC) for m in moments],
            }
        )
        return
    print_table(
        str(built),
        ["#", f"Local time ({built.timezone})", "UTC"],
        (
            [
                i,
                f"{m.strftime('%Y-%m-%d %H:%M:%S %Z')} ({m.strftime('%a')})",
                u.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            ]
            for i, (m, u) in enumerate(zip(local, moments, strict=True), 1)
        ),
        caption=None if moments else "no occurrence: the series is over",
    )
