"""Enumerations shared by tasks, handlers, storage and the monitoring API."""

from __future__ import annotations

from enum import Enum, IntEnum

__all__ = ["AuditLevel", "ContinueWhen", "QueueFullBehavior", "QueuedTaskStatus"]


class QueuedTaskStatus(str, Enum):
    """Lifecycle status of a persisted task; stored by name."""

    WAITING_QUEUE = "WaitingQueue"
    QUEUED = "Queued"
    IN_PROGRESS = "InProgress"
    PENDING = "Pending"
    CANCELLED = "Cancelled"
    COMPLETED = "Completed"
    FAILED = "Failed"
    SERVICE_STOPPED = "ServiceStopped"
    WAITING_PARENT = "WaitingParent"
    """A continuation waiting for its parent task to finish (see docs/workflows.md)."""

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for the states a one-shot task never leaves."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {QueuedTaskStatus.COMPLETED, QueuedTaskStatus.FAILED, QueuedTaskStatus.CANCELLED}
)


class AuditLevel(IntEnum):
    """How much audit history a task writes (EverTask's numbering).

    - ``FULL``: a status-audit row for every transition, a runs-audit row for every recurring run.
    - ``MINIMAL``: status-audit rows only for real errors, runs-audit rows always.
    - ``ERRORS_ONLY``: audit rows only for real errors.
    - ``NONE``: no audit rows (the task row itself is still updated).
    """

    FULL = 0
    MINIMAL = 1
    ERRORS_ONLY = 2
    NONE = 3


class QueueFullBehavior(str, Enum):
    """What an immediate dispatch does when its queue is full."""

    WAIT = "Wait"
    FALLBACK_TO_DEFAULT = "FallbackToDefault"
    THROW_EXCEPTION = "ThrowException"


class ContinueWhen(str, Enum):
    """When a continuation runs, by the outcome of its parent (stored by name).

    - ``SUCCEEDED``: the parent completed.
    - ``FAILED``: the parent failed (its retries exhausted, or it timed out).
    - ``FINISHED``: either.

    A cancelled parent never runs its continuations: they are cancelled with it. A
    continuation whose condition does not match is cancelled too, with the reason.
    """

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    FINISHED = "Finished"

    def __str__(self) -> str:
        return self.value

    def matches(self, parent: QueuedTaskStatus) -> bool:
        """Whether a parent that ended in ``parent`` releases this continuation."""
        if parent is QueuedTaskStatus.COMPLETED:
            return self is not ContinueWhen.FAILED
        if parent is QueuedTaskStatus.FAILED:
            return self is not ContinueWhen.SUCCEEDED
        return False
