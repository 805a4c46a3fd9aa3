"""Module-level functions the process tests run in worker processes (picklable by name)."""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

log = logging.getLogger("tests.processes.work")
_initialized: list[Any] = []


def square(x: int) -> int:
    return x * x


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def log_lines(tag: str, count: int) -> str:
    for i in range(count):
        log.info("%s worker line %d", tag, i)
    try:
        raise KeyError(tag)
    except KeyError:
        log.warning("%s worker warning", tag, exc_info=True)
    return tag


def spin(seconds: float) -> int:
    """Pure-Python CPU work for about ``seconds`` (holds the GIL the whole time)."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        for _ in range(1000):
            n += 1
    return n


def spin_forever() -> None:
    while True:
        sum(range(1000))


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickle rebuilds it with one argument
        super().__init__(f"{a}/{b}")


def fail_unpicklable() -> None:
    raise Unpicklable(1, 2)


def remember(value: Any) -> None:
    _initialized.append(value)


def initialized() -> list[Any]:
    return list(_initialized)


def broken_initializer() -> None:
    raise RuntimeError("initializer says no")


def trace_id() -> str:
    from opentelemetry import trace

    return format(trace.get_current_span().get_span_context().trace_id, "032x")


async def async_square(x: int) -> int:
    return x * x


def ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
