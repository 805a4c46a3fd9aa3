"""A testing kit for code that uses EverTask: handlers, and the code that dispatches.

:class:`EverTaskTestHost` runs a real host on memory storage and a manual clock:
``await host.run_until_idle()`` runs what is due, ``await host.advance(timedelta(...))``
moves time through delayed tasks, recurring occurrences and retry delays, and the host
records every dispatch and execution for assertions. ``host.override(name, value)``
replaces one dependency of the container for a test.

The pytest plugin (``evertask.testing.pytest_plugin``, registered as ``evertask``)
provides the ``evertask_clock``, ``make_evertask_host`` and ``evertask_host`` fixtures.
See docs/testing.md.
"""

from __future__ import annotations

from ..clock import ManualClock
from ..observe import Outcome
from .factory import EverTaskHostFactory
from .host import DEFAULT_IDLE_TIMEOUT, EverTaskTestHost, HostBusyError
from .matching import TaskSpec
from .overrides import Override
from .records import DispatchedTask, ExecutedTask

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DispatchedTask",
    "EverTaskHostFactory",
    "EverTaskTestHost",
    "ExecutedTask",
    "HostBusyError",
    "ManualClock",
    "Outcome",
    "Override",
    "TaskSpec",
]
