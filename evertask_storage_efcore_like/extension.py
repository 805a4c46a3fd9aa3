"""The shared body of the SQL storage packages' builder extensions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from .retention import RetentionComponent, RetentionPolicy

__all__ = ["add_storage"]

B = TypeVar("B")


def add_storage(
    builder: B,
    storage_class: Callable[..., Any],
    *args: Any,
    retention: RetentionPolicy | None,
    retention_interval: timedelta,
    **options: Any,
) -> B:
    """``builder.use_storage(storage_class(*args, **options))`` on the host's clock.

    The options are checked at once (a throw-away instance, no connection), the real
    storage is made at ``build()`` with the host's time source; ``retention`` adds a
    :class:`RetentionComponent` applying the policy every ``retention_interval``.
    """
    storage_class(*args, **options)  # validate the options now, not at build()
    target: Any = builder  # an EverTaskServiceBuilder (typed generically to keep the return type)
    target.use_storage(lambda opts: storage_class(*args, **{"now": opts.clock.now, **options}))
    if retention is not None:
        target.add_component(RetentionComponent(None, retention, retention_interval))
    return builder
