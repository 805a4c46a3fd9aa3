"""The host's pool of worker processes (docs/cpu-bound.md).

Each worker is a ``multiprocessing`` process (``forkserver`` or ``spawn``, never a bare
``fork``) with a socket pair of its own, which the event loop reads through an asyncio
stream: no thread per call, no polling. A worker runs one call at a time. A call that is
cancelled (the task's cancellation, its per-attempt timeout, the host stopping) terminates
exactly the worker running it (SIGTERM, then SIGKILL after ``terminate_timeout``); the
next call starts a new worker in its slot.

Workers start on demand, up to ``size``; none exists before the first call. They are
daemonic and watch their parent, so none outlives the host process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import pickle
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from opentelemetry import propagate, trace

from evertask_abstractions.processes import (
    ProcessPoolClosedError,
    ProcessTaskError,
    RemoteTraceback,
    WorkerCrashedError,
)

from ..logcapture import TaskLoggerAdapter
from ..options import ProcessPoolOptions
from . import protocol
from .worker import WorkerSettings, worker_main

__all__ = ["ProcessPool"]

log = logging.getLogger("evertask.processes")

P = ParamSpec("P")
R = TypeVar("R")

_DIED = -1  # (the reader's message to a call whose worker is gone)
_CLOSED = -2  # (the pool stopped while the call ran)
_HEADER = protocol.HEADER.size
_get_current_span = trace.get_current_span


class _Call:
    __slots__ = ("id", "inbox")

    def __init__(self, call_id: int) -> None:
        self.id = call_id
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()


class _Worker:
    __slots__ = (
        "call",
        "calls",
        "exitcode",
        "gone",
        "pid",
        "process",
        "reader",
        "reader_task",
        "reaped",
        "writer",
    )

    def __init__(
        self,
        process: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.process = process
        self.pid: int = process.pid
        self.reader = reader
        self.writer = writer
        self.reader_task: asyncio.Task[None] | None = None
        self.call: _Call | None = None
        self.calls = 0
        self.gone = False
        self.reaped: asyncio.Task[None] | None = None
        self.exitcode: int | None = None

    def __repr__(self) -> str:
        return f"<worker pid={self.pid} calls={self.calls}{' gone' if self.gone else ''}>"


class ProcessPool:
    """Runs picklable callables in worker processes the host owns.

    Handlers use it through :meth:`EverTaskHandler.run_in_process` and
    :class:`CpuBoundHandler`; other code of the application may call :meth:`run` on
    ``host.process_pool`` (or have it injected by type). Awaiting :meth:`run` and
    cancelling it terminates the worker running the call.
    """

    def __init__(self, options: ProcessPoolOptions | None = None) -> None:
        self._options = options = options or ProcessPoolOptions()
        self._size = options.effective_size
        if options.start_method is not None:  # (set on the field directly: check it here)
            ProcessPoolOptions().set_start_method(options.start_method)
        self._method = options.effective_start_method
        self._context: Any = None
        self._launcher: ThreadPoolExecutor | None = None
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._live = 0  # started and starting workers
        self._waiters: collections.deque[asyncio.Future[_Worker | None]] = collections.deque()
        self._reaping: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._names = itertools.count(1)
        self._closed = False
        self._counts = {"calls": 0, "started": 0, "crashed": 0, "terminated": 0, "recycled": 0}

    # -- introspection ---------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Worker processes at most."""
        return self._size

    @property
    def start_method(self) -> str:
        """``"forkserver"`` or ``"spawn"``."""
        return self._method

    @property
    def closed(self) -> bool:
        """Whether the pool was stopped (it then refuses calls)."""
        return self._closed

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the live workers (none before the first call)."""
        return sorted(w.pid for w in self._workers if not w.gone)

    def stats(self) -> dict[str, int]:
        """Counters: calls completed, workers started, crashed, terminated (cancel or
        timeout), recycled (``max_tasks_per_worker``); workers live, idle and busy now."""
        busy = sum(1 for w in self._workers if w.call is not None and not w.gone)
        return {
            **self._counts,
            "live": len(self.worker_pids),
            "idle": len(self._idle),
            "busy": busy,
        }

    # -- calls -----------------------------------------------------------------------------
    async def run(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``func(*args, **kwargs)`` in a worker process (all three picklable)."""
        result: R = await self.run_call(func, args, kwargs)
        return result

    async def warm_up(self, count: int | None = None) -> None:
        """Start workers now (up to ``count``, default the pool size) rather than at the
        first calls."""
        wanted = min(self._size, count or self._size)
        started = [await self._acquire() for _ in range(max(0, wanted - len(self._idle)))]
        for worker in started:
            self._release(worker)

    async def run_call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        logger: Any = None,
    ) -> Any:
        """Run ``func(*args, **kwargs)`` in a worker; ``logger`` (a handler's) receives the
        worker's log records for the run's logs."""
        if self._closed:
            raise _closed_error()
        carrier = _trace_carrier()
        levels = self._log_levels(logger)
        try:
            payload = pickle.dumps(
                (func, args, dict(kwargs), carrier, levels), protocol=protocol.PROTOCOL
            )
        except Exception as exc:
            name = getattr(func, "__qualname__", repr(func))
            raise TypeError(
                f"Work sent to a worker process must be picklable: {name} and its arguments "
                f"could not be pickled ({exc}). Use a module-level function and plain data; "
                "lambdas, closures and open resources cannot cross the process boundary."
            ) from exc
        keep = logger.keep_record if isinstance(logger, TaskLoggerAdapter) else None
        extra = getattr(logger, "extra", None) or None
        worker = await self._acquire()
        call = _Call(next(self._ids))
        worker.call = call
        outcome: tuple[Any, ...] | None = None
        try:
            try:
                worker.writer.write(
                    protocol.frame(protocol.dumps((protocol.CALL, call.id, payload)))
                )
                await worker.writer.drain()
            except (ConnectionError, OSError):
                pass  # the worker died: its reader reports it to this call
            while True:
                message = await call.inbox.get()
                if message[0] == protocol.LOG:
                    _emit(message[2], keep, extra)
                    continue
                outcome = message
                break
        except BaseException:
            worker.call = None
            final = _final_message(call)
            if final is not None and final[0] in (protocol.RESULT, protocol.ERROR):
                self._release(worker)  # it finished as it was cancelled: keep the worker
            else:
                self._terminate(worker)
            raise
        worker.call = None
        kind = outcome[0]
        if kind == _DIED:
            raise await self._crashed(worker, func)
        if kind == _CLOSED:
            raise _closed_error()
        self._release(worker)
        if kind == protocol.RESULT:
            return outcome[2]
        raise _remote_error(outcome)

    def _log_levels(self, logger: Any) -> tuple[int, dict[str, int]]:
        """The levels the worker's loggers get for one call: the host's (its root logger
        and every logger with a level set), lowered to the run's capture minimum, so the
        worker sends what the host would log or keep and nothing else."""
        level = self._options.worker_log_level
        if level is not None:
            return level, {}
        floor = logger.capture_level if isinstance(logger, TaskLoggerAdapter) else None
        root = logging.getLogger().getEffectiveLevel()
        levels: dict[str, int] = {}
        for name, item in list(logging.Logger.manager.loggerDict.items()):
            own = getattr(item, "level", logging.NOTSET)  # (placeholders have none)
            if own != logging.NOTSET:
                levels[name] = own if floor is None else min(own, floor)
        return (root if floor is None else min(root, floor)), levels

    async def _crashed(self, worker: _Worker, func: Callable[..., Any]) -> WorkerCrashedError:
        self._counts["crashed"] += 1
        if worker.reaped is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await asyncio.shield(worker.reaped)
        code = worker.exitcode
        if code is None:
            how = "closed its connection"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        name = getattr(func, "__qualname__", repr(func))
        return WorkerCrashedError(
            f"The worker process {worker.pid} running {name} {how} before returning a result.",
            code,
        )

    # -- workers ---------------------------------------------------------------------------
    async def _acquire(self) -> _Worker:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise _closed_error()
            while self._idle:
                worker = self._idle.pop()
                if not worker.gone:
                    return worker
            if self._live < self._size:
                self._live += 1
                try:
                    return await self._spawn()
                except BaseException:
                    self._live -= 1
                    self._wake()
                    raise
            waiter: asyncio.Future[_Worker | None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                got = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()
                    if handed is not None:
                        self._release(handed)
                    else:
                        self._wake()
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if got is not None and not got.gone:
                return got

    def _wake(self, worker: _Worker | None = None) -> bool:
        """Hand ``worker`` (or a free slot: ``None``) to the first caller waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return True
        return False

    def _release(self, worker: _Worker) -> None:
        """A call ended normally: the worker serves the next caller, idles or retires."""
        worker.calls += 1
        self._counts["calls"] += 1
        limit = self._options.max_tasks_per_worker
        if worker.gone:
            return
        if self._closed or (limit is not None and worker.calls >= limit):
            if not self._closed:
                self._counts["recycled"] += 1
            self._retire(worker)
            return
        if not self._wake(worker):
            self._idle.append(worker)

    def _mp_context(self) -> Any:
        if self._context is None:
            context = multiprocessing.get_context(self._method)
            if self._method == "forkserver":
                preload = ["__main__", *self._options.forkserver_preload]
                context.set_forkserver_preload(list(dict.fromkeys(preload)))
            self._context = context
        return self._context

    async def _spawn(self) -> _Worker:
        options = self._options
        context = self._mp_context()
        if self._launcher is None:  # one long-lived thread starts every worker (see below)
            self._launcher = ThreadPoolExecutor(1, thread_name_prefix="evertask-process-start")
        parent, child = socket.socketpair()
        settings = WorkerSettings(
            initializer=options.initializer,
            initargs=options.initargs,
            nice=options.worker_nice,
            log_level=self._log_levels(None)[0],
        )
        process = context.Process(
            target=worker_main,
            args=(child, settings),
            name=f"evertask-process-{next(self._names)}",
            daemon=True,  # never joined at interpreter exit; and the watchdog ends it anyway
        )
        loop = asyncio.get_running_loop()
        # started from one thread that lives as long as the pool: on Linux a spawned worker
        # gets SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG)
        starting = loop.run_in_executor(self._launcher, process.start)
        try:
            await asyncio.shield(starting)
        except BaseException:
            parent.close()
            starting.add_done_callback(lambda _: self._discard(process))
            raise
        finally:
            child.close()
        self._counts["started"] += 1
        try:
            reader, writer = await asyncio.open_connection(sock=parent)
            async with asyncio.timeout(options.start_timeout):
                first = await _read_message(reader)
        except BaseException as exc:
            parent.close()
            self._discard(process)
            if isinstance(exc, TimeoutError):
                raise WorkerCrashedError(
                    f"A new worker process did not start within {options.start_timeout:g} s "
                    "(set_start_timeout() changes the limit)."
                ) from None
            raise
        if first is None or first[0] != protocol.READY:
            writer.close()
            code = await loop.run_in_executor(
                None, _reap_process, process, 2.0, options.terminate_timeout
            )
            if first is not None and first[0] == protocol.INIT_FAILED:
                raise WorkerCrashedError(
                    f"The process pool's initializer failed in a new worker:\n{first[1]}"
                )
            raise WorkerCrashedError(
                f"A new worker process exited while starting (exit code {code}); its error "
                "is on the host's standard error. (With the spawn and forkserver start "
                "methods the main module is imported in the worker: guard the program's "
                "entry point with if __name__ == '__main__'.)",
                code,
            )
        worker = _Worker(process, reader, writer)
        self._workers.add(worker)
        worker.reader_task = loop.create_task(self._read(worker), name=f"{process.name}-reader")
        return worker

    async def _read(self, worker: _Worker) -> None:
        """Route the worker's messages to the call it runs, until its end of file."""
        try:
            while True:
                message = await _read_message(worker.reader)
                if message is None:
                    break
                call = worker.call
                if call is not None and message[1] == call.id:
                    call.inbox.put_nowait(message)
                elif message[0] == protocol.LOG:
                    _emit(message[2], None, None)  # between calls (the initializer...)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a message the host could not read
            call = worker.call
            if call is not None:
                call.inbox.put_nowait(
                    (protocol.ERROR, call.id, None, type(exc).__qualname__, str(exc), "")
                )
            log.exception("Unreadable message from worker process %s.", worker.pid)
        finally:
            self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        """The worker's connection ended (it exited, crashed or was terminated)."""
        call = worker.call
        if call is not None:
            call.inbox.put_nowait((_DIED, call.id))
        if not worker.gone:
            self._gone(worker)
            self._reap(worker, soft=None)

    def _gone(self, worker: _Worker) -> None:
        worker.gone = True
        self._workers.discard(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        self._live -= 1
        if not self._closed:
            self._wake()

    def _terminate(self, worker: _Worker) -> None:
        """Stop a worker now (its call was cancelled): SIGTERM, SIGKILL if it lingers."""
        if worker.gone:
            return
        self._counts["terminated"] += 1
        self._gone(worker)
        with contextlib.suppress(Exception):
            worker.process.terminate()
        self._reap(worker, soft=None)

    def _retire(self, worker: _Worker) -> None:
        """Ask an idle worker to exit; terminate it if it has not after ``stop_timeout``."""
        if worker.gone:
            return
        self._gone(worker)
        with contextlib.suppress(Exception):
            worker.writer.write(protocol.frame(protocol.dumps((protocol.STOP,))))
        self._reap(worker, soft=self._options.stop_timeout)

    def _reap(self, worker: _Worker, soft: float | None) -> None:
        loop = asyncio.get_running_loop()
        grace = self._options.terminate_timeout

        async def reap() -> None:
            try:
                worker.exitcode = await loop.run_in_executor(
                    None, _reap_process, worker.process, soft, grace
                )
            finally:
                worker.writer.close()
                task = worker.reader_task
                if task is not None and task is not asyncio.current_task():
                    task.cancel()

        task = worker.reaped = loop.create_task(reap(), name=f"evertask-reap-{worker.pid}")
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    def _discard(self, process: Any) -> None:
        """A process that never became a worker (its start was abandoned)."""
        with contextlib.suppress(Exception):
            if process.pid is not None:
                process.terminate()
        threading.Thread(
            target=_reap_process,
            args=(process, None, self._options.terminate_timeout),
            name="evertask-process-reap",
            daemon=True,
        ).start()

    # -- lifecycle -------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop every worker: idle ones are asked to exit (then terminated after
        ``stop_timeout``), busy ones are terminated. Calls waiting for a worker fail with
        :class:`ProcessPoolClosedError`; so does every later call."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_closed_error())
        for worker in list(self._workers):
            call = worker.call
            if call is not None:
                call.inbox.put_nowait((_CLOSED, call.id))
                self._terminate(worker)
            else:
                self._retire(worker)
        self._idle.clear()
        while self._reaping:
            await asyncio.gather(*list(self._reaping), return_exceptions=True)
        if self._launcher is not None:
            self._launcher.shutdown(wait=False)
            self._launcher = None


def _closed_error() -> ProcessPoolClosedError:
    return ProcessPoolClosedError(
        "The process pool is stopped: its host is stopping or stopped, so no work is sent to "
        "worker processes any more."
    )


def _reap_process(process: Any, soft: float | None, grace: float) -> int | None:
    """Wait for a worker to exit: ``soft`` seconds on its own, then SIGTERM, then SIGKILL
    after ``grace`` (blocking: runs in a thread); its exit code."""
    if process.pid is None:
        return None
    if soft:
        process.join(soft)
    if process.exitcode is None:
        with contextlib.suppress(Exception):
            process.terminate()
        process.join(grace)
    if process.exitcode is None:
        with contextlib.suppress(Exception):
            process.kill()
        process.join()
    code: int | None = process.exitcode
    with contextlib.suppress(Exception):
        process.close()
    return code


async def _read_message(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    try:
        header = await reader.readexactly(_HEADER)
    except asyncio.IncompleteReadError:
        return None
    (size,) = protocol.HEADER.unpack(header)
    data = await reader.readexactly(size)
    message: tuple[Any, ...] = pickle.loads(data)
    return message


def _final_message(call: _Call) -> tuple[Any, ...] | None:
    """A result or error already received for ``call`` (logs before it are dropped)."""
    inbox = call.inbox
    while not inbox.empty():
        message = inbox.get_nowait()
        if message[0] != protocol.LOG:
            return message
    return None


def _trace_carrier() -> dict[str, str] | None:
    """The current trace context (W3C ``traceparent``...) when a span is active."""
    if not _get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def _remote_error(message: tuple[Any, ...]) -> BaseException:
    """The exception the worker raised, with its traceback text as ``__cause__``."""
    _, _, pickled, type_name, text, traceback_text = message
    error: BaseException | None = None
    if pickled is not None:
        with contextlib.suppress(Exception):
            error = pickle.loads(pickled)
    if not isinstance(error, BaseException):
        error = ProcessTaskError(type_name, text, traceback_text)
    elif not isinstance(error, Exception):
        # SystemExit / KeyboardInterrupt in a worker must not stop the host
        error = ProcessTaskError(type_name, text, traceback_text)
    if traceback_text:
        error.__cause__ = RemoteTraceback(traceback_text)
    return error


_STANDARD = (
    "created",
    "msecs",
    "relativeCreated",
    "filename",
    "module",
    "exc_text",
    "stack_info",
    "process",
    "processName",
    "thread",
    "threadName",
    "levelname",
)


def _emit(
    fields: dict[str, Any],
    keep: Callable[[logging.LogRecord], None] | None,
    extra: Mapping[str, Any] | None,
) -> None:
    """Re-emit a worker's record in the host: kept with the run's logs (``keep``), then
    handled by the host's logger of the same name (its levels, filters and handlers)."""
    record = logging.LogRecord(
        fields["name"],
        fields["levelno"],
        fields["pathname"],
        fields["lineno"],
        fields["msg"],
        None,
        None,
        fields["funcName"],
    )
    attrs = record.__dict__
    for key in _STANDARD:
        attrs[key] = fields[key]
    if extra:
        for key, value in extra.items():
            attrs.setdefault(key, value)
    if keep is not None:
        keep(record)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)
