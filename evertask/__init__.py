"""EverTask for Python: in-process background tasks for asyncio applications.

Fire-and-forget, delayed, scheduled and recurring tasks, persisted so they survive
restarts, executed by per-queue worker pools inside the application process.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evertask_abstractions import (
    AuditLevel,
    CancellationToken,
    EverTask,
    EverTaskHandler,
    ExponentialRetryPolicy,
    LinearRetryPolicy,
    QueuedTaskStatus,
    QueueFullBehavior,
    TaskDispatcher,
)

from .builder import EverTaskServiceBuilder, add_evertask
from .clock import Clock, ManualClock, SystemClock
from .dispatcher import Dispatcher
from .events import EventBus, EventKind, Subscription, TaskEvent
from .host import EverTaskHost, HostComponent, UnknownQueueError
from .ids import uuid7
from .lifecycle import HostState
from .observe import DispatchScope, ExecutionScope, Outcome, TaskObserver
from .options import (
    EverTaskOptions,
    PersistentLoggerOptions,
    QueueConfiguration,
    RateLimiterOptions,
)
from .ratelimit import (
    InMemoryKeyedRateLimiter,
    KeyedRateLimiter,
    RateLimitDecision,
    RateLimitOutcome,
)
from .recovery import RecoveryReport
from .storage import MemoryTaskStorage, QueuedTask, TaskStorage
from .threaded import HostThread, start_host_in_thread
from .throttling import ParkedTask, RateLimitGate
from .version import __version__ as __version__

if TYPE_CHECKING:
    from .scheduling import RecurringSchedule

__all__ = [
    "AuditLevel",
    "CancellationToken",
    "Clock",
    "DispatchScope",
    "Dispatcher",
    "EventBus",
    "EventKind",
    "EverTask",
    "EverTaskHandler",
    "EverTaskHost",
    "EverTaskOptions",
    "EverTaskServiceBuilder",
    "ExecutionScope",
    "ExponentialRetryPolicy",
    "HostComponent",
    "HostState",
    "HostThread",
    "InMemoryKeyedRateLimiter",
    "KeyedRateLimiter",
    "LinearRetryPolicy",
    "ManualClock",
    "MemoryTaskStorage",
    "Outcome",
    "ParkedTask",
    "PersistentLoggerOptions",
    "QueueConfiguration",
    "QueueFullBehavior",
    "QueuedTask",
    "QueuedTaskStatus",
    "RateLimitDecision",
    "RateLimitGate",
    "RateLimitOutcome",
    "RateLimiterOptions",
    "RecoveryReport",
    "Subscription",
    "SystemClock",
    "TaskDispatcher",
    "TaskEvent",
    "TaskObserver",
    "TaskStorage",
    "UnknownQueueError",
    "add_evertask",
    "build_schedule",
    "start_host_in_thread",
    "uuid7",
]


def build_schedule(
    configure: Callable[[Any], object], *, now: datetime | None = None
) -> RecurringSchedule:
    """Preview a recurring schedule: ``build_schedule(lambda b: b.schedule().every_day())``.

    Returns the same schedule object the dispatcher uses: ``next_occurrence(after)``,
    ``occurrences(after, count)`` and ``str()``. With ``now`` it is also validated as a
    dispatch at that time would be (e.g. ``run_until`` in the past is an error).
    """
    from .scheduling import build_schedule as _build

    return _build(configure, now=now)
