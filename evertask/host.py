"""The host: starts and stops the engine (``async with``, ``start``/``stop``, ``lifespan``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from evertask_abstractions import ConfigurationError

from .activity import HostActivity
from .clock import Clock
from .dispatcher import Dispatcher
from .engine import Engine
from .events import EventBus, Subscription, TaskEvent
from .lifecycle import HostState
from .observe import LogCapture, TaskObserver
from .options import QueueConfiguration
from .processes.pool import ProcessPool
from .queues import WorkerQueue
from .recovery import RecoveryReport
from .registry import HandlerDescriptor
from .storage.models import NodeInfo
from .storage.protocol import TaskStorage
from .throttling import RateLimitGate

if TYPE_CHECKING:
    from .adaptive import AdaptiveThrottle

__all__ = ["EverTaskHost", "HostComponent", "UnknownQueueError"]

log = logging.getLogger("evertask.host")


class HostComponent(Protocol):
    """A plug-in started after the engine and stopped before it (monitoring, retention...)."""

    async def start(self, host: EverTaskHost) -> None:
        """Start (the engine is running)."""
        ...

    async def stop(self) -> None:
        """Stop (the engine is still running)."""
        ...


class EverTaskHost:
    """Runs the workers, the scheduler and recovery inside the application's event loop.

    Plug-ins extend a host through its public methods (observers, event subscription,
    queue state, the clock), never through its engine.
    """

    def __init__(self, engine: Engine, container: Any = None) -> None:
        self._engine = engine
        self.container = container
        self.dispatcher: Dispatcher = engine.dispatcher
        self.components: list[HostComponent] = []
        self._recovery: asyncio.Task[RecoveryReport] | None = None
        self.recovery_report: RecoveryReport | None = None
        self.monitoring: Any = None  # set by add_monitoring_api (evertask_monitor_api)

    # -- accessors -------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The engine's parts (internal: for the library's own tests, not for plug-ins)."""
        return self._engine

    @property
    def storage(self) -> TaskStorage | None:
        """The configured storage, or ``None``."""
        return self._engine.storage

    @property
    def events(self) -> EventBus:
        """The task-event bus: ``host.events.subscribe(callback)``."""
        return self._engine.events

    @property
    def clock(self) -> Clock:
        """The host's clock (``use_clock`` in the options; the system clock by default)."""
        return self._engine.clock

    @property
    def activity(self) -> HostActivity:
        """What the host is doing now; ``await host.activity.wait_idle()`` waits until it
        has nothing to do before its clock moves (the testing kit builds on it)."""
        return self._engine.activity

    @property
    def state(self) -> HostState:
        """Where the host is in its lifecycle."""
        return self._engine.lifecycle.state

    @property
    def is_running(self) -> bool:
        """True between a completed start and the beginning of stop."""
        return self._engine.lifecycle.running

    # -- extension surface -----------------------------------------------------------------
    def add_observer(self, observer: TaskObserver) -> None:
        """Call ``observer`` at every dispatch and execution (see :class:`TaskObserver`)."""
        self._engine.observers.append(observer)

    def remove_observer(self, observer: TaskObserver) -> None:
        """Stop calling ``observer`` (ignored if it is not registered)."""
        with contextlib.suppress(ValueError):
            self._engine.observers.remove(observer)

    @property
    def observers(self) -> tuple[TaskObserver, ...]:
        """The registered observers, in call order."""
        return tuple(self._engine.observers)

    def subscribe(
        self, callback: Callable[[TaskEvent], Any] | None = None, *, dispatched: bool = False
    ) -> Subscription:
        """Subscribe to task events (``host.events.subscribe``); ``dispatched=True`` also
        publishes an event per dispatch (live dashboards use it)."""
        if dispatched:
            self.publish_dispatch_events()
        return self._engine.events.subscribe(callback)

    def publish_dispatch_events(self) -> None:
        """Publish a "dispatched" event per dispatch from now on."""
        self.dispatcher.publish_dispatched = True

    @property
    def handlers(self) -> tuple[HandlerDescriptor, ...]:
        """The registered handlers."""
        return tuple(self._engine.registry.descriptors())

    @property
    def log_capture(self) -> LogCapture | None:
        """The per-execution log capture in use, if any."""
        return self._engine.executor.log_capture

    @property
    def rate_limiter(self) -> RateLimitGate:
        """Rate limits and concurrency limits of this host: parked runs, tracked keys,
        ``throttled_until(task_id)`` (docs/throttling.md)."""
        return self._engine.throttle

    @property
    def adaptive_throttling(self) -> AdaptiveThrottle | None:
        """Adaptive throttling of this node (``state``: paused or not, why, the last
        sample), or ``None`` when no threshold is configured (docs/throttling.md)."""
        return self._engine.adaptive

    @property
    def process_pool(self) -> ProcessPool:
        """The worker processes for CPU-bound work (started at the first call, stopped with
        the host; docs/cpu-bound.md)."""
        return self._engine.processes

    # -- cluster ---------------------------------------------------------------------------
    @property
    def node_id(self) -> uuid.UUID | None:
        """This host's node id in the cluster of hosts on its database (``None`` without a
        storage); a new one at every start."""
        return None if self._engine.membership is None else self._engine.node.id

    @property
    def runs_workers(self) -> bool:
        """``False`` on a dispatch-only host (``set_run_workers(False)``)."""
        return self._engine.node.runs_workers

    async def cluster_nodes(self) -> list[NodeInfo]:
        """Every node registered on this host's storage, alive or dead (docs/cluster.md)."""
        storage = self._engine.storage
        return [] if storage is None else await storage.list_nodes()

    # -- queues ----------------------------------------------------------------------------
    @property
    def queue_names(self) -> list[str]:
        """The configured queues, in configuration order."""
        return list(self._engine.queues.queues)

    def queue_config(self, name: str) -> QueueConfiguration:
        """A queue's settings; ``KeyError`` names the configured queues."""
        return self._queue(name).config

    def queue_length(self, name: str) -> int:
        """Runs waiting in a queue's memory now (not counting running ones)."""
        return len(self._queue(name))

    def queue_running(self, name: str) -> int:
        """Runs of a queue executing now."""
        return self._queue(name).active

    def is_queue_paused(self, name: str) -> bool:
        """Whether a queue is paused (see :meth:`pause_queue`)."""
        return self._queue(name).paused

    @property
    def scheduled_count(self) -> int:
        """Delayed, scheduled and recurring runs waiting for their time in this process."""
        return len(self._engine.scheduler)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open storage (migrating it), start consumers and timers, then recover beside them."""
        engine = self._engine
        lifecycle = engine.lifecycle
        if lifecycle.state is not HostState.CREATED:
            raise RuntimeError(
                f"This host was already started (it is {lifecycle.state.value}); a host runs "
                "once. Call builder.build() again for a new host."
            )
        lifecycle.state = HostState.STARTING
        try:
            self.dispatcher._bind_loop(asyncio.get_running_loop())
            membership = engine.membership
            if engine.storage is not None:
                await engine.storage.open()
                for name in await engine.storage.get_paused_queues():
                    queue = engine.queues.queues.get(name)
                    if queue is not None:
                        queue.pause()
            if membership is not None:
                await membership.join()
            engine.events.start()
            if engine.node.runs_workers:
                engine.executor.start()
            engine.scheduler.start()
            lifecycle.state = HostState.RUNNING
            if membership is not None:
                membership.start(engine.recovery.adopt, engine.dispatcher.cancel_here)
            if engine.adaptive is not None:
                engine.adaptive.start()
            self._recovery = asyncio.get_running_loop().create_task(self._recover())
            for component in self.components:
                await component.start(self)
        except BaseException:
            lifecycle.state = HostState.STOPPED
            raise

    async def _recover(self) -> RecoveryReport:
        try:
            self.recovery_report = await self._engine.recovery.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Recovery failed; pending tasks resume at the next start.")
            self.recovery_report = RecoveryReport()
        return self.recovery_report

    async def wait_recovered(self, timeout: float | None = None) -> RecoveryReport | None:
        """Wait until the startup recovery pass has finished."""
        if self._recovery is None:
            return self.recovery_report
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._recovery)
        return self.recovery_report

    async def stop(self, grace_period: timedelta | float | None = None) -> None:
        """Stop taking work, give running handlers a grace period, then cancel them.

        Interrupted tasks become ServiceStopped; queued and scheduled ones stay pending;
        all of them resume at the next start. While it waits, one line says for how long,
        and (in the main thread) a Ctrl-C (SIGINT) ends the wait at once.
        """
        engine = self._engine
        lifecycle = engine.lifecycle
        if lifecycle.state is not HostState.RUNNING:
            return
        grace = engine.options.shutdown_grace_period if grace_period is None else grace_period
        seconds = grace.total_seconds() if isinstance(grace, timedelta) else float(grace)
        lifecycle.state = HostState.STOPPING
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                log.exception("A host component failed to stop.")
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        if engine.adaptive is not None:
            await engine.adaptive.stop()
        engine.scheduler.stop()
        engine.queues.close()
        running = len(engine.executor.running)
        if running and seconds > 0:
            interrupt = asyncio.Event()
            with _interrupt_on_sigint(interrupt):  # installed before the line invites a Ctrl-C
                log.warning(
                    "Waiting up to %g s for %d running task%s to finish; press Ctrl-C again to "
                    "stop them now (they resume at the next start). "
                    "set_shutdown_grace_period() changes the wait.",
                    seconds,
                    running,
                    "" if running == 1 else "s",
                )
                await engine.executor.wait_idle(seconds, interrupt)
            if interrupt.is_set():
                log.warning("Interrupted: stopping the running tasks now.")
        await engine.executor.stop()
        await engine.processes.stop()  # after the runs: their calls were cancelled
        await engine.background.drain()
        if engine.membership is not None:
            await engine.membership.leave()  # its pending rows go to the other nodes
        await engine.events.stop()
        engine.in_flight.clear()
        if engine.storage is not None:
            await engine.storage.close()
        lifecycle.state = HostState.STOPPED

    async def pause_queue(self, name: str) -> None:
        """Stop starting tasks of a queue; it keeps accepting and persisting them.

        The pause is stored, so it survives a restart. Running tasks finish normally.
        """
        queue = self._queue(name)
        if self._engine.storage is not None:
            await self._engine.storage.set_queue_paused(name, True)
        queue.pause()

    async def resume_queue(self, name: str) -> None:
        """Start tasks of a paused queue again."""
        queue = self._queue(name)
        if self._engine.storage is not None:
            await self._engine.storage.set_queue_paused(name, False)
        queue.resume()

    def _queue(self, name: str) -> WorkerQueue:
        queue = self._engine.queues.queues.get(name)
        if queue is None:
            known = ", ".join(sorted(self._engine.queues.queues))
            raise UnknownQueueError(f"No queue named {name!r}; configured queues: {known}.")
        return queue

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def lifespan(self, app: Any = None) -> contextlib.AbstractAsyncContextManager[None]:
        """A FastAPI/Starlette lifespan: ``FastAPI(lifespan=host.lifespan)``."""
        return self._lifespan()

    @contextlib.asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def run_forever(self, main: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Convenience for scripts: run the host (and ``main``) until interrupted."""

        async def _main() -> None:
            async with self:
                if main is not None:
                    await main()
                else:
                    await asyncio.Event().wait()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main())


class UnknownQueueError(ConfigurationError, KeyError):
    """No queue of that name is configured."""

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0])


@contextlib.contextmanager
def _interrupt_on_sigint(interrupt: asyncio.Event) -> Iterator[None]:
    """While inside, SIGINT sets ``interrupt`` instead of its usual handler (main thread
    only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(interrupt.set)

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except (ValueError, OSError):  # not allowed here (e.g. an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
