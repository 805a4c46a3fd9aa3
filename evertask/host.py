"""The host: starts and stops the engine (``async with``, ``start``/``stop``, ``lifespan``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from .dispatcher import Dispatcher
from .engine import Engine, HostState
from .events import EventBus
from .queues import WorkerQueue
from .recovery import RecoveryReport, recover
from .storage.protocol import TaskStorage

__all__ = ["EverTaskHost", "HostComponent"]

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
    """Runs the workers, the scheduler and recovery inside the application's event loop."""

    def __init__(self, engine: Engine, container: Any = None) -> None:
        self._engine = engine
        self.container = container
        self.dispatcher = Dispatcher(engine)
        self.components: list[HostComponent] = []
        self._recovery: asyncio.Task[RecoveryReport] | None = None
        self.recovery_report: RecoveryReport | None = None
        self.monitoring: Any = None  # set by add_monitoring_api (evertask_monitor_api)

    # -- accessors -------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The engine (for plug-ins and tests)."""
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
    def state(self) -> HostState:
        """Where the host is in its lifecycle."""
        return self._engine.state

    @property
    def is_running(self) -> bool:
        """True between a completed start and the beginning of stop."""
        return self._engine.state is HostState.RUNNING

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open storage (migrating it), start consumers and timers, then recover beside them."""
        engine = self._engine
        if engine.state is not HostState.CREATED:
            raise RuntimeError(
                f"This host was already started (it is {engine.state.value}); a host runs once. "
                "Call builder.build() again for a new host."
            )
        engine.state = HostState.STARTING
        try:
            self.dispatcher._bind_loop(asyncio.get_running_loop())
            if engine.storage is not None:
                await engine.storage.open()
                for name in await engine.storage.get_paused_queues():
                    queue = engine.queues.queues.get(name)
                    if queue is not None:
                        queue.pause()
            engine.events.start()
            engine.executor.start()
            engine.scheduler.start()
            cutoff = engine.clock.now()  # rows from here on are this host's own dispatches
            engine.state = HostState.RUNNING
            self._recovery = asyncio.get_running_loop().create_task(self._recover(cutoff))
            for component in self.components:
                await component.start(self)
        except BaseException:
            engine.state = HostState.STOPPED
            raise

    async def _recover(self, cutoff: datetime) -> RecoveryReport:
        try:
            self.recovery_report = await recover(self._engine, cutoff)
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
        await asyncio.wait_for(asyncio.shield(self._recovery), timeout)
        return self.recovery_report

    async def stop(self, grace_period: timedelta | float | None = None) -> None:
        """Stop taking work, give running handlers a grace period, then cancel them.

        Interrupted tasks become ServiceStopped; queued and scheduled ones stay pending;
        all of them resume at the next start.
        """
        engine = self._engine
        if engine.state is not HostState.RUNNING:
            return
        grace = engine.options.shutdown_grace_period if grace_period is None else grace_period
        seconds = grace.total_seconds() if isinstance(grace, timedelta) else float(grace)
        engine.state = HostState.STOPPING
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                log.exception("A host component failed to stop.")
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        engine.scheduler.stop()
        engine.queues.close()
        await engine.executor.wait_idle(seconds)
        await engine.executor.stop()
        await engine.drain_background()
        await engine.events.stop()
        engine.in_flight.clear()
        engine.follow_ups.clear()
        if engine.storage is not None:
            await engine.storage.close()
        engine.state = HostState.STOPPED

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
            raise KeyError(f"No queue named {name!r}; configured queues: {known}.")
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
