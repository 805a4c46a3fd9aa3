"""Failed-login throttling: a sliding window per client address and per username."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """Refuses login attempts for a key once it has ``max_failures`` failures in ``window``.

    Keys are strings such as ``"ip:203.0.113.9"`` and ``"user:admin"``; an attempt is
    refused when any of its keys is blocked, so neither one client guessing many
    passwords nor many clients guessing one user's password get more than
    ``max_failures`` tries per window. At most ``max_keys`` keys are remembered (the
    least recently failed are forgotten first), so the throttle's memory is bounded.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds until an attempt for ``keys`` is allowed again, or ``None`` if it is now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            stamps = self._recent(key, now)
            if stamps is not None and len(stamps) >= self.max_failures:
                wait = max(wait, stamps[-self.max_failures] + self.window - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, keys: Iterable[str]) -> None:
        """Count one failed attempt against every key."""
        now = self._clock()
        for key in keys:
            stamps = self._recent(key, now)
            if stamps is None:
                stamps = self._failures[key] = deque(maxlen=self.max_failures)
            stamps.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def reset(self, keys: Iterable[str]) -> None:
        """Forget the failures of ``keys`` (after a successful login)."""
        for key in keys:
            self._failures.pop(key, None)
