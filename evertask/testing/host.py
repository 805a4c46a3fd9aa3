"""The test host: a real EverTask host on memory storage and a manual clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from evertask_abstractions import (
    AuditLevel,
    ConfigurationError,
    EverTask,
    QueuedTaskStatus,
    When,
)

from ..builder import EverTaskServiceBuilder, add_evertask
from ..clock import ManualClock
from ..dispatcher import Dispatcher
from ..host import EverTaskHost
from ..lifecycle import HostState
from ..options import EverTaskOptions
from ..storage.models import QueuedTask
from ..storage.protocol import TaskStorage
from .matching import TaskSpec, describe_spec, listing, select
from .overrides import Override, resolve_provider
from .records import DispatchedTask, ExecutedTask, Recorder

__all__ = ["DEFAULT_IDLE_TIMEOUT", "EverTaskTestHost", "HostBusyError"]

DEFAULT_IDLE_TIMEOUT = 5.0
"""Seconds ``run_until_idle`` (and each step of ``advance``) waits by default."""

_TEST_LEASE = timedelta(days=3650)
"""The test host's node lease: it never runs out however far a test moves the clock."""


class HostBusyError(AssertionError):
    """The test host did not become idle in time (the message lists what was still busy)."""


class EverTaskTestHost:
    """A started-on-demand EverTask host for tests: memory storage, a manual clock, and a
    record of what was dispatched and executed.

    Build one with :meth:`create` (a container and the ``configure`` callable the
    application passes to ``add_evertask``) or :meth:`from_builder`, then use it as
    ``async with``. Time moves only when the test says so: :meth:`run_until_idle` runs what
    is due now, :meth:`advance` moves the clock through every timer in between. Retry delays
    are waited on the manual clock too; per-attempt timeouts stay in real time.
    """

    def __init__(
        self,
        host: EverTaskHost,
        clock: ManualClock,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        if host.clock is not clock:
            raise ValueError(
                "The host does not run on this clock; build it with EverTaskTestHost.create() "
                "or from_builder(), which install the clock."
            )
        self.host = host
        """The real host underneath (its full API is available)."""
        self.clock = clock
        """The manual clock the host runs on."""
        self.idle_timeout = idle_timeout
        """Default seconds :meth:`run_until_idle` and each step of :meth:`advance` wait."""
        self._recorder = Recorder(clock)
        self._overrides: list[Override] = []
        host.add_observer(self._recorder)
        host.activity.retry_waits_on_clock = True

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        container: Any = None,
        configure: Callable[[EverTaskOptions], object] | None = None,
        *,
        builder: Callable[[EverTaskServiceBuilder], object] | None = None,
        clock: ManualClock | None = None,
        start: datetime | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> EverTaskTestHost:
        """A test host for ``add_evertask(container, configure)``.

        ``builder`` adjusts the service builder (queues, plug-ins) as the application
        does, storage excepted; ``clock`` (or a ``start`` time for a new one, by default
        2026-01-01 00:00 UTC) is the manual clock to run on.
        """
        service_builder = add_evertask(container, configure)
        if builder is not None:
            builder(service_builder)
        return cls.from_builder(
            service_builder, clock=clock, start=start, idle_timeout=idle_timeout
        )

    @classmethod
    def from_builder(
        cls,
        builder: EverTaskServiceBuilder,
        *,
        clock: ManualClock | None = None,
        start: datetime | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> EverTaskTestHost:
        """A test host built from the application's own service builder, which must not
        have a storage yet: the test host adds memory storage and its manual clock."""
        if clock is None:
            clock = ManualClock(start)
        elif start is not None:
            raise ValueError("Pass either clock or start, not both.")
        options = builder.options
        if not options.run_workers:
            raise ConfigurationError(
                "A test host runs its tasks: this builder has set_run_workers(False)."
            )
        options.use_clock(clock)
        options.set_lease_duration(_TEST_LEASE)
        try:
            builder.add_memory_storage()
        except ConfigurationError as error:
            raise ConfigurationError(
                "EverTaskTestHost needs a builder without storage (it adds memory storage): "
                "configure storage outside the function that builds it, e.g. "
                "create_builder(container) in the application and "
                "create_builder(container).add_sqlite_storage(...) at its start."
            ) from error
        return cls(builder.build(), clock, idle_timeout=idle_timeout)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the host and wait for its (empty) startup recovery."""
        await self.host.start()
        await self.host.wait_recovered(self.idle_timeout)

    async def stop(self, grace_period: timedelta | float = 0) -> None:
        """Reset the overrides still active, then stop the host (running handlers are
        cancelled after ``grace_period``, none by default)."""
        for override in reversed(list(self._overrides)):
            override.reset()
        await self.host.stop(grace_period)

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

    # -- the host ------------------------------------------------------------------------------
    @property
    def dispatcher(self) -> Dispatcher:
        """The host's dispatcher (the one the container injects)."""
        return self.host.dispatcher

    @property
    def container(self) -> Any:
        """The container the host was built with."""
        return self.host.container

    @property
    def storage(self) -> TaskStorage:
        """The host's memory storage."""
        storage = self.host.storage
        assert storage is not None  # the test host always has one
        return storage

    def now(self) -> datetime:
        """The manual clock's time."""
        return self.clock.now()

    async def dispatch(
        self,
        task: EverTask,
        when: When = None,
        *,
        task_key: str | None = None,
        audit_level: AuditLevel | None = None,
    ) -> uuid.UUID:
        """``host.dispatcher.dispatch(...)``: dispatch a task (it runs at the next
        :meth:`run_until_idle` or :meth:`advance`)."""
        return await self.dispatcher.dispatch(
            task, when, task_key=task_key, audit_level=audit_level
        )

    # -- running -------------------------------------------------------------------------------
    async def run_until_idle(self, timeout: float | None = None) -> None:
        """Run until the host has nothing to do at the current manual time: no task
        queued, running or being handed to its queue, and no timer due now.

        Work that waits for the clock (a delayed task, the next occurrence of a recurring
        one, a retry delay) stays for :meth:`advance`. Raises :class:`HostBusyError`,
        listing what was still busy, after ``timeout`` seconds (default
        :attr:`idle_timeout`).
        """
        await self._step(self.idle_timeout if timeout is None else timeout)

    async def advance(self, delta: timedelta | float, *, timeout: float | None = None) -> None:
        """Move the clock forward by ``delta`` (a ``timedelta`` or seconds), stopping at
        every timer due in between and running until idle there.

        So every delayed task, recurring occurrence and retry that falls due runs at its
        own time: an every-minute task advanced 5 minutes runs 5 times. ``timeout`` bounds
        each step (see :meth:`run_until_idle`).
        """
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError(f"advance() cannot go back in time (delta {step}).")
        await self.advance_to(self.clock.now() + step, timeout=timeout)

    async def advance_to(self, when: datetime, *, timeout: float | None = None) -> None:
        """Move the clock forward to the aware instant ``when`` (see :meth:`advance`)."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(
                f"advance_to({when.isoformat()}) needs an aware datetime, e.g. tzinfo=UTC."
            )
        target = when.astimezone(UTC)
        clock = self.clock
        if target < clock.now():
            raise ValueError(
                f"advance_to() cannot go back in time: {target.isoformat()} is before the "
                f"clock's {clock.now().isoformat()}."
            )
        limit = self.idle_timeout if timeout is None else timeout
        await self._step(limit)
        while True:
            due = clock.next_timer()
            if due is None or due > target:
                break
            clock.set(max(due, clock.now()))
            await self._step(limit)
        if clock.now() < target:
            clock.set(target)
            await self._step(limit)

    async def _step(self, timeout: float) -> None:
        if self.host.state is not HostState.RUNNING:
            raise RuntimeError(
                f"The test host is {self.host.state.value}; start it first "
                "(`async with host:` or `await host.start()`)."
            )
        try:
            async with asyncio.timeout(timeout):
                await self._settle()
        except TimeoutError:
            raise HostBusyError(self._busy_message(timeout)) from None

    async def _settle(self) -> None:
        clock, activity = self.clock, self.host.activity
        while True:
            due = clock.next_timer()
            if due is not None and due <= clock.now():
                clock.set(clock.now())  # fires the timers due now
            await activity.wait_idle()
            await asyncio.sleep(0)  # one more turn: callbacks scheduled by the last step
            due = clock.next_timer()
            if activity.idle and (due is None or due > clock.now()):
                return

    def _busy_message(self, timeout: float) -> str:
        busy = self.host.activity.describe() or ["(nothing now: it went idle at the deadline)"]
        return "\n".join(
            [
                f"The EverTask test host was still busy after {timeout:g} s "
                f"(manual time {self.clock.now().isoformat()}):",
                *(f"  - {line}" for line in busy),
                "A handler may be waiting for something that never happens (an event, a "
                "lock, a real sleep longer than the timeout); if it is only slow, pass a "
                "larger timeout.",
            ]
        )

    # -- what was dispatched -------------------------------------------------------------------
    @property
    def dispatched(self) -> list[DispatchedTask]:
        """Every accepted dispatch since the start (or :meth:`clear_records`), in order."""
        return list(self._recorder.dispatched)

    @property
    def executions(self) -> list[ExecutedTask]:
        """Every execution that ended since the start (or :meth:`clear_records`), in order
        (a recurring task has one per occurrence)."""
        return list(self._recorder.executions)

    def clear_records(self) -> None:
        """Forget the dispatches and executions recorded so far."""
        self._recorder.clear()

    def dispatched_of(
        self,
        task: TaskSpec | None = None,
        *,
        where: Callable[[DispatchedTask], bool] | None = None,
        at: datetime | None = None,
    ) -> list[DispatchedTask]:
        """The recorded dispatches matching (see :meth:`assert_dispatched`)."""
        return select(self._recorder.dispatched, task, where, at, _due)

    def executions_of(
        self,
        task: TaskSpec | None = None,
        *,
        where: Callable[[ExecutedTask], bool] | None = None,
    ) -> list[ExecutedTask]:
        """The recorded executions of a task class (or equal to a task instance)."""
        return select(self._recorder.executions, task, where, None, _scheduled)

    def assert_dispatched(
        self,
        task: TaskSpec,
        *,
        count: int | None = None,
        where: Callable[[DispatchedTask], bool] | None = None,
        at: datetime | None = None,
    ) -> list[DispatchedTask]:
        """Assert that ``task`` was dispatched (``count`` times exactly, or at least once)
        and return the matching records.

        ``task`` is a task class (its instances match) or an instance (an equal payload
        matches); ``where`` receives each :class:`DispatchedTask`; ``at`` is the aware
        time it was set to run (the dispatch time for an immediate task).
        """
        if count is not None and count < 0:
            raise ValueError("count must not be negative.")
        found = self.dispatched_of(task, where=where, at=at)
        if (count is None and found) or (count is not None and len(found) == count):
            return found
        wanted = "at least once" if count is None else f"{count} time{'s' * (count != 1)}"
        raise AssertionError(
            f"Expected {describe_spec(task, where, at)} to be dispatched {wanted}; "
            f"found {len(found)}.\n" + listing("Dispatched", self._recorder.dispatched)
        )

    def assert_not_dispatched(
        self,
        task: TaskSpec | None = None,
        *,
        where: Callable[[DispatchedTask], bool] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Assert that nothing matching was dispatched (with no ``task``: nothing at all)."""
        found = self.dispatched_of(task, where=where, at=at)
        if found:
            raise AssertionError(
                f"Expected no dispatch of {describe_spec(task, where, at)}; found "
                f"{len(found)}.\n" + listing("Matching", found)
            )

    # -- outcomes --------------------------------------------------------------------------------
    async def get_task(self, task_id: uuid.UUID) -> QueuedTask | None:
        """The stored row of a task (status, exception text, run counts...), if any."""
        return await self.storage.get(task_id)

    async def status(self, task_id: uuid.UUID) -> QueuedTaskStatus | None:
        """A task's stored status (``None``: no such task)."""
        row = await self.storage.get(task_id)
        return None if row is None else row.status

    async def assert_status(self, task_id: uuid.UUID, *statuses: QueuedTaskStatus) -> QueuedTask:
        """Assert that a task's stored status is one of ``statuses``; return its row."""
        if not statuses:
            raise ValueError("Pass at least one status, e.g. QueuedTaskStatus.COMPLETED.")
        row = await self.storage.get(task_id)
        if row is not None and row.status in statuses:
            return row
        wanted = " or ".join(s.value for s in statuses)
        if row is None:
            raise AssertionError(f"Expected task {task_id} to be {wanted}; it is not stored.")
        detail = f"\nIts exception:\n{row.exception}" if row.exception else ""
        runs = [e for e in self._recorder.executions if e.task_id == task_id]
        raise AssertionError(
            f"Expected task {task_id} to be {wanted}; it is {row.status.value}.{detail}\n"
            + listing("Its executions", runs)
        )

    # -- dependencies ----------------------------------------------------------------------------
    def override(self, provider: Any, value: Any) -> Override:
        """Replace one dependency of the container: ``provider`` is a provider of it or
        its name (``"email"``, dotted for nested containers); ``value`` is what it gives
        now (an object, or a provider such as ``providers.Factory(FakeEmail)``).

        It applies at once; use it as ``with host.override(...) as fake:`` to restore it
        at the end of the block, or leave it to the end of the test (the test host resets
        it when it stops). Handlers built from now on receive ``value``; a singleton that
        already received the original keeps it.
        """
        target, name = resolve_provider(self.container, provider)
        override = Override(target, value, name, self._overrides.remove)
        self._overrides.append(override)
        return override


def _due(record: DispatchedTask) -> datetime | None:
    return record.due_at


def _scheduled(record: ExecutedTask) -> datetime | None:
    return record.scheduled_for
