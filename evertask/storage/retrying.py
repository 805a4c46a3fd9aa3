"""Status writes that survive a storage hiccup: retried with backoff, never raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

__all__ = ["write_retrying"]

log = logging.getLogger("evertask.engine")

P = ParamSpec("P")


async def write_retrying(fn: Callable[P, Awaitable[Any]], *args: P.args, **kwargs: P.kwargs) -> Any:
    """Call the storage write ``fn``; on failure retry with backoff, then log and give up.
    Returns what ``fn`` returned (``None`` when it gave up).

    A row whose write keeps failing stays recoverable and runs again after a restart
    (at-least-once); it is never marked Failed because the database was away.
    """
    try:
        return await fn(*args, **kwargs)
    except Exception as exc:
        error: Exception = exc
    delay = 0.05
    for attempt in range(1, 8):
        log.warning(
            "Storage write %s failed (attempt %d): %r; retrying in %.2f s.",
            getattr(fn, "__name__", fn),
            attempt,
            error,
            delay,
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            error = exc
    log.error(
        "Storage write %s failed permanently: %r. The task row keeps its previous "
        "status and is recovered at the next start.",
        getattr(fn, "__name__", fn),
        error,
        exc_info=error,
    )
    return None
