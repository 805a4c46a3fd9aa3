"""Cooperative cancellation shared by async handlers, sync handlers (threads) and the engine."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from .errors import EverTaskError

__all__ = ["CancellationToken", "CancellationTokenSource", "TaskCancelledError"]


_LOCK = threading.Lock()  # shared: registration and cancellation are rare and short


class TaskCancelledError(EverTaskError):
    """Raised by :meth:`CancellationToken.raise_if_cancelled` once cancellation was requested."""


class CancellationToken:
    """A read-only view of a cancellation request.

    Handlers check :attr:`is_cancelled` or call :meth:`raise_if_cancelled` (sync handlers
    running in threads), or ``await token.wait()``. In async handlers cancellation also
    arrives as :class:`asyncio.CancelledError`.
    """

    __slots__ = ("_callbacks", "_cancelled", "_reason")

    def __init__(self) -> None:
        self._cancelled = False
        self._reason = ""
        self._callbacks: list[Callable[[], object]] | None = None

    @classmethod
    def none(cls) -> CancellationToken:
        """A token that is never cancelled (for calling handlers directly in tests)."""
        return cls()

    @property
    def is_cancelled(self) -> bool:
        """True once cancellation was requested (user cancel, timeout or shutdown)."""
        return self._cancelled

    @property
    def reason(self) -> str:
        """Why cancellation was requested ("" while not cancelled)."""
        return self._reason

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelledError` if cancellation was requested."""
        if self._cancelled:
            raise TaskCancelledError(self._reason or "The task was cancelled.")

    def register(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (from the cancelling thread) when cancellation is requested.

        If the token is already cancelled the callback runs immediately.
        """
        with _LOCK:
            if not self._cancelled:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        callback()

    async def wait(self) -> None:
        """Wait until cancellation is requested."""
        if self._cancelled:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def _wake() -> None:
            def _set() -> None:
                if not fut.done():
                    fut.set_result(None)

            loop.call_soon_threadsafe(_set)

        self.register(_wake)
        await fut

    def _cancel(self, reason: str) -> bool:
        with _LOCK:
            if self._cancelled:
                return False
            self._cancelled = True
            self._reason = reason
            callbacks, self._callbacks = self._callbacks, None
        for cb in callbacks or ():
            try:
                cb()
            except Exception:  # a failing callback must not break cancellation
                pass
        return True


class CancellationTokenSource:
    """Owns a :class:`CancellationToken` and can cancel it (thread-safe)."""

    __slots__ = ("token",)

    def __init__(self) -> None:
        self.token = CancellationToken()

    @property
    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self.token.is_cancelled

    def cancel(self, reason: str = "The task was cancelled.") -> bool:
        """Request cancellation; returns False if it was already requested."""
        return self.token._cancel(reason)
