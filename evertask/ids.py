"""Time-ordered task ids (UUIDv7, RFC 9562)."""

from __future__ import annotations

import itertools
import os
import time
import uuid

__all__ = ["uuid7"]

_BITS = 74  # rand_a (12 bits) and rand_b (62 bits) of the layout, filled by one counter
_MASK = (1 << _BITS) - 1
_LOW = (1 << 62) - 1
# a per-process counter starting at a random point of the 74-bit space: `next()` on it is
# one atomic C call, so ids need no lock, and two processes only collide if their starts
# fall within the number of ids they make of each other (about 2**-50 for a billion ids)
_counter = itertools.count(int.from_bytes(os.urandom(10)) >> (80 - _BITS))
_last_ms = 0
_UUID = uuid.UUID
_UNKNOWN = uuid.SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, then 74 bits of a per-process counter
    (RFC 9562 §6.2, method 1, with a random start). Ids made one after another increase
    strictly and their time part does not go back when the wall clock does. Unique, not
    secret."""
    global _last_ms
    count = next(_counter) & _MASK
    ms = time.time_ns() // 1_000_000
    if ms > _last_ms:
        _last_ms = ms
    else:
        ms = _last_ms
    value = (ms << 80) | (0x7 << 76) | ((count >> 62) << 64) | (0b10 << 62) | (count & _LOW)
    # bypass UUID.__init__'s argument parsing: the value is valid by construction
    u = _new(_UUID)
    _set(u, "int", value)
    _set(u, "is_safe", _UNKNOWN)
    return u
