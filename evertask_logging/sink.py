"""The structured sink: one logging handler on EverTask's and the task handlers' loggers."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Literal

from evertask_abstractions import ConfigurationError

from .context import TaskContextObserver
from .formatters import ConsoleFormatter, JsonFormatter, TaskContextFilter

if TYPE_CHECKING:
    from evertask import EverTaskHost

__all__ = ["Format", "StructuredLogging"]

Format = Literal["json", "console"]


class StructuredLogging:
    """Installs a JSON (or console) handler on ``evertask`` and every registered handler
    class's logger when the host is built, and removes it when the host stops.

    ``propagate=False`` (default) makes this the only output of those loggers, like
    EverTask's Serilog package; ``True`` keeps the application's handlers too. A logger
    whose effective level would drop records at ``level`` gets ``level`` (restored later).
    """

    def __init__(
        self,
        format: Format = "json",
        stream: IO[str] | None = None,
        level: int = logging.INFO,
        loggers: Iterable[str] = (),
        propagate: bool = False,
    ) -> None:
        if format not in ("json", "console"):
            raise ConfigurationError(f"format must be 'json' or 'console', not {format!r}.")
        self.handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        self.handler.setLevel(level)
        self.handler.setFormatter(JsonFormatter() if format == "json" else ConsoleFormatter())
        self.handler.addFilter(TaskContextFilter())
        self.level = level
        self.propagate = propagate
        self.extra_loggers = list(loggers)
        self._saved: list[tuple[logging.Logger, int, bool]] = []

    def attach(self, host: EverTaskHost) -> None:
        """Install the handler and the task-context observer (a builder ``on_build`` hook)."""
        host.add_observer(TaskContextObserver())
        names = ["evertask", *self.extra_loggers]
        for desc in host.handlers:
            cls = desc.handler_class
            names.append(f"{cls.__module__}.{cls.__qualname__}")
        for name in dict.fromkeys(names):
            self._install(logging.getLogger(name))

    def _install(self, logger: logging.Logger) -> None:
        self._saved.append((logger, logger.level, logger.propagate))
        if logger.getEffectiveLevel() > self.level:
            logger.setLevel(self.level)
        logger.propagate = self.propagate
        logger.addHandler(self.handler)

    def uninstall(self) -> None:
        """Remove the handler and restore the loggers' levels and propagation."""
        for logger, level, propagate in reversed(self._saved):
            logger.removeHandler(self.handler)
            logger.setLevel(level)
            logger.propagate = propagate
        self._saved.clear()
        self.handler.flush()

    # HostComponent
    async def start(self, host: EverTaskHost) -> None:
        """Nothing to do: the sink is installed when the host is built."""

    async def stop(self) -> None:
        """The host is stopping: remove the sink."""
        self.uninstall()
