"""Retry policies: the :class:`RetryPolicy` protocol, linear and exponential policies, filters.

Filter priority (EverTask's): cancellation, timeouts and rate-limit rejections are never
retried; then a ``handle_when`` predicate decides if set; then the ``handle`` whitelist;
then the ``do_not_handle`` blacklist; otherwise every exception is retried.
"""

from __future__ import annotations

import asyncio
import contextvars
import random as _random
import socket
import sys
import urllib.error
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import NoReturn, Protocol, Self, runtime_checkable

from .cancellation import TaskCancelledError
from .errors import ConfigurationError, RateLimitRejectedError

__all__ = [
    "ExponentialRetryPolicy",
    "FilteredRetryPolicy",
    "LinearRetryPolicy",
    "OnRetry",
    "RetryPolicy",
    "RetryWait",
    "set_retry_wait",
    "wait_before_retry",
]

OnRetry = Callable[[int, BaseException, timedelta], Awaitable[None]]
"""``on_retry(attempt, exception, delay)``: attempt is 1-based (the first retry is 1)."""

RetryWait = Callable[[timedelta], Awaitable[None]]
"""How the wait before a retry is made (``asyncio.sleep`` unless a host sets another)."""


async def _sleep(delay: timedelta) -> None:
    await asyncio.sleep(delay.total_seconds())


_RETRY_WAIT: contextvars.ContextVar[RetryWait] = contextvars.ContextVar(
    "evertask_retry_wait", default=_sleep
)


def wait_before_retry(delay: timedelta) -> Awaitable[None]:
    """Wait ``delay`` before a retry, as the built-in policies do.

    A real sleep, unless the host running the task set another wait for its executions
    (the testing kit's manual clock does: ``advance()`` then moves through retry delays).
    A custom :class:`RetryPolicy` should wait with it too.
    """
    return _RETRY_WAIT.get()(delay)


def set_retry_wait(wait: RetryWait) -> contextvars.Token[RetryWait]:
    """Make :func:`wait_before_retry` use ``wait`` in the current context (the host sets it
    in its executions' context)."""
    return _RETRY_WAIT.set(wait)


_DATABASE_ERROR_NAMES = frozenset(
    {
        # DB-API 2.0 names used by sqlite3, psycopg, pymysql/aiomysql, pyodbc, SQLAlchemy
        "OperationalError",
        "InterfaceError",
        "DisconnectionError",
        # asyncpg
        "PostgresConnectionError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "TooManyConnectionsError",
        "DeadlockDetectedError",
        "SerializationError",
        "LockNotAvailableError",
        "AdminShutdownError",
    }
)
_NETWORK_ERROR_NAMES = frozenset(
    {
        # httpx / httpcore
        "TransportError",
        "NetworkError",
        "ConnectError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        # aiohttp
        "ClientConnectionError",
        "ClientPayloadError",
        "ServerDisconnectedError",
        # urllib3 / requests
        "ProtocolError",
        "ChunkedEncodingError",
    }
)
_NETWORK_ERROR_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,
    socket.gaierror,
    urllib.error.URLError,
)


def _never_retried(exc: BaseException) -> bool:
    return isinstance(
        exc, asyncio.CancelledError | TaskCancelledError | TimeoutError | RateLimitRejectedError
    )


def _to_timedelta(value: timedelta | float, what: str) -> timedelta:
    delay = value if isinstance(value, timedelta) else timedelta(seconds=float(value))
    if delay <= timedelta(0):
        raise ConfigurationError(f"{what} must be positive, got {delay}.")
    return delay


@runtime_checkable
class RetryPolicy(Protocol):
    """Runs one execution of a handler with retries.

    ``attempt`` runs one attempt (with its own timeout). Before each retry the policy
    waits, then awaits ``on_retry(attempt_number, exception, delay)``. When it gives up
    it raises the last exception unchanged (so ``on_error`` sees the real error).
    Any object with this shape works (for example a tenacity adapter).
    """

    async def execute(self, attempt: Callable[[], Awaitable[None]], on_retry: OnRetry) -> None:
        """Run ``attempt`` until it succeeds, a non-retryable error occurs or retries run out."""
        ...

    def should_retry(self, exception: BaseException) -> bool:
        """Whether ``exception`` may be retried."""
        ...


class FilteredRetryPolicy:
    """Shared filter logic and retry loop; subclasses provide the delays."""

    def __init__(self) -> None:
        self._whitelist: tuple[type[BaseException], ...] = ()
        self._whitelist_names: frozenset[str] = frozenset()
        self._blacklist: tuple[type[BaseException], ...] = ()
        self._predicate: Callable[[BaseException], bool] | None = None

    # -- filters ---------------------------------------------------------------------------
    def handle(self, *exception_types: type[BaseException]) -> Self:
        """Retry only these exception types (and their subclasses)."""
        if self._blacklist:
            raise ConfigurationError(
                "handle() and do_not_handle() cannot be combined on one retry policy; "
                "use handle_when(predicate) for mixed rules."
            )
        types = _check_types(exception_types, "handle")
        self._whitelist = (*self._whitelist, *types)
        return self

    def do_not_handle(self, *exception_types: type[BaseException]) -> Self:
        """Retry everything except these exception types (and their subclasses)."""
        if self._whitelist or self._whitelist_names:
            raise ConfigurationError(
                "handle() and do_not_handle() cannot be combined on one retry policy; "
                "use handle_when(predicate) for mixed rules."
            )
        types = _check_types(exception_types, "do_not_handle")
        self._blacklist = (*self._blacklist, *types)
        return self

    def handle_when(self, predicate: Callable[[BaseException], bool]) -> Self:
        """Retry exactly when ``predicate(exception)`` is true (takes priority over lists)."""
        if not callable(predicate):
            raise ConfigurationError("handle_when() needs a callable taking the exception.")
        self._predicate = predicate
        return self

    def handle_transient_database_errors(self) -> Self:
        """Retry connection losses, deadlocks and serialization failures of any DB driver.

        Matches DB-API ``OperationalError``/``InterfaceError`` of every driver (sqlite3,
        psycopg, aiomysql, pyodbc), SQLAlchemy's wrappers of them, and asyncpg's
        connection, deadlock and serialization errors, by class name so no driver is imported.
        """
        return self._handle_names(_DATABASE_ERROR_NAMES)

    def handle_transient_network_errors(self) -> Self:
        """Retry connection errors, DNS failures and httpx / aiohttp / requests transport errors."""
        self._handle_names(_NETWORK_ERROR_NAMES)
        return self.handle(*_NETWORK_ERROR_TYPES)

    def handle_all_transient_errors(self) -> Self:
        """Both transient presets: database errors and network errors."""
        return self.handle_transient_database_errors().handle_transient_network_errors()

    def _handle_names(self, names: frozenset[str]) -> Self:
        if self._blacklist:
            raise ConfigurationError(
                "Transient-error presets are whitelists; they cannot be combined with "
                "do_not_handle()."
            )
        self._whitelist_names = self._whitelist_names | names
        return self

    def should_retry(self, exception: BaseException) -> bool:
        """Apply the filter priority to ``exception``."""
        if _never_retried(exception):
            return False
        if self._predicate is not None:
            return bool(self._predicate(exception))
        if self._whitelist or self._whitelist_names:
            if self._whitelist and isinstance(exception, self._whitelist):
                return True
            if self._whitelist_names:
                return any(k.__name__ in self._whitelist_names for k in type(exception).__mro__)
            return False
        if self._blacklist:
            return not isinstance(exception, self._blacklist)
        return True

    # -- execution -------------------------------------------------------------------------
    def delays(self) -> Sequence[timedelta]:
        """The waits before retry 1, 2, ... (its length is the number of retries)."""
        raise NotImplementedError

    async def execute(self, attempt: Callable[[], Awaitable[None]], on_retry: OnRetry) -> None:
        """Run ``attempt`` with this policy's retries (see :class:`RetryPolicy`)."""
        try:
            await attempt()
        except Exception as exc:
            await self.continue_after(exc, attempt, on_retry)

    async def continue_after(
        self, first_error: Exception, attempt: Callable[[], Awaitable[None]], on_retry: OnRetry
    ) -> None:
        """Go on after the first attempt failed with ``first_error`` (retry or re-raise it)."""
        delays = self.delays()
        retries = len(delays)
        number = 0
        exc = first_error
        # what an attempt's error must not chain to: the caller usually runs this inside
        # its ``except`` of the first error, so Python links every later error to it
        earlier: list[BaseException] = [first_error]
        handled = sys.exception()
        if handled is not None:
            earlier.append(handled)
        while True:
            if number >= retries or not self.should_retry(exc):
                _raise_unchained(exc)
            delay = delays[number]
            number += 1
            await wait_before_retry(delay)
            await on_retry(number, exc, delay)
            try:
                await attempt()
                return
            except Exception as next_exc:
                _detach(next_exc, earlier)
                earlier.append(next_exc)
                exc = next_exc


def _detach(error: BaseException, earlier: list[BaseException]) -> None:
    """Cut the implicit context that links ``error`` (or its own context) to an earlier attempt.

    Each attempt's error then carries only what its own code chained; the attempts are
    separate failures of one task, not errors raised while handling each other.
    """
    link: BaseException | None = error
    for _ in range(100):  # context chains are short; a cycle is never walked for ever
        if link is None:
            return
        context = link.__context__
        if context is not None and any(context is e for e in earlier):
            link.__context__ = None
            return
        link = context


def _raise_unchained(exc: BaseException) -> NoReturn:
    """Re-raise ``exc`` keeping its own ``__context__`` (raising it inside the caller's
    ``except`` block would replace it with the first attempt's error)."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context


def _check_types(
    types: Iterable[type[BaseException]], method: str
) -> tuple[type[BaseException], ...]:
    out = tuple(types)
    if not out:
        raise ConfigurationError(f"{method}() needs at least one exception type.")
    for t in out:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise ConfigurationError(
                f"{method}() accepts exception classes only; got {t!r}. Pass e.g. ConnectionError."
            )
    return out


class LinearRetryPolicy(FilteredRetryPolicy):
    """Retry a fixed number of times with a fixed delay, or with a list of delays.

    ``LinearRetryPolicy(3, timedelta(milliseconds=500))`` retries 3 times (4 attempts);
    ``LinearRetryPolicy([timedelta(seconds=1), timedelta(seconds=5)])`` waits 1 s then 5 s.
    Numbers are seconds.
    """

    def __init__(
        self,
        retry_count: int | Sequence[timedelta | float],
        retry_delay: timedelta | float | None = None,
    ) -> None:
        super().__init__()
        if isinstance(retry_count, int):
            if retry_count < 1:
                raise ConfigurationError(
                    f"retry_count must be at least 1, got {retry_count}; "
                    "to disable retries use NoRetryPolicy()."
                )
            if retry_delay is None:
                raise ConfigurationError("LinearRetryPolicy(count, delay) needs a retry delay.")
            delay = _to_timedelta(retry_delay, "retry_delay")
            self._delays: tuple[timedelta, ...] = (delay,) * retry_count
        else:
            if retry_delay is not None:
                raise ConfigurationError(
                    "Pass either LinearRetryPolicy(count, delay) or LinearRetryPolicy(delays)."
                )
            delays = tuple(_to_timedelta(d, "each retry delay") for d in retry_count)
            if not delays:
                raise ConfigurationError("LinearRetryPolicy(delays) needs at least one delay.")
            self._delays = delays

    def delays(self) -> Sequence[timedelta]:
        """The waits before each retry."""
        return self._delays

    def __repr__(self) -> str:
        return f"LinearRetryPolicy({[d.total_seconds() for d in self._delays]!r})"


class ExponentialRetryPolicy(FilteredRetryPolicy):
    """Retry with exponentially growing delays: ``base * factor**(n-1)``, capped by ``max_delay``.

    ``jitter`` (0..1) spreads each delay uniformly over ``delay * (1 ± jitter)`` (still capped),
    so that many failing tasks do not retry in lockstep.
    """

    def __init__(
        self,
        retry_count: int,
        base_delay: timedelta | float,
        *,
        factor: float = 2.0,
        max_delay: timedelta | float | None = None,
        jitter: float = 0.0,
        rng: _random.Random | None = None,
    ) -> None:
        super().__init__()
        if retry_count < 1:
            raise ConfigurationError(f"retry_count must be at least 1, got {retry_count}.")
        if factor < 1.0:
            raise ConfigurationError(f"factor must be >= 1.0, got {factor}.")
        if not 0.0 <= jitter <= 1.0:
            raise ConfigurationError(f"jitter must be between 0 and 1, got {jitter}.")
        self.retry_count = retry_count
        self.base_delay = _to_timedelta(base_delay, "base_delay")
        self.factor = factor
        self.max_delay = None if max_delay is None else _to_timedelta(max_delay, "max_delay")
        if self.max_delay is not None and self.max_delay < self.base_delay:
            raise ConfigurationError("max_delay must not be smaller than base_delay.")
        self.jitter = jitter
        self._rng = rng or _random.Random()

    def delays(self) -> Sequence[timedelta]:
        """The waits before each retry (freshly jittered on every call)."""
        out: list[timedelta] = []
        base = self.base_delay.total_seconds()
        cap = self.max_delay.total_seconds() if self.max_delay is not None else None
        for n in range(self.retry_count):
            seconds = base * self.factor**n
            if cap is not None:
                seconds = min(seconds, cap)
            if self.jitter:
                seconds *= self._rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
                if cap is not None:
                    seconds = min(seconds, cap)
            out.append(timedelta(seconds=seconds))
        return out

    def __repr__(self) -> str:
        return (
            f"ExponentialRetryPolicy({self.retry_count}, {self.base_delay!r}, "
            f"factor={self.factor}, "
            f"max_delay={self.max_delay!r}, jitter={self.jitter})"
        )


class NoRetryPolicy(FilteredRetryPolicy):
    """Run each task once, never retry."""

    def delays(self) -> Sequence[timedelta]:
        """No retries."""
        return ()

    def __repr__(self) -> str:
        return "NoRetryPolicy()"


__all__ += ["NoRetryPolicy"]
