"""Helpers for the builder extensions of the SQL storage packages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from evertask.clock import SystemClock, utc_now
from evertask.options import EverTaskOptions

from .retention import RetentionComponent, RetentionPolicy

__all__ = ["clock_now", "register_storage"]


def clock_now(options: EverTaskOptions) -> Callable[[], datetime]:
    """The time source of a host's options (the system clock, or a test clock)."""
    return utc_now if isinstance(options.clock, SystemClock) else options.clock.now


def register_storage(
    builder: Any,
    factory: Callable[[Callable[[], datetime]], Any],
    *,
    retention: RetentionPolicy | None,
    retention_interval: timedelta,
) -> Any:
    """``builder.use_storage`` with the host's clock, plus the optional retention component."""
    builder.use_storage(lambda options: factory(clock_now(options)))
    if retention is not None:
        builder.add_component(RetentionComponent(None, retention, retention_interval))
    return builder
