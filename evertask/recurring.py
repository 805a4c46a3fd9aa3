"""Recurring series in the engine: building schedules, the next occurrence after each run,
re-registration by task key."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from evertask_abstractions import AuditLevel, EverTask, QueuedTaskStatus, ScheduleError

from .clock import Clock
from .inflight import CancelRegistry, InFlight
from .registry import HandlerDescriptor
from .run import TaskRun
from .scheduler import TimerScheduler
from .storage.models import QueuedTask
from .storage.protocol import TaskStorage

if TYPE_CHECKING:
    from .scheduling import RecurringSchedule

__all__ = ["RecurringCoordinator"]

log = logging.getLogger("evertask.recurring")

_TICK = timedelta(microseconds=1)


class RecurringCoordinator:
    """Keeps recurring series going: one occurrence at a time, computed from scheduled times."""

    def __init__(
        self,
        *,
        storage: TaskStorage | None,
        clock: Clock,
        cancels: CancelRegistry,
        scheduler: TimerScheduler,
        inflight: InFlight,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._cancels = cancels
        self._scheduler = scheduler
        self._inflight = inflight

    def build(self, configure: Callable[[Any], object], now: datetime) -> RecurringSchedule:
        """Build and validate a schedule from a builder callable (clear errors at dispatch)."""
        from .scheduling import build_schedule

        try:
            schedule = build_schedule(configure)
        except ScheduleError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            raise ScheduleError(f"Invalid recurring schedule: {exc}") from exc
        schedule.validate(now)
        return schedule

    async def after_run(self, run: TaskRun, succeeded: bool, elapsed_ms: float) -> None:
        """Count the run, store the next occurrence and schedule it (no drift: computed from
        the occurrence's scheduled time). A failed run does not stop the series."""
        schedule = run.schedule
        assert schedule is not None
        tid = run.id
        storage = self._storage if run.persisted else None
        if self._cancels.is_stale(run):
            return
        if storage is not None:
            current = await storage.get_current_run_count(tid)
        else:
            current = run.current_run
        runs_done = current + 1
        now = self._clock.now()
        scheduled = run.execution_time or now
        result = schedule.next_after_run(scheduled, runs_done, now)
        next_run = result.next_run
        if result.skipped:
            log.info(
                "Recurring task %s skipped %d missed occurrence(s); next run at %s.",
                tid,
                result.skipped,
                next_run,
            )
        if storage is not None:
            try:
                if succeeded:
                    await storage.complete_recurring_run(tid, elapsed_ms, next_run, run.audit_level)
                else:
                    await storage.update_current_run(tid, elapsed_ms, next_run, run.audit_level)
            except Exception as exc:
                # the occurrence stays un-advanced in storage: recovery re-runs it after a restart
                log.error(
                    "Could not record the run of recurring task %s (%r); the series "
                    "continues in memory and is reconciled at the next start.",
                    tid,
                    exc,
                    exc_info=exc,
                )
        if next_run is None:
            log.info("Recurring task %s finished its series after %d run(s).", tid, runs_done)
            return
        if self._cancels.is_stale(run):
            return
        self._scheduler.schedule(run.next_occurrence(next_run, runs_done), next_run)

    async def skip_occurrence(self, run: TaskRun, after: datetime) -> None:
        """Skip a run's occurrence without counting it (its rate limit rejected it): the
        series goes on with its first occurrence after ``after`` (nothing is written unless
        the series is over)."""
        schedule = run.schedule
        assert schedule is not None
        if self._cancels.is_stale(run):
            return
        next_run = schedule.next_occurrence(after - _TICK, current_run=run.current_run)
        if next_run is None:
            storage = self._storage if run.persisted else None
            log.info("Recurring task %s finished its series (rate limit).", run.id)
            if storage is not None:
                await storage.set_recurring_series_completed(run.id, 0.0, run.audit_level)
            return
        self._scheduler.schedule(run.next_occurrence(next_run, run.current_run), next_run)

    async def update_by_key(
        self,
        existing: QueuedTask,
        task: EverTask,
        descriptor: HandlerDescriptor,
        level: AuditLevel,
        schedule: RecurringSchedule | None,
        key: str,
        now: datetime,
        *,
        running: bool,
        local: bool,
        make_run: Callable[..., TaskRun],
        make_row: Callable[[TaskRun, QueuedTaskStatus, datetime], QueuedTask],
    ) -> uuid.UUID:
        """Re-registration of a recurring key: update in place, keeping the next run and the
        run count; a running occurrence is not disturbed; a Cancelled series is revived with
        the new definition. Unless ``local`` (this node owns the series now), only the
        stored definition changes: the live node that owns the series runs it."""
        storage = self._storage
        assert storage is not None and schedule is not None
        tid = existing.id
        revive = existing.status is QueuedTaskStatus.CANCELLED
        current_run = 0 if revive else (existing.current_run_count or 0)
        if revive:
            next_run = schedule.first_run(now)
        elif existing.next_run_utc is not None:
            next_run = schedule.resume_at(existing.next_run_utc, current_run, now)
        else:
            next_run = (
                schedule.first_run(now)
                if current_run == 0
                else schedule.next_occurrence(now, current_run=current_run)
            )
        run = make_run(tid, task, descriptor, level, next_run, schedule, key, current_run)
        row = make_row(run, existing.status, existing.created_at_utc)
        row.next_run_utc = next_run
        await storage.update_task(row, revive=revive)
        if not local:
            return tid
        if running and not revive:
            # the running occurrence finishes with the old definition; the next one uses the
            # stored (new) definition when recovered, and in memory from now on (a revived
            # series is scheduled below: its occurrence in flight was cancelled, so it
            # schedules nothing, and the new run waits for it to end, see _enqueue_one)
            pending = self._inflight.execution(tid)
            if pending is not None:
                pending.run.schedule = schedule
                pending.run.task = task
            return tid
        if next_run is None:
            await storage.set_recurring_series_completed(tid, 0.0, level)
            self._scheduler.unschedule(tid)
            return tid
        self._scheduler.schedule(run, max(next_run, now))
        return tid

    def resume(
        self, row: QueuedTask, schedule: RecurringSchedule, now: datetime
    ) -> datetime | None:
        """When a recovered recurring row runs next (``None``: the series is over)."""
        stored = row.next_run_utc or row.scheduled_execution_utc
        current = row.current_run_count or 0
        if stored is None:
            return (
                schedule.first_run(now)
                if current == 0
                else schedule.next_occurrence(now, current_run=current)
            )
        return schedule.resume_at(stored, current, now)
