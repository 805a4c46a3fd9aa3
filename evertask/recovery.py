"""Recovery: resume the rows this node claims (at start, and when it takes over from other
nodes), beside the consumers."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from evertask_abstractions import ScheduleError, TaskNotRegisteredError, TaskSerializationError

from .clock import Clock
from .cluster import Membership
from .inflight import CancelRegistry, InFlight
from .intake import Intake
from .lifecycle import HostState, Lifecycle
from .queues import QueueManager
from .recurring import RecurringCoordinator
from .registry import HandlerRegistry
from .run import TaskRun
from .scheduler import TimerScheduler
from .storage.models import QueuedTask
from .storage.protocol import TaskStorage

__all__ = ["MAX_RECOVERY_ATTEMPTS", "Recovery", "RecoveryReport"]

log = logging.getLogger("evertask.recovery")

MAX_RECOVERY_ATTEMPTS = 5
"""Starts on which a row's payload may fail to load for a transient reason before it is
marked Failed; a row that cannot be decoded (bad JSON, wrong shape, unregistered type)
is marked Failed at the first start."""
RETRY_DELAY = timedelta(seconds=2)


@dataclass
class RecoveryReport:
    """What one recovery pass did."""

    recovered: int = 0
    scheduled: int = 0
    transient_failures: int = 0
    poisoned: int = 0
    finished_series: int = 0
    seconds: float = 0.0


class Recovery:
    """Resumes the rows that were pending when the previous process stopped or crashed."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        registry: HandlerRegistry,
        queues: QueueManager,
        storage: TaskStorage | None,
        clock: Clock,
        inflight: InFlight,
        cancels: CancelRegistry,
        scheduler: TimerScheduler,
        intake: Intake,
        recurring: RecurringCoordinator,
        membership: Membership | None,
    ) -> None:
        self._lifecycle = lifecycle
        self._registry = registry
        self._queues = queues
        self._storage = storage
        self._clock = clock
        self._inflight = inflight
        self._cancels = cancels
        self._scheduler = scheduler
        self._intake = intake
        self._recurring = recurring
        self._membership = membership
        self.report = RecoveryReport()
        """What recovery and takeovers did since the start (the startup pass's own report
        is returned by :meth:`run`)."""

    async def run(self) -> RecoveryReport:
        """The startup pass: claim the rows no live node owns (the rows this host's
        previous process left, those of dead nodes, those nobody owns) and resume them:
        every row not due yet, and of the due ones what the queues have room for (the
        cluster's polls take the rest, here or on other nodes).

        A live node's rows, this host's own dispatches included, are never claimed.
        """
        report = self.report = RecoveryReport()
        membership = self._membership
        if membership is None or not membership.node.runs_workers:
            return report
        started = time.perf_counter()
        try:
            await membership.claim(due_only=False)
        finally:
            membership.recovered()
        report.seconds = time.perf_counter() - started
        if report.recovered or report.poisoned or report.transient_failures:
            log.info(
                "Recovery: %d task(s) resumed (%d scheduled), %d transient failure(s), "
                "%d poisoned, %d finished series, in %.2f s.",
                report.recovered,
                report.scheduled,
                report.transient_failures,
                report.poisoned,
                report.finished_series,
                report.seconds,
            )
        return report

    async def adopt(self, rows: list[QueuedTask]) -> None:
        """Resume rows this node has just claimed, all at once: each waits for a slot of
        its own queue (in order), and their Queued writes share commits, so one saturated
        queue cannot hold back the others."""
        await asyncio.gather(*(self._recover_one(row) for row in rows))

    async def _recover_one(self, row: QueuedTask) -> None:
        if self._lifecycle.state not in (HostState.RUNNING, HostState.STARTING):
            return
        try:
            await self._recover_row(row, self.report)
        except Exception as exc:  # a storage hiccup on one row never stops recovery
            self.report.transient_failures += 1
            log.warning("Could not recover task %s: %r", row.id, exc)

    async def _poison(self, row: QueuedTask, reason: str, report: RecoveryReport) -> None:
        storage = self._storage
        assert storage is not None
        report.poisoned += 1
        log.error(
            "Task %s (%s) cannot be recovered and is marked Failed: %s", row.id, row.type, reason
        )
        await storage.set_recurring_task_poisoned(row.id, reason, row.audit_level)

    async def _recover_row(self, row: QueuedTask, report: RecoveryReport) -> None:
        storage = self._storage
        assert storage is not None
        if row.id in self._inflight or self._scheduler.is_scheduled(row.id):
            return  # a live dispatch already owns it
        try:
            descriptor, task = self._registry.load_task(row.type, row.request)
        except TaskNotRegisteredError as exc:
            await self._poison(row, f"Unable to load the task type: {exc}", report)
            return
        except TaskSerializationError as exc:
            if isinstance(exc.__cause__, ValueError):
                # bad JSON or a shape the class refuses (pydantic's ValidationError is a
                # ValueError): the same text fails the same way on every start
                await self._poison(row, f"Unreadable payload: {exc}", report)
                return
            # anything else came from a validator of the task (a resource it reads may be
            # back on a later start): counted, Failed after MAX_RECOVERY_ATTEMPTS starts
            count = await storage.increment_recovery_failure(row.id)
            if count >= MAX_RECOVERY_ATTEMPTS:
                await self._poison(
                    row, f"Payload not loadable after {count} attempts: {exc}", report
                )
            else:
                report.transient_failures += 1
                log.warning(
                    "Task %s payload could not be loaded (attempt %d of %d): %s",
                    row.id,
                    count,
                    MAX_RECOVERY_ATTEMPTS,
                    exc,
                )
            return
        now = self._clock.now()
        schedule = None
        when = row.scheduled_execution_utc
        if row.recurring_task is not None:
            from .scheduling import RecurringSchedule

            try:
                schedule = RecurringSchedule.from_json(row.recurring_task)
            except ScheduleError as exc:
                await self._poison(row, f"Corrupt recurring schedule: {exc}", report)
                return
            if schedule.is_recurring:
                when = self._recurring.resume(row, schedule, now)
                if when is None:
                    report.finished_series += 1
                    await storage.set_recurring_series_completed(
                        row.id, row.execution_time_ms, row.audit_level
                    )
                    return
        run = TaskRun(
            id=row.id,
            task=task,
            descriptor=descriptor,
            queue_name=self._queues.resolve(row.queue_name, row.is_recurring).name,
            audit_level=row.audit_level,
            persisted=True,
            execution_time=when,
            schedule=schedule,
            current_run=row.current_run_count or 0,
            task_key=row.task_key,
            trace_context=row.trace_context,
            generation=self._cancels.generation(row.id),
            parent_task_id=row.parent_task_id,
        )
        if row.recovery_dispatch_failure_count:
            await storage.clear_recovery_failure(row.id)
        report.recovered += 1
        if when is not None and when > now:
            report.scheduled += 1
            self._scheduler.schedule(run, when)
            return
        try:
            await self._intake.admit(run, wait_for_slot=True)
        except Exception as exc:  # the row is this node's now: try again on a timer
            log.warning("Could not queue recovered task %s (%r); retrying in 2 s.", row.id, exc)
            self._scheduler.schedule(run, now + RETRY_DELAY)
