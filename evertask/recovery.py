"""Startup recovery: resume every recoverable row, in keyset pages, beside the consumers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from evertask_abstractions import ScheduleError, TaskNotRegisteredError, TaskSerializationError

from .run import TaskRun
from .storage.models import QueuedTask

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["MAX_RECOVERY_ATTEMPTS", "RecoveryReport", "recover"]

log = logging.getLogger("evertask.recovery")

MAX_RECOVERY_ATTEMPTS = 5
"""Starts on which a row's payload may fail to load for a transient reason before it is
marked Failed; a row that cannot be decoded (bad JSON, wrong shape, unregistered type)
is marked Failed at the first start."""
PAGE_SIZE = 100


@dataclass
class RecoveryReport:
    """What one recovery pass did."""

    recovered: int = 0
    scheduled: int = 0
    transient_failures: int = 0
    poisoned: int = 0
    finished_series: int = 0
    seconds: float = 0.0


async def recover(engine: Engine, cutoff: datetime | None = None) -> RecoveryReport:
    """Resume the rows that were pending when the previous process stopped or crashed.

    Rows created at or after ``cutoff`` (by default: when this pass begins; the host passes
    the instant before it accepted its first dispatch) are live dispatches and are left
    alone. Each page is
    split by queue and the queues are fed concurrently, so one saturated queue cannot hold
    back the others.
    """
    report = RecoveryReport()
    storage = engine.storage
    if storage is None:
        return report
    started = time.perf_counter()
    if cutoff is None:
        cutoff = engine.clock.now()
    last_created = None
    last_id = None
    while True:
        page = await storage.retrieve_pending(last_created, last_id, PAGE_SIZE)
        if not page:
            break
        last_created, last_id = page[-1].created_at_utc, page[-1].id
        rows = [r for r in page if r.created_at_utc < cutoff]
        groups: dict[str, list[QueuedTask]] = defaultdict(list)
        for row in rows:
            groups[row.queue_name].append(row)
        await asyncio.gather(*(_recover_group(engine, g, report) for g in groups.values()))
        if len(rows) < len(page):
            break
    report.seconds = time.perf_counter() - started
    if report.recovered or report.poisoned or report.transient_failures:
        log.info(
            "Recovery: %d task(s) resumed (%d scheduled), %d transient failure(s), %d poisoned, "
            "%d finished series, in %.2f s.",
            report.recovered,
            report.scheduled,
            report.transient_failures,
            report.poisoned,
            report.finished_series,
            report.seconds,
        )
    return report


async def _recover_group(engine: Engine, rows: list[QueuedTask], report: RecoveryReport) -> None:
    for row in rows:
        if engine.state.value not in ("running", "starting"):
            return
        try:
            await _recover_row(engine, row, report)
        except Exception as exc:  # a storage hiccup on one row never stops recovery
            report.transient_failures += 1
            log.warning("Could not recover task %s: %r", row.id, exc)


async def _poison(engine: Engine, row: QueuedTask, reason: str, report: RecoveryReport) -> None:
    storage = engine.storage
    assert storage is not None
    report.poisoned += 1
    log.error("Task %s (%s) cannot be recovered and is marked Failed: %s", row.id, row.type, reason)
    await storage.set_recurring_task_poisoned(row.id, reason, row.audit_level)


async def _recover_row(engine: Engine, row: QueuedTask, report: RecoveryReport) -> None:
    storage = engine.storage
    assert storage is not None
    if row.id.int in engine.in_flight or engine.scheduler.is_scheduled(row.id):
        return  # a live dispatch already owns it
    try:
        descriptor, task = engine.registry.load_task(row.type, row.request)
    except TaskNotRegisteredError as exc:
        await _poison(engine, row, f"Unable to load the task type: {exc}", report)
        return
    except TaskSerializationError as exc:
        if isinstance(exc.__cause__, ValueError):
            # bad JSON or a shape the class refuses (pydantic's ValidationError is a
            # ValueError): the same text fails the same way on every start
            await _poison(engine, row, f"Unreadable payload: {exc}", report)
            return
        # anything else came from a validator of the task (a resource it reads may be
        # back on a later start): counted, Failed after MAX_RECOVERY_ATTEMPTS starts
        count = await storage.increment_recovery_failure(row.id)
        if count >= MAX_RECOVERY_ATTEMPTS:
            await _poison(
                engine, row, f"Payload not loadable after {count} attempts: {exc}", report
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
    now = engine.clock.now()
    schedule = None
    when = row.scheduled_execution_utc
    if row.recurring_task is not None:
        from .scheduling import RecurringSchedule

        try:
            schedule = RecurringSchedule.from_json(row.recurring_task)
        except ScheduleError as exc:
            await _poison(engine, row, f"Corrupt recurring schedule: {exc}", report)
            return
        if schedule.is_recurring:
            when = engine.recurring.resume(row, schedule, now)
            if when is None:
                report.finished_series += 1
                await storage.set_recurring_series_completed(
                    row.id, row.execution_time_ms, row.audit_level
                )
                return
    queue = engine.queues.resolve(row.queue_name, row.is_recurring)
    run = TaskRun(
        row.id,
        task,
        descriptor,
        queue.name,
        row.audit_level,
        execution_time=when,
        schedule=schedule,
        current_run=row.current_run_count or 0,
        task_key=row.task_key,
        persisted=True,
        trace_context=row.trace_context,
    )
    run.generation = engine.cancels.generation(row.id)
    if row.recovery_dispatch_failure_count:
        await storage.clear_recovery_failure(row.id)
    report.recovered += 1
    if when is not None and when > now:
        report.scheduled += 1
        engine.scheduler.schedule(run, when)
        return
    if schedule is not None and schedule.is_recurring:
        run.execution_time = when
    await queue.reserve()
    try:
        ok = await storage.try_set_queued_if_recoverable(row.id, row.audit_level)
    except BaseException:
        queue.release()
        raise
    if not ok or row.id.int in engine.in_flight or engine.cancels.is_stale(run):
        queue.release()
        return
    engine.in_flight.add(row.id.int)
    queue.put_reserved(run)
