"""``None`` parameters bound without a miss in sqlite3's adapter registry.

sqlite3 binds ``int``, ``float``, ``str`` and ``bytearray`` directly; any other value,
``None`` included, first goes through its adapter registry. A miss there looks up
``__adapt__`` on the protocol class, and that failed lookup raises an ``AttributeError``
(its message formatted) which sqlite3 then clears: some 2,000 instructions, with the GIL
held, per ``NULL`` parameter. A task's row binds 17 of them (most of its columns are
empty): on the storage suite's workload, 8% of all instructions per task.

An identity adapter for ``None`` turns the miss into a registry hit: the value bound is
still ``None``, so still ``NULL``. The registry is process-wide, so the adapter applies to
every sqlite3 connection of the process, with the same outcome; an adapter for ``None``
the application registered itself is kept. A declared fast path (off with
``EVERTASK_FAST_PATHS=0``).
"""

from __future__ import annotations

import sqlite3

from evertask.storage.protocol import fast_paths_enabled

__all__ = ["bind_none_directly"]

_KEY = (type(None), sqlite3.PrepareProtocol)


_EMPTY: dict[None, None] = {}
_none = _EMPTY.get
"""The identity on ``None``, as a C call (``dict.get`` of an empty dict: ``None`` for any
key); a Python function would cost a frame per ``NULL``."""


def bind_none_directly() -> bool:
    """Register the identity adapter for ``None`` unless fast paths are off or an adapter
    for ``None`` is already registered; whether ours is in place afterwards."""
    if fast_paths_enabled() and _KEY not in sqlite3.adapters:
        sqlite3.register_adapter(type(None), _none)
    return sqlite3.adapters.get(_KEY) is _none
