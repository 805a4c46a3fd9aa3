"""The signature of the ``make_evertask_host`` fixture (for annotating tests)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..builder import EverTaskServiceBuilder
    from ..clock import ManualClock
    from ..options import EverTaskOptions
    from .host import EverTaskTestHost

__all__ = ["EverTaskHostFactory"]


class EverTaskHostFactory(Protocol):
    """``await make_evertask_host(container, configure, ...)``: a started test host, stopped
    at the end of the test (the arguments are :meth:`EverTaskTestHost.create`'s, plus
    ``started``; the clock defaults to the ``evertask_clock`` fixture's)."""

    async def __call__(
        self,
        container: Any = None,
        configure: Callable[[EverTaskOptions], object] | None = None,
        *,
        builder: Callable[[EverTaskServiceBuilder], object] | None = None,
        clock: ManualClock | None = None,
        start: datetime | None = None,
        idle_timeout: float | None = None,
        started: bool = True,
    ) -> EverTaskTestHost:
        """Build (and unless ``started=False``, start) a test host."""
        ...
