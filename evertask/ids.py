"""Time-ordered task ids (UUIDv7, RFC 9562)."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

__all__ = ["uuid7"]

_lock = threading.Lock()
_last_ms = 0
_seq = 0
_UUID = uuid.UUID
_UNKNOWN = uuid.SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__
_rng = random.Random(int.from_bytes(os.urandom(16)))


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, a 12-bit counter that keeps ids monotonic
    within one millisecond in this process, and 62 random bits (ids are unique, not secret)."""
    global _last_ms, _seq
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms > _last_ms:
            _last_ms = ms
            _seq = _rng.getrandbits(9)  # leave headroom for increments
        else:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                ms = _last_ms
                _seq = 0
        seq = _seq
    rand = _rng.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    # bypass UUID.__init__'s argument parsing: the value is valid by construction
    u = _new(_UUID)
    _set(u, "int", value)
    _set(u, "is_safe", _UNKNOWN)
    return u
