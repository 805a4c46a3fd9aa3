"""The wiring of one host's parts: each part gets only the collaborators it uses.

Nothing imports this module but the host and the builder; the parts know one another
through narrow objects (the in-flight registry, the cancel registry, the lifecycle) or
Protocols, never through the engine.
"""

from __future__ import annotations

import functools
from datetime import timedelta

from .activity import HostActivity
from .adaptive import AdaptiveThrottle, ThrottleState
from .background import Background
from .clock import Clock
from .cluster import Membership, Node
from .cluster_limits import ClusterConcurrency, StorageKeyedRateLimiter
from .dispatcher import Dispatcher
from .events import NODE_EVENT_TYPE, EventBus, EventKind, TaskEvent
from .executor import WorkerExecutor
from .inflight import CancelRegistry, InFlight
from .intake import Intake
from .lifecycle import Lifecycle
from .observe import LogCapture, TaskObserver
from .options import EverTaskOptions
from .processes.pool import ProcessPool
from .queues import QueueManager
from .recovery import Recovery
from .recurring import RecurringCoordinator
from .registry import HandlerRegistry
from .run import TaskRun
from .scheduler import TimerScheduler
from .storage.protocol import (
    ConcurrencySlotStore,
    PipelinedStorage,
    RateLimitStore,
    TaskStorage,
    fast_paths_enabled,
)
from .throttling import RateLimitGate
from .workflows import read_parent

__all__ = ["CLAIM_LEAD", "Engine"]

CLAIM_LEAD = timedelta(milliseconds=20)
"""How long before its time a persisted delayed run is claimed (marked Queued) on a
pipelined storage (commits take a round trip); it still starts at its time."""


class Engine:
    """One host's parts, wired together (see the module docstring)."""

    def __init__(
        self,
        options: EverTaskOptions,
        registry: HandlerRegistry,
        queues: QueueManager,
        storage: TaskStorage | None,
        log_capture: LogCapture | None = None,
    ) -> None:
        self.options = options
        self.registry = registry
        self.queues = queues
        self.storage = storage
        self.clock: Clock = options.clock
        self.lifecycle = Lifecycle()
        self.events = EventBus(options.event_buffer_size)
        self.observers: list[TaskObserver] = []
        self.in_flight = InFlight()
        self.cancels = CancelRegistry()
        self.background = Background()
        self.activity = HostActivity(
            clock=self.clock, inflight=self.in_flight, background=self.background, queues=queues
        )
        self.node = Node(runs_workers=options.run_workers)
        self.membership = (
            None
            if storage is None
            else Membership(
                node=self.node,
                options=options,
                storage=storage,
                clock=self.clock,
                lifecycle=self.lifecycle,
                queues=queues,
                inflight=self.in_flight,
                events=self.events,
            )
        )
        # a declared fast path: on a storage whose commits take a round trip, InProgress
        # overlaps the handler and a delayed run is claimed CLAIM_LEAD ahead of its time
        pipelined = storage if isinstance(storage, PipelinedStorage) else None
        self.pipelined = pipelined if fast_paths_enabled() else None
        self.claim_lead = CLAIM_LEAD if self.pipelined is not None else timedelta(0)
        self.scheduler = TimerScheduler(self.clock, self._on_due, self.claim_lead)
        self.intake = Intake(
            lifecycle=self.lifecycle,
            queues=queues,
            storage=storage,
            clock=self.clock,
            inflight=self.in_flight,
            cancels=self.cancels,
            scheduler=self.scheduler,
            background=self.background,
            claim_lead=self.claim_lead,
            node=self.node,
        )
        # cluster-wide budgets and permits on a storage that can share them (the SQL
        # storages), unless the options keep them per node
        shared = options.rate_limiter.cluster_wide and options.run_workers
        self.throttle = RateLimitGate(
            options=options.rate_limiter,
            clock=self.clock,
            scheduler=self.scheduler,
            events=self.events,
            cancels=self.cancels,
            default_capacity=queues.default.capacity,
            limiter=(
                StorageKeyedRateLimiter(storage, options.rate_limiter.max_tracked_keys)
                if shared and isinstance(storage, RateLimitStore)
                else None
            ),
            concurrency=(
                ClusterConcurrency(storage, lambda: self.node.id, self.clock.now)
                if shared and isinstance(storage, ConcurrencySlotStore)
                else None
            ),
            poll_interval=options.cluster_poll_interval.total_seconds(),
        )
        self.processes = ProcessPool(options.process_pool)  # no process until a first call
        self.recurring = RecurringCoordinator(
            storage=storage,
            clock=self.clock,
            cancels=self.cancels,
            scheduler=self.scheduler,
            inflight=self.in_flight,
        )
        self.executor = WorkerExecutor(
            options=options,
            queues=queues,
            storage=storage,
            pipelined=self.pipelined,
            clock=self.clock,
            inflight=self.in_flight,
            cancels=self.cancels,
            events=self.events,
            observers=self.observers,
            recurring=self.recurring,
            gate=self.throttle,
            log_capture=log_capture,
            retry_wait=self.activity.retry_wait(),
            process_runner=self.processes,
        )
        self.dispatcher = Dispatcher(
            options=options,
            registry=registry,
            queues=queues,
            storage=storage,
            clock=self.clock,
            lifecycle=self.lifecycle,
            inflight=self.in_flight,
            cancels=self.cancels,
            scheduler=self.scheduler,
            intake=self.intake,
            recurring=self.recurring,
            events=self.events,
            observers=self.observers,
            node=self.node,
            throttle=self.throttle,
            announce=self.membership.announce if self.membership else lambda notice: None,
        )
        self.adaptive = (
            AdaptiveThrottle(
                options.adaptive_throttling,
                queues,
                self.clock.now,
                self._throttle_changed,
                self._set_claiming,
            )
            if options.adaptive_throttling.enabled and options.run_workers
            else None
        )
        self.recovery = Recovery(
            lifecycle=self.lifecycle,
            registry=registry,
            queues=queues,
            storage=storage,
            clock=self.clock,
            inflight=self.in_flight,
            cancels=self.cancels,
            scheduler=self.scheduler,
            intake=self.intake,
            recurring=self.recurring,
            membership=self.membership,
        )
        # workflows: a terminal write hands the continuations it releases to this node
        # while it takes work, which adopts them as the rows its claim takes (others are
        # unowned rows, claimed as any such row); handlers read their parent's result
        if self.membership is not None:
            membership = self.membership
            self.activity.claim_pending = lambda: membership.claim_pending
            membership.on_claimed = self.activity.changed
            self.executor.hand_over = membership.hand_over
            self.executor.on_released = lambda rows: self.background.spawn(
                membership.adopt_released(rows)
            )
            self.dispatcher.on_released = lambda _parent_id: membership.rows_released()
        if storage is not None:
            self.executor.parent_results = functools.partial(read_parent, storage)

    def _throttle_changed(self, state: ThrottleState) -> None:
        """Adaptive throttling paused or resumed this node: say so on the event stream."""
        if state.paused:
            message = f"Node {self.node.id} takes no new work: {state.reason} above its threshold."
        else:
            message = f"Node {self.node.id} takes work again."
        self.events.publish(
            TaskEvent(
                task_id=self.node.id,
                timestamp=self.clock.now(),
                severity="Warning" if state.paused else "Information",
                kind=EventKind.NODE_THROTTLED if state.paused else EventKind.NODE_RESUMED,
                task_type=NODE_EVENT_TYPE,
                handler_type=NODE_EVENT_TYPE,
                parameters="{}",
                message=message,
                extra={
                    "reason": state.reason,
                    "cpu": state.cpu,
                    "memoryBytes": state.memory_bytes,
                },
            )
        )

    def _set_claiming(self, on: bool) -> None:
        if self.membership is not None:
            self.membership.claiming = on

    def _on_due(self, runs: list[TaskRun]) -> None:
        self.throttle.unparked(runs)
        self.intake.on_due(runs)
