"""Task events and their bounded, non-blocking fan-out to subscribers."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from .storage.models import TaskExecutionLog

__all__ = ["NODE_EVENT_TYPE", "EventBus", "EventKind", "Subscription", "TaskEvent"]

NODE_EVENT_TYPE = "EverTask.Node"
"""``task_type`` of the node events (``NODE_DEAD``, ``TAKEOVER``, ``NODE_THROTTLED``,
``NODE_RESUMED``)."""

log = logging.getLogger("evertask.events")


class EventKind(str, Enum):
    """What happened (the ``message`` says it in words)."""

    DISPATCHED = "dispatched"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"
    CANCELLED = "cancelled"
    SERVICE_STOPPED = "service_stopped"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    CALLBACK_ERROR = "callback_error"
    RATE_LIMITED = "rate_limited"
    """A run was deferred by its rate limit (one event per task type and key per 30 s;
    ``extra``: ``rateLimitKey``, ``throttledUntil``, ``more``)."""
    NODE_DEAD = "node_dead"
    """A node of the cluster stopped heartbeating (``task_id``: the node's id)."""
    TAKEOVER = "takeover"
    """This node took over tasks no live node owned (``task_id``: this node's id)."""
    NODE_THROTTLED = "node_throttled"
    """Adaptive throttling paused this node (``task_id``: its id; ``extra``: ``reason``,
    ``cpu``, ``memoryBytes``)."""
    NODE_RESUMED = "node_resumed"
    """Adaptive throttling let this node take work again (``task_id``: its id)."""


@dataclass(slots=True, frozen=True)
class TaskEvent:
    """One task event (EverTask's ``EverTaskEventData`` plus kind, queue and attempt)."""

    task_id: uuid.UUID
    timestamp: datetime
    severity: str  # "Information" | "Warning" | "Error"
    kind: EventKind
    task_type: str
    handler_type: str
    parameters: str
    message: str
    queue_name: str = "default"
    exception: str | None = None
    execution_logs: tuple[TaskExecutionLog, ...] | None = None
    attempt: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, include_logs: bool = True) -> dict[str, Any]:
        """A JSON-ready dictionary (camelCase keys, as the dashboard expects)."""
        out: dict[str, Any] = {
            "taskId": str(self.task_id),
            "eventDateUtc": self.timestamp.isoformat(),
            "severity": self.severity,
            "kind": self.kind.value,
            "taskType": self.task_type,
            "taskHandlerType": self.handler_type,
            "taskParameters": self.parameters,
            "message": self.message,
            "queueName": self.queue_name,
            "exception": self.exception,
            "attempt": self.attempt,
        }
        if include_logs and self.execution_logs is not None:
            out["executionLogs"] = [
                {
                    "timestampUtc": e.timestamp_utc.isoformat(),
                    "level": e.level,
                    "message": e.message,
                    "exceptionDetails": e.exception_details,
                    "sequenceNumber": e.sequence_number,
                }
                for e in self.execution_logs
            ]
        return out


Callback = Callable[[TaskEvent], Awaitable[None] | None]


class Subscription:
    """One subscriber's bounded buffer and pump; a full buffer drops (and counts) events."""

    def __init__(self, bus: EventBus, callback: Callback | None, maxsize: int) -> None:
        self._bus = bus
        self._callback = callback
        self.queue: asyncio.Queue[TaskEvent] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._is_async = callback is not None and (
            inspect.iscoroutinefunction(callback)
            or inspect.iscoroutinefunction(getattr(callback, "__call__", None))  # noqa: B004
        )

    def _offer(self, event: TaskEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            self._bus.dropped_events += 1

    def start(self) -> None:
        if self._callback is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        callback = self._callback
        assert callback is not None
        while True:
            event = await self.queue.get()
            try:
                result = callback(event)
                if self._is_async or inspect.isawaitable(result):
                    await result  # type: ignore[misc]
            except Exception:
                log.exception("An event subscriber raised; the event is skipped.")
            finally:
                self.queue.task_done()

    async def get(self) -> TaskEvent:
        """For pull-style subscribers (no callback): the next event."""
        return await self.queue.get()

    def close(self) -> None:
        """Unsubscribe and stop the pump."""
        self._bus._remove(self)
        if self._task is not None:
            self._task.cancel()
            self._task = None


class EventBus:
    """Fans events out to subscribers without ever blocking the publisher."""

    def __init__(self, buffer_size: int = 10_000) -> None:
        self.buffer_size = buffer_size
        self._subs: list[Subscription] = []
        self.dropped_events = 0
        self._started = False
        self.has_subscribers = False
        """Whether building an event is worth it (a plain attribute: read per run)."""

    def subscribe(
        self, callback: Callback | None = None, *, buffer_size: int | None = None
    ) -> Subscription:
        """Receive every event; ``callback`` may be sync or async. Without a callback,
        pull events with ``await subscription.get()``."""
        sub = Subscription(self, callback, buffer_size or self.buffer_size)
        self._subs = [*self._subs, sub]
        self.has_subscribers = True
        if self._started:
            sub.start()
        return sub

    def _remove(self, sub: Subscription) -> None:
        self._subs = [s for s in self._subs if s is not sub]
        self.has_subscribers = bool(self._subs)

    def start(self) -> None:
        """Start the pumps of callback subscribers (needs a running loop)."""
        self._started = True
        for sub in self._subs:
            sub.start()

    async def stop(self, timeout: float = 1.0) -> None:
        """Deliver what the callback subscribers still have buffered (for up to ``timeout``
        seconds in all), then stop their pumps (subscriptions stay registered for a restart)."""
        self._started = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for sub in self._subs:
            task = sub._task
            if task is None:
                continue
            remaining = deadline - loop.time()
            if remaining > 0 and not task.done():
                try:
                    async with asyncio.timeout(remaining):
                        await sub.queue.join()
                except TimeoutError:
                    log.warning(
                        "An event subscriber did not take its last %d event(s) in time; "
                        "they are dropped.",
                        sub.queue.qsize(),
                    )
            task.cancel()
            sub._task = None

    def publish(self, event: TaskEvent) -> None:
        """Offer ``event`` to every subscriber; never blocks, never raises."""
        for sub in self._subs:
            sub._offer(event)
