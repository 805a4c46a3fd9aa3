"""``RecurringSchedule``: the immutable schedule the builder produces and the engine evaluates.

All times in and out are aware datetimes; results are always in UTC. Nothing here reads the
clock: "now" is always an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from .calendar_math import load_zone, to_instant
from .cron import CronEvaluator
from .describe import describe
from .fluent import FluentEvaluator
from .model import CronRecurrence, EveryRecurrence, FirstRun, FirstRunKind, Recurrence
from .search import Evaluator, count_between, latest_at_or_before, safe_next
from .serialization import schedule_from_json, schedule_to_json
from .validation import fail, require_aware, require_max_runs

__all__ = ["DEFAULT_ANCHOR", "NextRun", "RecurringSchedule"]

DEFAULT_ANCHOR = datetime(2001, 1, 1)
"""Wall-clock grid anchor (a Monday, 1 January, midnight) used unless ``run_at(x).then()``."""

_TICK = timedelta(microseconds=1)
_SAMPLE = 64


@dataclass(frozen=True, slots=True)
class NextRun:
    """The next run of a series after an execution or a restart.

    ``next_run`` is None when the series is over. It may be in the past: that is the single
    catch-up run of the most recent missed occurrence (run it now). ``skipped`` counts the
    older missed occurrences that will never run (exact up to 1,000, estimated beyond).
    """

    next_run: datetime | None
    skipped: int = 0


@dataclass(frozen=True)
class RecurringSchedule:
    """A validated, immutable recurring (or one-shot) schedule.

    Build it with :class:`~evertask.scheduling.RecurringTaskBuilder` or
    :func:`~evertask.scheduling.build_schedule`; persist it with :meth:`to_json`.
    """

    recurrence: Recurrence | None = None
    start: FirstRun | None = None
    timezone: str = "UTC"
    run_until: datetime | None = None
    max_runs: int | None = None
    _zone: tzinfo = field(init=False, repr=False, compare=False)
    _evaluator: Evaluator | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone = load_zone(self.timezone)
        object.__setattr__(self, "_zone", zone)
        if self.recurrence is not None and not isinstance(
            self.recurrence, EveryRecurrence | CronRecurrence
        ):
            fail(f"recurrence: expected a fluent or cron recurrence, got {self.recurrence!r}.")
        if self.start is not None and not isinstance(self.start, FirstRun):
            fail(f"start: expected a FirstRun, got {self.start!r}.")
        if self.recurrence is None and self.start is None:
            fail(
                "The schedule is empty: call run_now(), run_delayed(delay) or run_at(when) for a "
                "single run, or schedule()/then() followed by a recurrence such as every_day()."
            )
        if self.run_until is not None:
            object.__setattr__(self, "run_until", require_aware(self.run_until, "run_until"))
        if self.max_runs is not None:
            require_max_runs(self.max_runs, f"max_runs({self.max_runs!r})")
        object.__setattr__(self, "_evaluator", self._compile())

    def _compile(self) -> Evaluator | None:
        recurrence = self.recurrence
        if isinstance(recurrence, CronRecurrence):
            return CronEvaluator(recurrence.expression, self._zone)
        if isinstance(recurrence, EveryRecurrence):
            return FluentEvaluator(recurrence, self._zone, self.anchor)
        return None

    # -- properties -------------------------------------------------------------------------

    @property
    def is_recurring(self) -> bool:
        """False for a single run (``run_at(x)``, ``run_now()`` or ``run_delayed(d)`` alone)."""
        return self.recurrence is not None

    @property
    def zone(self) -> tzinfo:
        """The ``tzinfo`` of :attr:`timezone`."""
        return self._zone

    @property
    def anchor(self) -> datetime:
        """The grid anchor (UTC): the ``run_at`` instant, else 2001-01-01 00:00 local time.

        Interval phases (which days of ``every(2).days()``, which minutes of
        ``every(7).minutes()``) and unspecified fields (``every_day()`` without ``at_time``
        runs at the anchor's time of day) come from it.
        """
        if self.start is not None and self.start.at is not None:
            return self.start.at
        return to_instant(DEFAULT_ANCHOR, self._zone)

    # -- occurrences ------------------------------------------------------------------------

    def next_occurrence(self, after: datetime, *, current_run: int = 0) -> datetime | None:
        """The next occurrence strictly after ``after`` (UTC), or None when the series is over.

        The series is over once ``current_run >= max_runs`` or at ``run_until`` (exclusive).
        A ``run_at(x)`` instant is the series' first occurrence; ``run_now``/``run_delayed``
        first runs depend on the dispatch time and are only produced by :meth:`first_run`.
        """
        moment = require_aware(after, "next_occurrence(after)")
        if self._exhausted(current_run):
            return None
        return self._bounded(self._series_next(moment))

    def occurrences(self, after: datetime, count: int, *, current_run: int = 0) -> list[datetime]:
        """Up to ``count`` occurrences strictly after ``after``, honouring the series limits."""
        moment = require_aware(after, "occurrences(after)")
        limit = max(count, 0)
        if self.max_runs is not None:
            limit = min(limit, max(self.max_runs - current_run, 0))
        result: list[datetime] = []
        while len(result) < limit:
            found = self._bounded(self._series_next(moment))
            if found is None:
                break
            result.append(found)
            moment = found
        return result

    def first_run(self, now: datetime) -> datetime | None:
        """When a freshly dispatched series runs first (None: it never runs).

        ``run_now()`` -> now; ``run_delayed(d)`` -> now + d; ``run_at(x)`` -> x, or, when x is
        past, the missed-run rule (x if the next occurrence is not yet due, else the most
        recent missed occurrence); ``schedule()`` -> the first occurrence at or after now.
        """
        moment = require_aware(now, "first_run(now)")
        if self.run_until is not None and self.run_until <= moment:
            return None
        return self._bounded(self._first_candidate(moment))

    def next_after_run(self, scheduled: datetime, current_run: int, now: datetime) -> NextRun:
        """The run after the occurrence scheduled at ``scheduled`` has executed.

        ``current_run`` counts real executions including this one. The result is computed
        from ``scheduled`` (no drift). If it is already past ``now`` (a long run, downtime),
        the most recent missed occurrence is returned once (run it now), older ones are
        skipped and counted, and the series continues on its grid.
        """
        base = require_aware(scheduled, "next_after_run(scheduled)")
        moment = require_aware(now, "next_after_run(now)")
        if self._exhausted(current_run):
            return NextRun(None)
        following = self._series_next(base)
        if following is None:
            return NextRun(None)
        if following >= moment:
            return NextRun(self._bounded(following))
        return self._catch_up(following, moment)

    def resume(self, stored_next_run: datetime | None, current_run: int, now: datetime) -> NextRun:
        """Restart recovery of a series whose persisted next run is ``stored_next_run``.

        Future: kept as is. Past but still current (its following occurrence is not yet due):
        kept (run it now). Older: the missed-run rule of :meth:`next_after_run`.
        """
        moment = require_aware(now, "resume(now)")
        if stored_next_run is None or self._exhausted(current_run):
            return NextRun(None)
        stored = require_aware(stored_next_run, "resume(stored_next_run)")
        if self.run_until is not None and stored >= self.run_until:
            return NextRun(None)
        if stored >= moment:
            return NextRun(stored)
        return self._from_past(stored, moment)

    def resume_at(
        self, stored_next_run: datetime | None, current_run: int, now: datetime
    ) -> datetime | None:
        """:meth:`resume` without the skipped count."""
        return self.resume(stored_next_run, current_run, now).next_run

    def validate(self, now: datetime) -> None:
        """Checks that need the current time; raises ``ScheduleError`` when it would never run."""
        moment = require_aware(now, "validate(now)")
        until = self.run_until
        if until is not None and until <= moment:
            fail(
                f"run_until({until.isoformat()}) is not after now ({moment.isoformat()}): the "
                "series would never run. Pass a later run_until, or drop it."
            )
        first = self._first_candidate(moment)
        if first is None:
            fail(f"The schedule '{self}' has no occurrence after {moment.isoformat()}.")
        if until is not None and first >= until:
            fail(
                f"The first run would be at {first.isoformat()}, which is not before "
                f"run_until({until.isoformat()}): the series would never run. Pass a later "
                "run_until, or an earlier first run."
            )

    def minimum_interval(self) -> timedelta:
        """The shortest gap between occurrences (a heuristic; ``timedelta.max`` for one run)."""
        evaluator = self._evaluator
        if evaluator is None:
            return timedelta.max
        grid = evaluator.grid()
        if grid is not None:
            return grid[1]
        shortest = timedelta.max
        previous = safe_next(evaluator, to_instant(DEFAULT_ANCHOR, self._zone))
        for _ in range(_SAMPLE):
            if previous is None:
                break
            following = safe_next(evaluator, previous)
            if following is None:
                break
            shortest = min(shortest, following - previous)
            previous = following
        return shortest

    # -- text and JSON ----------------------------------------------------------------------

    def __str__(self) -> str:
        return describe(self)

    def to_json(self) -> str:
        """Stable, versioned JSON (``{"v": 1, ...}``)."""
        return schedule_to_json(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> RecurringSchedule:
        """Parse :meth:`to_json` output; corrupt or invalid data raises ``ScheduleError``."""
        return schedule_from_json(text, RecurringSchedule)

    def __reduce__(self) -> tuple[type[RecurringSchedule], tuple[object, ...]]:
        """Pickle/copy by definition (the compiled evaluator is rebuilt)."""
        fields = (self.recurrence, self.start, self.timezone, self.run_until, self.max_runs)
        return (RecurringSchedule, fields)

    # -- internals --------------------------------------------------------------------------

    def _exhausted(self, current_run: int) -> bool:
        return self.max_runs is not None and current_run >= self.max_runs

    def _bounded(self, moment: datetime | None) -> datetime | None:
        if moment is None or (self.run_until is not None and moment >= self.run_until):
            return None
        return moment

    def _series_next(self, after: datetime) -> datetime | None:
        """Unbounded: the ``run_at`` instant (if after ``after``), then the recurrence."""
        at = self.start.at if self.start is not None else None
        if at is not None and after < at:
            return at
        if self._evaluator is None:
            return None
        return safe_next(self._evaluator, after)

    def _series_latest(self, moment: datetime) -> datetime | None:
        """Unbounded: the latest occurrence ``<= moment``."""
        at = self.start.at if self.start is not None else None
        found = None if self._evaluator is None else latest_at_or_before(self._evaluator, moment)
        if at is not None and (found is None or found <= at):
            return at if at <= moment else None
        return found

    def _first_candidate(self, now: datetime) -> datetime | None:
        start = self.start
        if start is None:
            return self._series_next(now - _TICK)
        if start.kind is FirstRunKind.NOW:
            return now
        if start.kind is FirstRunKind.DELAY:
            assert start.delay is not None
            return now + start.delay
        assert start.at is not None
        if start.at >= now:
            return start.at
        return self._from_past(start.at, now).next_run

    def _from_past(self, stored: datetime, now: datetime) -> NextRun:
        """``stored`` is past and never ran: run it if still current, else catch up."""
        following = self._series_next(stored)
        if following is None or following > now:
            return NextRun(stored)  # still current: run it now
        return self._catch_up(following, now, already_missed=1)

    def _catch_up(self, first_missed: datetime, now: datetime, already_missed: int = 0) -> NextRun:
        """``first_missed <= now``: keep only the most recent missed occurrence."""
        latest = self._series_latest(now)
        if latest is None or latest < first_missed:
            latest = first_missed
        until = self.run_until
        if until is not None and latest >= until:
            return NextRun(None, already_missed + self._count(first_missed, until))
        return NextRun(latest, already_missed + self._count(first_missed, latest))

    def _count(self, first: datetime, end: datetime) -> int:
        if self._evaluator is None:
            return 0
        return count_between(self._evaluator, first, end)
