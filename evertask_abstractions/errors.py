"""Typed errors raised by EverTask. Every message says what is wrong and how to fix it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ratelimit import RateLimitPolicy

__all__ = [
    "ConfigurationError",
    "DuplicateHandlerError",
    "EverTaskError",
    "HostNotRunningError",
    "PersistenceError",
    "QueueFullError",
    "RateLimitRejectedError",
    "ScheduleError",
    "TaskKeyConflictError",
    "TaskNotFoundError",
    "TaskNotRegisteredError",
    "TaskResultError",
    "TaskSerializationError",
    "TaskTimeoutError",
]


class EverTaskError(Exception):
    """Base class of every error EverTask raises on purpose."""


class ConfigurationError(EverTaskError, ValueError):
    """An option or registration is invalid; raised at configuration or build time."""


class DuplicateHandlerError(ConfigurationError):
    """Two handlers were discovered for one task type."""


class TaskNotRegisteredError(EverTaskError, LookupError):
    """A task type has no registered handler."""


class TaskNotFoundError(EverTaskError, KeyError):
    """No stored task has this id."""

    def __init__(self, task_id: object, detail: str = "") -> None:
        self.task_id = task_id
        super().__init__(f"No task with id {task_id}.{' ' + detail if detail else ''}")

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0])


class TaskSerializationError(EverTaskError, ValueError):
    """A task payload cannot be turned into JSON (or read back from it)."""


class TaskResultError(EverTaskError, ValueError):
    """A task's result cannot be read: the task is unknown, not finished, failed or
    cancelled, or its stored result does not fit the requested type; or a handler returned
    a value that cannot be serialized to JSON (the run fails with this error)."""


class ScheduleError(EverTaskError, ValueError):
    """A delay, a time or a recurring schedule is invalid."""


class QueueFullError(EverTaskError):
    """A queue configured with ``QueueFullBehavior.THROW_EXCEPTION`` is full.

    Nothing was persisted and nothing runs: the dispatch is refused before its row is
    written, so the caller may retry it later.
    """

    def __init__(self, queue_name: str, task_id: uuid.UUID) -> None:
        super().__init__(
            f"Queue {queue_name!r} is full; task {task_id} was not accepted (nothing was "
            "persisted). Raise the queue's channel capacity, add consumers, or choose "
            "QueueFullBehavior.WAIT / FALLBACK_TO_DEFAULT."
        )
        self.queue_name = queue_name
        self.task_id = task_id


class PersistenceError(EverTaskError):
    """The storage could not persist a task; nothing was run unpersisted."""


class TaskKeyConflictError(PersistenceError):
    """Another task already holds this task key (raised by storages on a unique-key race)."""

    def __init__(self, task_key: str) -> None:
        super().__init__(f"A task with task_key {task_key!r} already exists.")
        self.task_key = task_key


class TaskTimeoutError(EverTaskError, TimeoutError):
    """One attempt of a handler ran longer than its timeout. Timeouts are not retried by default."""


class HostNotRunningError(EverTaskError, RuntimeError):
    """The dispatcher was used while the host is not started."""


class RateLimitRejectedError(EverTaskError):
    """A task's rate-limit budget had no slot it could wait for: the next free slot lay
    beyond the policy's ``max_reservation_horizon``, the policy discards overflow
    (``RateLimitOverflowBehavior.DISCARD``), or (recurring) it lay past ``run_until``.

    A one-shot task fails with this error (``on_error`` receives it); it is never retried.
    """

    def __init__(self, key: str, slot: datetime | None, policy: RateLimitPolicy) -> None:
        when = f"at {slot.isoformat()}" if slot is not None else "later"
        super().__init__(
            f"Rate limit key {key!r} has no slot the task may wait for (the next free one is "
            f"{when}; {policy!r}), so the task was rejected. Raise permits, burst or "
            "max_reservation_horizon, or use RateLimitOverflowBehavior.WAIT_FOR_CAPACITY."
        )
        self.key = key
        self.slot = slot
        self.policy = policy

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.key, self.slot, self.policy))
