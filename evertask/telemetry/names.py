"""Span, attribute and metric names (OpenTelemetry messaging semantic conventions plus
``evertask.*`` attributes). Importing this module does not import OpenTelemetry."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_AUDIT_LEVEL",
    "ATTR_DELAY_MS",
    "ATTR_DESTINATION",
    "ATTR_DISPATCH_KIND",
    "ATTR_ERROR_TYPE",
    "ATTR_HANDLER",
    "ATTR_MESSAGE_ID",
    "ATTR_OPERATION_NAME",
    "ATTR_OPERATION_TYPE",
    "ATTR_OUTCOME",
    "ATTR_RECURRING",
    "ATTR_SYSTEM",
    "ATTR_TASK_KEY",
    "ATTR_TASK_TYPE",
    "EVENT_RETRY",
    "INSTRUMENTATION_NAME",
    "METRIC_CANCELLED",
    "METRIC_COMPLETED",
    "METRIC_DISPATCHED",
    "METRIC_DURATION",
    "METRIC_FAILED",
    "METRIC_QUEUE_DEPTH",
    "METRIC_QUEUE_WAIT",
    "METRIC_RETRIED",
    "METRIC_THROTTLED",
    "METRIC_TIMERS",
    "OPERATION_PROCESS",
    "OPERATION_PUBLISH",
    "SYSTEM",
]

INSTRUMENTATION_NAME: Final = "evertask"
SYSTEM: Final = "evertask"
OPERATION_PUBLISH: Final = "publish"
OPERATION_PROCESS: Final = "process"

# messaging semantic conventions
ATTR_SYSTEM: Final = "messaging.system"
ATTR_DESTINATION: Final = "messaging.destination.name"
ATTR_MESSAGE_ID: Final = "messaging.message.id"
ATTR_OPERATION_TYPE: Final = "messaging.operation.type"
ATTR_OPERATION_NAME: Final = "messaging.operation.name"
ATTR_ERROR_TYPE: Final = "error.type"

# EverTask's own
ATTR_TASK_TYPE: Final = "evertask.task.type"
ATTR_HANDLER: Final = "evertask.handler"
ATTR_ATTEMPT: Final = "evertask.attempt"
ATTR_RECURRING: Final = "evertask.recurring"
ATTR_TASK_KEY: Final = "evertask.task_key"
ATTR_AUDIT_LEVEL: Final = "evertask.audit_level"
ATTR_OUTCOME: Final = "evertask.outcome"
ATTR_DISPATCH_KIND: Final = "evertask.dispatch.kind"
ATTR_DELAY_MS: Final = "evertask.retry.delay_ms"

EVENT_RETRY: Final = "evertask.retry"

METRIC_DISPATCHED: Final = "evertask.tasks.dispatched"
METRIC_COMPLETED: Final = "evertask.tasks.completed"
METRIC_FAILED: Final = "evertask.tasks.failed"
METRIC_RETRIED: Final = "evertask.tasks.retried"
METRIC_CANCELLED: Final = "evertask.tasks.cancelled"
METRIC_DURATION: Final = "evertask.task.duration"
METRIC_QUEUE_WAIT: Final = "evertask.task.queue_wait"
METRIC_QUEUE_DEPTH: Final = "evertask.queue.depth"
METRIC_TIMERS: Final = "evertask.scheduler.timers"
METRIC_THROTTLED: Final = "evertask.node.throttled"
