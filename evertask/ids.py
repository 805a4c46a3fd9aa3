"""Time-ordered task ids (UUIDv7, RFC 9562)."""

from __future__ import annotations

import itertools
import os
import time
import uuid

__all__ = ["uuid7", "uuid7_int"]

_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)
# The 76 bits below the 48-bit time hold, in one per-process counter: rand_a (12 random
# bits, bits 64-75), the variant (bits 62-63, left 0 here and set by the prefix) and rand_b
# (62 bits) counting up from a random point below 2**61. `next()` on it is one atomic C call,
# so ids need no lock; rand_b carries into the variant bits only after 2**61 ids of one
# process (about 73,000 years at a million ids a second). Two processes only collide if
# they drew the same rand_a and their counts overlap (about 2**-42 for a billion ids each).
_counter = itertools.count(
    (int.from_bytes(os.urandom(2)) & 0xFFF) << 64 | int.from_bytes(os.urandom(8)) >> 3
)
_prefix = 0  # the time and version bits of the latest millisecond used


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, then a per-process counter (RFC 9562
    §6.2, method 1, with random starts). Ids made one after another increase strictly and
    their time part does not go back when the wall clock does. Unique, not secret."""
    return uuid.UUID(int=uuid7_int())


def uuid7_int() -> int:
    """A new UUIDv7 (see :func:`uuid7`) as its 128-bit integer, for ids kept before they
    are needed as ``uuid.UUID`` objects (``uuid.UUID(int=...)`` makes one)."""
    global _prefix
    count = next(_counter)
    ms = time.time_ns() // 1_000_000
    prefix = _prefix
    if ms > prefix >> 80:
        prefix = _prefix = (ms << 80) | _VERSION_VARIANT
    return prefix | count
