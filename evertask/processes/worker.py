"""The worker process: runs calls one at a time, sends back results, errors and log records.

It exits when the host asks it to, when its socket reaches end of file, and when the host
process dies (a watchdog thread waits on the parent sentinel; on Linux the kernel also
sends SIGKILL when the parent dies, ``PR_SET_PDEATHSIG``). Standard library only, so a
worker starts fast; OpenTelemetry is imported only when a call carries a trace context.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import protocol

__all__ = ["WorkerSettings", "worker_main"]

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs at start (pickled to it once)."""

    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    nice: int = 0
    log_level: int = logging.WARNING


class _Channel:
    """The worker's end of its socket: whole frames, one writer at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.call_id: int | None = None
        self.broken = False

    def send(self, message: tuple[Any, ...]) -> None:
        data = protocol.frame(protocol.dumps(message))
        with self.lock:
            if self.broken:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.broken = True  # the host is gone: the watchdog or the next read ends us


class _ShipHandler(logging.Handler):
    """Sends each record to the host (rendered: the host never formats worker objects)."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__(logging.NOTSET)
        self._channel = channel
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "active", False):
            return  # a record logged while sending one (never loop)
        self._busy.active = True
        try:
            try:
                message = record.getMessage()
            except Exception:
                message = str(record.msg)
            exc_text = record.exc_text
            if record.exc_info and not exc_text:
                exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            fields = {
                "name": record.name,
                "levelno": record.levelno,
                "levelname": record.levelname,
                "msg": message,
                "created": record.created,
                "msecs": record.msecs,
                "relativeCreated": record.relativeCreated,
                "pathname": record.pathname,
                "filename": record.filename,
                "module": record.module,
                "lineno": record.lineno,
                "funcName": record.funcName,
                "exc_text": exc_text,
                "stack_info": record.stack_info,
                "process": record.process,
                "processName": record.processName,
                "thread": record.thread,
                "threadName": record.threadName,
            }
            self._channel.send((protocol.LOG, self._channel.call_id, fields))
        except Exception:
            pass
        finally:
            self._busy.active = False


def _die_with_parent() -> None:
    """Exit as soon as the host process dies, even in the middle of a call."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:
        return

    def watch() -> None:
        from multiprocessing.connection import wait

        wait([sentinel])
        os._exit(70)  # the host is gone: no cleanup can matter to it

    threading.Thread(target=watch, name="evertask-host-watchdog", daemon=True).start()


def _run(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):  # an async function: run it to completion here
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


_levels_set: dict[str, int] = {}


def _apply_levels(root_level: int, levels: dict[str, int]) -> None:
    """Give the worker's loggers the levels the host sent (see ``ProcessPool``)."""
    root = logging.getLogger()
    if root.level != root_level:
        root.setLevel(root_level)
    if levels == _levels_set:
        return
    for name in _levels_set.keys() - levels.keys():
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    _levels_set.clear()
    _levels_set.update(levels)


def _call(channel: _Channel, call_id: int, payload: bytes) -> None:
    """Run one call and send back its result or its error."""
    token = None
    span_cm: Any = None
    try:
        func, args, kwargs, carrier, (root_level, levels) = pickle.loads(payload)
        _apply_levels(root_level, levels)
        if carrier:
            from opentelemetry import context, propagate, trace

            token = context.attach(propagate.extract(carrier))
            name = getattr(func, "__qualname__", None) or type(func).__qualname__
            span_cm = trace.get_tracer("evertask").start_as_current_span(
                f"evertask.process {name}", attributes={"evertask.process.pid": os.getpid()}
            )
            span_cm.__enter__()
        result = _run(func, args, kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt included: report them
        if span_cm is not None:
            span_cm.__exit__(type(exc), exc, exc.__traceback__)
        _send_error(channel, call_id, exc)
    else:
        if span_cm is not None:
            span_cm.__exit__(None, None, None)
        try:
            data = protocol.dumps((protocol.RESULT, call_id, result))
        except Exception as exc:
            error = TypeError(
                f"The result of the call ({type(result).__qualname__}) cannot be pickled back "
                f"to the host: {exc}"
            )
            _send_error(channel, call_id, error)
        else:
            with channel.lock:
                if not channel.broken:
                    try:
                        channel.sock.sendall(protocol.frame(data))
                    except OSError:
                        channel.broken = True
    finally:
        if token is not None:
            from opentelemetry import context

            context.detach(token)


def _send_error(channel: _Channel, call_id: int, exc: BaseException) -> None:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__ and tb.tb_next:
        tb = tb.tb_next  # the worker's own frames say nothing about the work
    text = "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()
    pickled: bytes | None
    try:
        pickled = pickle.dumps(exc, protocol=protocol.PROTOCOL)
        pickle.loads(pickled)  # one that pickles but cannot be rebuilt is sent as text
    except Exception:
        pickled = None
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"
    try:
        message = str(exc)
    except Exception:
        message = repr(exc)
    channel.send((protocol.ERROR, call_id, pickled, name, message, text))


def _flush_telemetry() -> None:
    """Export the spans an SDK configured in the worker still buffers."""
    if "opentelemetry.trace" not in sys.modules:
        return
    with contextlib.suppress(Exception):
        from opentelemetry import trace

        shutdown = getattr(trace.get_tracer_provider(), "shutdown", None)
        if shutdown is not None:
            shutdown()


def worker_main(sock: socket.socket, settings: WorkerSettings) -> None:
    """The worker's entry point (the target of its ``multiprocessing.Process``)."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the host, which stops us
    _die_with_parent()
    if settings.nice and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(settings.nice)
    sock.setblocking(True)
    channel = _Channel(sock)
    root = logging.getLogger()
    root.addHandler(_ShipHandler(channel))
    root.setLevel(settings.log_level)
    if settings.initializer is not None:
        try:
            settings.initializer(*settings.initargs)
        except BaseException as exc:
            channel.send((protocol.INIT_FAILED, "".join(traceback.format_exception(exc))))
            return
    channel.send((protocol.READY, os.getpid()))
    try:
        while True:
            try:
                message = protocol.recv_message(sock)
            except OSError:
                break
            if message is None or message[0] == protocol.STOP:
                break
            if message[0] == protocol.CALL:
                _, call_id, payload = message
                channel.call_id = call_id
                try:
                    _call(channel, call_id, payload)
                finally:
                    channel.call_id = None
    finally:
        _flush_telemetry()
        with contextlib.suppress(OSError):
            sock.close()
