"""Run a host on a background thread, for synchronous (WSGI) applications.

Django and Flask views are synchronous functions served by threads that run no event loop,
while a host lives in one. :class:`HostThread` gives the host a thread of its own with its
own event loop; any other thread dispatches with ``dispatcher.dispatch_sync(...)``, which
hands the dispatch to that loop and waits for the row to be committed.

Start it in the process that serves requests, after any fork (gunicorn and uWSGI workers
fork from a master): a thread does not survive ``fork()``. See docs/frameworks.md.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Coroutine
from datetime import timedelta
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

from evertask_abstractions import HostNotRunningError

from .builder import EverTaskServiceBuilder
from .dispatcher import Dispatcher
from .host import EverTaskHost

__all__ = ["HostThread", "start_host_in_thread"]

T = TypeVar("T")

log = logging.getLogger("evertask.threaded")


class _State(Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


# Host threads started in this process: a forked child learns that they did not come along.
_live: weakref.WeakSet[HostThread] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for runner in list(_live):
        runner._forked()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class HostThread:
    """A host running on a dedicated thread with its own event loop.

    ```python
    runner = HostThread(builder).start()           # returns once the host has started
    task_id = runner.dispatcher.dispatch_sync(SendReport(name="q3"))   # from any thread
    row = runner.run_coroutine(runner.host.storage.get(task_id))        # any host coroutine
    runner.stop()                                  # graceful: the host's shutdown, then join
    ```

    ``start()`` raises what the host's start raised (a storage that cannot be opened, a
    plug-in that failed). ``stop()`` runs the host's graceful shutdown (stop taking work,
    the grace period for running handlers, interrupted tasks resume at the next start) on
    the host's loop and joins the thread; calling it again, or from several threads, is
    safe. As a context manager it starts on entry and stops on exit.

    Args:
        host: A host (from ``builder.build()``) or a builder, built here. A host runs once,
            so a stopped ``HostThread`` cannot be started again: make a new one.
        name: The thread's name.
        stop_at_exit: Also stop the host gracefully when the interpreter exits (``atexit``),
            for processes that end without calling :meth:`stop` (most WSGI workers; a
            process killed by a signal it does not handle runs no ``atexit``). The
            thread is a daemon thread either way, so a forgotten host never keeps a
            process alive.
        grace_period: How long ``stop()`` lets running handlers finish before cancelling
            them; ``None``: the host's ``set_shutdown_grace_period`` (default 30 s).

    Start it in the process that serves requests: under gunicorn or uWSGI, in each worker
    after the fork (a lazy start at the first request, or gunicorn's ``post_worker_init``
    hook), never in the master before forking, since a thread does not survive ``fork()``.
    Using a ``HostThread`` in a child forked after its start raises :class:`RuntimeError`.
    """

    def __init__(
        self,
        host: EverTaskHost | EverTaskServiceBuilder,
        *,
        name: str = "evertask-host",
        stop_at_exit: bool = True,
        grace_period: timedelta | float | None = None,
    ) -> None:
        self._host = host.build() if isinstance(host, EverTaskServiceBuilder) else host
        self._name = name
        self._stop_at_exit = stop_at_exit
        self._grace_period = grace_period
        self._lock = threading.Lock()
        self._state = _State.NEW
        self._started = threading.Event()  # the host's start finished, well or not
        self._start_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None  # set on the loop: stop requested
        self._pid = os.getpid()
        self._forked_from: int | None = None

    # -- accessors -------------------------------------------------------------------------
    @property
    def host(self) -> EverTaskHost:
        """The host this thread runs."""
        return self._host

    @property
    def dispatcher(self) -> Dispatcher:
        """The host's dispatcher: call ``dispatch_sync(...)`` on it from any other thread."""
        self._check_process()
        return self._host.dispatcher

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The host's event loop while the thread runs, else ``None``."""
        return self._loop if self.is_running else None

    @property
    def is_running(self) -> bool:
        """Whether the host has started and ``stop()`` has not been called."""
        return self._state is _State.RUNNING and self._forked_from is None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> Self:
        """Start the thread and return once the host has started.

        Idempotent: a second call (from any thread) waits for the same start and returns,
        so ``runner.start()`` also serves as a lazy "start at first use". Raises the host's
        start exception if it failed, :class:`TimeoutError` if it has not started within
        ``timeout`` seconds (it goes on starting; call :meth:`stop` to give up), and
        :class:`RuntimeError` once the thread was stopped (a host runs once).
        """
        with self._lock:
            self._check_process()
            if self._state is _State.NEW:
                self._state = _State.STARTING
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                _live.add(self)
                self._thread.start()
                if self._stop_at_exit:
                    atexit.register(self._stop_at_exit_hook)
            elif self._state is not _State.STARTING and self._state is not _State.RUNNING:
                if self._start_error is not None:
                    raise RuntimeError("The EverTask host failed to start.") from (
                        self._start_error
                    )
                raise RuntimeError(
                    "This HostThread was stopped; a host runs once. Build a new host and a new "
                    "HostThread to start again."
                )
        if not self._started.wait(timeout):
            raise TimeoutError(f"The EverTask host did not start within {timeout} s.")
        error = self._start_error
        if error is not None:
            self._join(None)
            raise error
        if not self.is_running:
            raise HostNotRunningError("The EverTask host was stopped while it started.")
        return self

    def stop(
        self, timeout: float | None = None, *, grace_period: timedelta | float | None = None
    ) -> None:
        """Stop the host gracefully on its loop, then join the thread.

        ``grace_period`` overrides the one given to the constructor. Waits up to
        ``timeout`` seconds in all (``None``: as long as the shutdown takes, which is about
        the grace period at most) and raises :class:`TimeoutError` if the thread is still
        running then. Safe to call again, from any thread but the host's own, and before
        :meth:`start` (then it only makes the ``HostThread`` unusable).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._thread is not None and self._thread is threading.current_thread():
            raise RuntimeError(
                "HostThread.stop() was called on the host's own thread, where it would wait "
                "for itself; use `await host.stop()` there, or call stop() from another thread."
            )
        with self._lock:
            if self._forked_from is not None:
                return  # the thread lives in the parent process; nothing runs here
            if self._state is _State.NEW:
                self._state = _State.STOPPED
                return
            if self._state is _State.STARTING or self._state is _State.RUNNING:
                self._state = _State.STOPPING
                if grace_period is not None:
                    self._grace_period = grace_period
            thread = self._thread
        if not self._started.wait(_remaining(deadline)):
            raise TimeoutError(f"The EverTask host did not finish starting within {timeout} s.")
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has closed already: the thread is ending
                pass
        self._join(deadline)
        if thread is not None and thread.is_alive():
            raise TimeoutError(f"The EverTask host did not stop within {timeout} s.")

    def run_coroutine(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the host's loop from another thread and return its result.

        For the host's async API in synchronous code, e.g.
        ``runner.run_coroutine(runner.host.storage.get(task_id))`` or
        ``runner.run_coroutine(runner.dispatcher.cancel(task_id))``. On ``timeout`` the
        coroutine is cancelled and :class:`TimeoutError` raised.
        """
        try:
            self._check_process()
            loop = self._loop
            if not self.is_running or loop is None:
                raise HostNotRunningError("The EverTask host thread is not running.")
            if threading.current_thread() is self._thread:
                raise RuntimeError(
                    "run_coroutine() was called on the host's own thread, where it would "
                    "deadlock; await the coroutine there."
                )
        except BaseException:
            coro.close()  # never scheduled: no "was never awaited" warning
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HostThread {self._name!r} {self._state.value}>"

    # -- internals -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if self._started.is_set():
                log.exception("The EverTask host thread failed while stopping.")
            else:
                self._start_error = exc
        finally:
            with self._lock:
                self._state = _State.STOPPED
            self._started.set()

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            await self._host.start()
        except BaseException as exc:
            self._start_error = exc
            return
        with self._lock:
            if self._state is _State.STARTING:
                self._state = _State.RUNNING
        self._started.set()
        try:
            if self._state is _State.RUNNING:
                await self._wake.wait()
        finally:
            await self._host.stop(self._grace_period)

    def _join(self, deadline: float | None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_remaining(deadline))
        if thread is None or not thread.is_alive():
            _live.discard(self)
            if self._stop_at_exit:
                atexit.unregister(self._stop_at_exit_hook)

    def _stop_at_exit_hook(self) -> None:
        try:
            self.stop()
        except Exception:
            log.exception("The EverTask host thread did not stop cleanly at exit.")

    def _forked(self) -> None:
        # After fork the child holds a copy of this object but not the thread: forget it
        # (the lock may have been held by a thread that does not exist here).
        self._lock = threading.Lock()
        self._forked_from = self._pid
        self._pid = os.getpid()
        if self._stop_at_exit:
            atexit.unregister(self._stop_at_exit_hook)

    def _check_process(self) -> None:
        if self._forked_from is not None:
            raise RuntimeError(
                f"This HostThread was started in process {self._forked_from}, before this "
                "process was forked from it; its thread does not exist here. Start the host "
                "after the fork, in the worker process (docs/frameworks.md)."
            )


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def start_host_in_thread(
    host: EverTaskHost | EverTaskServiceBuilder,
    *,
    timeout: float | None = None,
    name: str = "evertask-host",
    stop_at_exit: bool = True,
    grace_period: timedelta | float | None = None,
) -> HostThread:
    """Start ``host`` (or build and start a builder's) on a :class:`HostThread`.

    Returns once the host has started; raises what its start raised. The arguments are
    :class:`HostThread`'s and :meth:`HostThread.start`'s.
    """
    runner = HostThread(host, name=name, stop_at_exit=stop_at_exit, grace_period=grace_period)
    return runner.start(timeout)
