"""pytest fixtures for testing code that uses EverTask (the ``evertask`` pytest plugin).

Installed with EverTask and registered through the ``pytest11`` entry point ``evertask``
(``-p no:evertask`` turns it off; ``-p evertask`` loads it where plugin autoloading is off).
It adds fixtures and no hooks, so runs that do not use them are unaffected.

- ``evertask_clock``: the manual clock the hosts of a test run on (override it for another
  start time);
- ``make_evertask_host``: ``await make_evertask_host(container, configure)`` builds and
  starts an :class:`~evertask.testing.EverTaskTestHost`, stopped when the test ends;
- ``evertask_host``: a started test host from your ``evertask_container``,
  ``evertask_configure`` (and optionally ``evertask_configure_builder``) fixtures.

The async fixtures need pytest-asyncio (any mode) or another plugin running async fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from evertask import EverTaskOptions, EverTaskServiceBuilder, ManualClock
    from evertask.testing import EverTaskHostFactory, EverTaskTestHost

__all__ = [
    "evertask_clock",
    "evertask_configure",
    "evertask_configure_builder",
    "evertask_container",
    "evertask_host",
    "make_evertask_host",
]

F = TypeVar("F", bound=Callable[..., Any])

_fixture: Any
try:  # pytest-asyncio's decorator works in its strict and auto modes alike
    import pytest_asyncio
except ImportError:  # pragma: no cover - another plugin may run async fixtures
    _fixture = pytest.fixture
else:
    _fixture = pytest_asyncio.fixture


def _async_fixture(function: F) -> F:
    """A function-scoped async fixture."""
    return cast(F, _fixture(function))


@pytest.fixture
def evertask_clock() -> ManualClock:
    """The manual clock of the test's EverTask hosts (2026-01-01 00:00 UTC at first)."""
    from evertask import ManualClock

    return ManualClock()


@pytest.fixture
def evertask_container() -> Any:
    """The container ``evertask_host`` is built with: override it in your conftest.py."""
    return None


@pytest.fixture
def evertask_configure() -> Callable[[EverTaskOptions], object] | None:
    """The ``configure`` callable ``evertask_host`` passes to ``add_evertask``: override it
    (e.g. ``return lambda o: o.register_tasks_from_module(my_app.tasks)``)."""
    return None


@pytest.fixture
def evertask_configure_builder() -> Callable[[EverTaskServiceBuilder], object] | None:
    """Optional: adjusts the service builder of ``evertask_host`` (queues, plug-ins; not
    storage)."""
    return None


@_async_fixture
async def make_evertask_host(
    evertask_clock: ManualClock,
) -> AsyncIterator[EverTaskHostFactory]:
    """A factory of started test hosts, stopped when the test ends."""
    from evertask.testing import DEFAULT_IDLE_TIMEOUT, EverTaskTestHost

    made: list[EverTaskTestHost] = []

    async def make(
        container: Any = None,
        configure: Callable[[EverTaskOptions], object] | None = None,
        *,
        builder: Callable[[EverTaskServiceBuilder], object] | None = None,
        clock: ManualClock | None = None,
        start: datetime | None = None,
        idle_timeout: float | None = None,
        started: bool = True,
    ) -> EverTaskTestHost:
        if clock is None and start is None:
            clock = evertask_clock
        host = EverTaskTestHost.create(
            container,
            configure,
            builder=builder,
            clock=clock,
            start=start,
            idle_timeout=DEFAULT_IDLE_TIMEOUT if idle_timeout is None else idle_timeout,
        )
        made.append(host)
        if started:
            await host.start()
        return host

    try:
        yield make
    finally:
        failure: BaseException | None = None
        for host in reversed(made):  # every host is stopped, even if one fails to
            try:
                await host.stop()
            except BaseException as error:
                failure = failure or error
        if failure is not None:
            raise failure


@_async_fixture
async def evertask_host(
    make_evertask_host: EverTaskHostFactory,
    evertask_container: Any,
    evertask_configure: Callable[[EverTaskOptions], object] | None,
    evertask_configure_builder: Callable[[EverTaskServiceBuilder], object] | None,
) -> EverTaskTestHost:
    """A started test host of your application (see the module docstring)."""
    if evertask_configure is None:
        raise pytest.UsageError(
            "The evertask_host fixture builds your application's host: define an "
            "`evertask_configure` fixture returning the configure callable you pass to "
            "add_evertask() (and `evertask_container` returning your container), or call "
            "`await make_evertask_host(container, configure)` in the test."
        )
    return await make_evertask_host(
        evertask_container, evertask_configure, builder=evertask_configure_builder
    )
