"""Where a host is in its lifecycle, shared read-only by the engine's parts."""

from __future__ import annotations

from enum import Enum

__all__ = ["HostState", "Lifecycle"]


class HostState(str, Enum):
    """Lifecycle of a host."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Lifecycle:
    """The host's state; only the host changes it, the other parts read it."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = HostState.CREATED

    @property
    def running(self) -> bool:
        """True between a completed start and the beginning of stop."""
        return self.state is HostState.RUNNING

    @property
    def accepting(self) -> bool:
        """Whether dispatches are accepted (running, or stopping: rows are persisted)."""
        return self.state is HostState.RUNNING or self.state is HostState.STOPPING
