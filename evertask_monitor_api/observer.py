"""A dispatch observer that publishes ``dispatched`` events, so dashboards refresh on dispatch.

The engine publishes events when tasks start and end; a task that waits (delayed,
scheduled, or on a paused queue) would otherwise stay invisible to live dashboards
until it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from evertask.events import EventBus, EventKind, TaskEvent
from evertask.observe import DispatchScope, ExecutionScope
from evertask.run import TaskRun

__all__ = ["DispatchEventObserver"]

_WHEN = {
    "immediate": "queued",
    "delayed": "scheduled",
    "scheduled": "scheduled",
    "recurring": "registered as recurring",
}


class _Published:
    __slots__ = ("bus", "kind", "now", "run")

    def __init__(self, bus: EventBus, run: TaskRun, kind: str, now: datetime) -> None:
        self.bus, self.run, self.kind, self.now = bus, run, kind, now

    def finish(self, error: BaseException | None) -> None:
        if error is not None or not self.bus.has_subscribers:
            return
        run = self.run
        desc = run.descriptor
        when = f" for {run.execution_time.isoformat()}" if run.execution_time else ""
        self.bus.publish(
            TaskEvent(
                task_id=run.id,
                timestamp=self.now,
                severity="Information",
                kind=EventKind.DISPATCHED,
                task_type=desc.task_type_name,
                handler_type=desc.handler_type_name,
                parameters=run.task.model_dump_json(),
                message=f"Task with id {run.id} was {_WHEN.get(self.kind, self.kind)}{when}.",
                queue_name=run.queue_name,
            )
        )


class DispatchEventObserver:
    """Publishes one ``dispatched`` event per successful dispatch (only with subscribers)."""

    def __init__(self, bus: EventBus, now: Callable[[], datetime]) -> None:
        self.bus = bus
        self.now = now

    def dispatching(self, run: TaskRun, kind: str) -> DispatchScope | None:
        """Publish once the dispatch has committed."""
        if not self.bus.has_subscribers:
            return None
        return _Published(self.bus, run, kind, self.now())

    def executing(self, run: TaskRun, queue_wait_s: float | None) -> ExecutionScope | None:
        """Executions publish their own events."""
        return None
