"""The messages between the host and a worker process, over one socket pair per worker.

A frame is an 8-byte big-endian length, then that many bytes of pickle (protocol 5) of a
tuple whose first item is the message kind. Standard library only: the worker imports it.

Host to worker::

    (CALL, call_id, payload)   # payload: pickle of (func, args, kwargs, trace, levels)
    (STOP,)

Worker to host::

    (READY, pid)
    (INIT_FAILED, traceback_text)
    (LOG, call_id, record_fields)        # call_id None: between calls
    (RESULT, call_id, value)
    (ERROR, call_id, pickled_exception | None, type_name, message, traceback_text)
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

__all__ = [
    "CALL",
    "ERROR",
    "HEADER",
    "INIT_FAILED",
    "LOG",
    "READY",
    "RESULT",
    "STOP",
    "dumps",
    "frame",
    "recv_message",
]

CALL = 1
STOP = 2
READY = 10
INIT_FAILED = 11
LOG = 12
RESULT = 13
ERROR = 14

HEADER = struct.Struct("!Q")
PROTOCOL = pickle.HIGHEST_PROTOCOL


def dumps(message: tuple[Any, ...]) -> bytes:
    """The pickle of a message."""
    return pickle.dumps(message, protocol=PROTOCOL)


def frame(data: bytes) -> bytes:
    """``data`` with its length header."""
    return HEADER.pack(len(data)) + data


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buffer)


def recv_message(sock: socket.socket) -> tuple[Any, ...] | None:
    """The next message on a blocking socket (``None`` at end of file: the host is gone)."""
    header = _recv_exactly(sock, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    data = _recv_exactly(sock, size)
    if data is None:
        return None
    message: tuple[Any, ...] = pickle.loads(data)
    return message
