"""EverTask abstractions: task and handler contracts, dispatcher protocol, retry policies.

This package (the ``evertask-abstractions`` distribution) depends on pydantic only, so
projects that merely define tasks and handlers can share them without installing the engine.
"""

from .cancellation import CancellationToken, CancellationTokenSource, TaskCancelledError
from .dispatcher import TaskDispatcher, When
from .enums import AuditLevel, ContinueWhen, QueuedTaskStatus, QueueFullBehavior
from .errors import (
    ConfigurationError,
    DuplicateHandlerError,
    EverTaskError,
    HostNotRunningError,
    PersistenceError,
    QueueFullError,
    RateLimitRejectedError,
    ScheduleError,
    TaskKeyConflictError,
    TaskNotFoundError,
    TaskNotRegisteredError,
    TaskResultError,
    TaskSerializationError,
    TaskTimeoutError,
)
from .handler import EverTaskHandler, TaskLogger
from .processes import (
    CpuBoundHandler,
    ProcessPoolClosedError,
    ProcessTaskError,
    RemoteTraceback,
    WorkerCrashedError,
)
from .ratelimit import RateLimitedTask, RateLimitOverflowBehavior, RateLimitPolicy
from .recurring import (
    BuildableSchedulerBuilder,
    DailyTimeSchedulerBuilder,
    EverySchedulerBuilder,
    HourSchedulerBuilder,
    IntervalSchedulerBuilder,
    MinuteSchedulerBuilder,
    MonthlySchedulerBuilder,
    RecurringTaskBuilder,
    ThenableSchedulerBuilder,
    WeeklySchedulerBuilder,
)
from .retry import (
    ExponentialRetryPolicy,
    FilteredRetryPolicy,
    LinearRetryPolicy,
    NoRetryPolicy,
    OnRetry,
    RetryPolicy,
    RetryWait,
    wait_before_retry,
)
from .task import EverTask
from .workflow import BatchInfo, BatchKind, BatchStatus, Step, Workflow

__all__ = [
    "AuditLevel",
    "BatchInfo",
    "BatchKind",
    "BatchStatus",
    "BuildableSchedulerBuilder",
    "CancellationToken",
    "CancellationTokenSource",
    "ConfigurationError",
    "ContinueWhen",
    "CpuBoundHandler",
    "DailyTimeSchedulerBuilder",
    "DuplicateHandlerError",
    "EverTask",
    "EverTaskError",
    "EverTaskHandler",
    "EverySchedulerBuilder",
    "ExponentialRetryPolicy",
    "FilteredRetryPolicy",
    "HostNotRunningError",
    "HourSchedulerBuilder",
    "IntervalSchedulerBuilder",
    "LinearRetryPolicy",
    "MinuteSchedulerBuilder",
    "MonthlySchedulerBuilder",
    "NoRetryPolicy",
    "OnRetry",
    "PersistenceError",
    "ProcessPoolClosedError",
    "ProcessTaskError",
    "QueueFullBehavior",
    "QueueFullError",
    "QueuedTaskStatus",
    "RateLimitOverflowBehavior",
    "RateLimitPolicy",
    "RateLimitRejectedError",
    "RateLimitedTask",
    "RecurringTaskBuilder",
    "RemoteTraceback",
    "RetryPolicy",
    "RetryWait",
    "ScheduleError",
    "Step",
    "TaskCancelledError",
    "TaskDispatcher",
    "TaskKeyConflictError",
    "TaskLogger",
    "TaskNotFoundError",
    "TaskNotRegisteredError",
    "TaskResultError",
    "TaskSerializationError",
    "TaskTimeoutError",
    "ThenableSchedulerBuilder",
    "WeeklySchedulerBuilder",
    "When",
    "WorkerCrashedError",
    "Workflow",
    "wait_before_retry",
]
