"""Status writes that survive a storage hiccup: retried with backoff, never raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

__all__ = ["retry_write", "write_retrying"]

log = logging.getLogger("evertask.engine")

P = ParamSpec("P")

RETRIES = 7
"""Attempts after the first one before a write is given up (waits 0.05 s, doubling up to
2 s between them: about 5 s in all)."""

FIRST_DELAY = 0.05
"""Seconds before the first retry."""

MAX_DELAY = 2.0
"""Longest wait between two attempts."""


async def write_retrying(fn: Callable[P, Awaitable[Any]], *args: P.args, **kwargs: P.kwargs) -> Any:
    """Call the storage write ``fn``; on failure retry with backoff, then log and give up.
    Returns what ``fn`` returned (``None`` when it gave up).

    A row whose write keeps failing stays recoverable and runs again after a restart
    (at-least-once); it is never marked Failed because the database was away.
    """
    try:
        return await fn(*args, **kwargs)
    except Exception as exc:
        return await retry_write(exc, fn, *args, **kwargs)


async def retry_write(
    error: Exception, fn: Callable[P, Awaitable[Any]], *args: P.args, **kwargs: P.kwargs
) -> Any:
    """Go on after the first call of ``fn`` failed with ``error``, as
    :func:`write_retrying` does. For a write every task makes: the caller awaits ``fn``
    itself first, which saves the four objects a call through :func:`write_retrying` makes
    (its coroutine, the bound method, the arguments' tuple and dict)."""
    delay = FIRST_DELAY
    for attempt in range(1, RETRIES + 1):
        log.warning(
            "Storage write %s failed (attempt %d): %r; retrying in %.2f s.",
            getattr(fn, "__name__", fn),
            attempt,
            error,
            delay,
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)
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
