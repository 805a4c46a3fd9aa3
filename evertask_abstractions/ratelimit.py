"""Keyed rate limiting, declared on a handler: :class:`RateLimitPolicy` and its options.

A handler declares ``rate_limit = RateLimitPolicy(permits, period)``; each task names the
budget it draws from with a ``rate_limit_key`` (a field or property of the task, or the
handler's :meth:`~evertask_abstractions.EverTaskHandler.get_rate_limit_key` classmethod).
The budget of one key is shared by the tasks of one task type; see ``docs/throttling.md``.
"""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from typing import Protocol, runtime_checkable

from .errors import ConfigurationError

__all__ = ["RateLimitOverflowBehavior", "RateLimitPolicy", "RateLimitedTask"]


class RateLimitOverflowBehavior(str, Enum):
    """What happens to a task that finds its key's budget spent."""

    WAIT_FOR_CAPACITY = "WaitForCapacity"
    """Reserve the next free slot and run then (unless it is beyond the reservation horizon)."""
    DISCARD = "Discard"
    """Do not wait: the task is rejected (a one-shot task fails, a recurring occurrence is
    skipped)."""


@runtime_checkable
class RateLimitedTask(Protocol):
    """A task that names its rate-limit key (a field or a property called ``rate_limit_key``).

    ``None`` or an empty string means "not rate limited" for that task.
    """

    @property
    def rate_limit_key(self) -> str | None:
        """The budget this task draws from (with its task type)."""
        ...


def _positive_timedelta(value: timedelta | float, what: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise ConfigurationError(
            f"RateLimitPolicy: {what} must be a timedelta (or seconds), got {value!r}."
        )
    td = value if isinstance(value, timedelta) else timedelta(seconds=float(value))
    if td <= timedelta(0):
        raise ConfigurationError(f"RateLimitPolicy: {what} must be positive, got {td}.")
    return td


def _positive_int(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"RateLimitPolicy: {what} must be an integer >= 1, got {value!r}.")
    return value


class RateLimitPolicy:
    """At most ``permits`` task starts per ``period`` for each key, with bursts up to ``burst``.

    The limiter is a GCRA (generic cell rate algorithm): starts are spaced by the emission
    interval ``period / permits``, and up to ``burst`` starts may happen back to back when
    the key has been idle. A task that finds its key's budget spent reserves the next free
    slot and waits for it without holding a worker (``WAIT_FOR_CAPACITY``), unless that
    slot lies beyond ``max_reservation_horizon`` or the behaviour is ``DISCARD``: then it is
    rejected (a one-shot task fails with :class:`~evertask_abstractions.RateLimitRejectedError`,
    a recurring occurrence is skipped).

    Args:
        permits: Starts allowed per ``period`` (>= 1).
        period: The period (a positive ``timedelta``, or seconds).
        burst: Starts allowed back to back on an idle key (>= 1; default ``permits``).
        throttle_retries: Each retry of a task draws from the budget too (default True).
        start_empty: A key seen for the first time (e.g. after a restart) starts with no
            burst: its first start waits one emission interval (default False: full).
        max_reservation_horizon: The furthest a slot may be reserved ahead (default 1 h).
        overflow_behavior: ``WAIT_FOR_CAPACITY`` (default) or ``DISCARD``.
    """

    __slots__ = (
        "burst",
        "max_reservation_horizon",
        "overflow_behavior",
        "period",
        "permits",
        "start_empty",
        "throttle_retries",
    )

    def __init__(
        self,
        permits: int,
        period: timedelta | float,
        *,
        burst: int | None = None,
        throttle_retries: bool = True,
        start_empty: bool = False,
        max_reservation_horizon: timedelta | float = timedelta(hours=1),
        overflow_behavior: RateLimitOverflowBehavior = RateLimitOverflowBehavior.WAIT_FOR_CAPACITY,
    ) -> None:
        self.permits = _positive_int(permits, "permits")
        self.period = _positive_timedelta(period, "period")
        self.burst = self.permits if burst is None else _positive_int(burst, "burst")
        self.throttle_retries = bool(throttle_retries)
        self.start_empty = bool(start_empty)
        self.max_reservation_horizon = _positive_timedelta(
            max_reservation_horizon, "max_reservation_horizon"
        )
        try:
            self.overflow_behavior = RateLimitOverflowBehavior(overflow_behavior)
        except ValueError:
            raise ConfigurationError(
                "RateLimitPolicy: overflow_behavior must be a RateLimitOverflowBehavior, got "
                f"{overflow_behavior!r}."
            ) from None

    @property
    def emission_interval(self) -> timedelta:
        """``period / permits``: the spacing of starts at the sustained rate."""
        return self.period / self.permits

    @property
    def tolerance(self) -> timedelta:
        """``emission_interval * (burst - 1)``: how far ahead of the sustained rate a burst
        may run."""
        return self.emission_interval * (self.burst - 1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RateLimitPolicy):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __repr__(self) -> str:
        extra = ""
        if self.burst != self.permits:
            extra += f", burst={self.burst}"
        if not self.throttle_retries:
            extra += ", throttle_retries=False"
        if self.start_empty:
            extra += ", start_empty=True"
        if self.max_reservation_horizon != timedelta(hours=1):
            extra += f", max_reservation_horizon={self.max_reservation_horizon!r}"
        if self.overflow_behavior is not RateLimitOverflowBehavior.WAIT_FOR_CAPACITY:
            extra += f", overflow_behavior=RateLimitOverflowBehavior.{self.overflow_behavior.name}"
        return f"RateLimitPolicy({self.permits}, {self.period!r}{extra})"
