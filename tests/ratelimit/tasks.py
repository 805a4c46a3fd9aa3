"""Tasks and handlers of the rate-limit tests (they report to the shared Probe)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from evertask_abstractions import (
    CancellationToken,
    EverTask,
    EverTaskHandler,
    LinearRetryPolicy,
    RateLimitOverflowBehavior,
    RateLimitPolicy,
)
from tests.helpers import Probe


class Call(EverTask):
    tenant: str = "a"
    n: int = 0

    @property
    def rate_limit_key(self) -> str:
        return self.tenant


class _Reporting:
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def on_error(
        self, task_id: uuid.UUID, exception: BaseException | None, message: str | None
    ) -> None:
        self.probe.record("error", task_id, exception)


class CallHandler(_Reporting, EverTaskHandler[Call]):
    """2 starts per minute per tenant, no burst beyond that."""

    rate_limit = RateLimitPolicy(2, timedelta(minutes=1))

    async def handle(self, task: Call, cancellation: CancellationToken) -> None:
        self.probe.record("call", task.tenant, task.n)


class Short(EverTask):
    key: str = "k"
    n: int = 0


class ShortHandler(_Reporting, EverTaskHandler[Short]):
    """1 start per hour, a 10-minute horizon: the second task of a key is rejected."""

    rate_limit = RateLimitPolicy(
        1, timedelta(hours=1), max_reservation_horizon=timedelta(minutes=10)
    )

    @classmethod
    def get_rate_limit_key(cls, task: Short) -> str | None:
        return task.key

    async def handle(self, task: Short, cancellation: CancellationToken) -> None:
        self.probe.record("short", task.key, task.n)


class Dropped(EverTask):
    n: int = 0
    rate_limit_key: str = "shared"


class DroppedHandler(_Reporting, EverTaskHandler[Dropped]):
    rate_limit = RateLimitPolicy(
        1, timedelta(minutes=1), overflow_behavior=RateLimitOverflowBehavior.DISCARD
    )

    async def handle(self, task: Dropped, cancellation: CancellationToken) -> None:
        self.probe.record("dropped", task.n)


class Empty(EverTask):
    n: int = 0
    rate_limit_key: str = "e"


class EmptyHandler(_Reporting, EverTaskHandler[Empty]):
    rate_limit = RateLimitPolicy(1, timedelta(hours=1), start_empty=True)

    async def handle(self, task: Empty, cancellation: CancellationToken) -> None:
        self.probe.record("empty", task.n)


class Flaky(EverTask):
    rate_limit_key: str = "f"
    failures: int = 1


class FlakyHandler(_Reporting, EverTaskHandler[Flaky]):
    """Fails ``failures`` times, then succeeds; each retry draws from the budget."""

    rate_limit = RateLimitPolicy(1, timedelta(minutes=1))
    retry_policy = LinearRetryPolicy(3, timedelta(milliseconds=1))

    async def handle(self, task: Flaky, cancellation: CancellationToken) -> None:
        self.probe.record("flaky")
        if self.probe.count("flaky") <= task.failures:
            raise RuntimeError("transient")


class Keyless(EverTask):
    tenant: str | None = None

    @property
    def rate_limit_key(self) -> str | None:
        if self.tenant == "boom":
            raise ValueError("no key today")
        return self.tenant


class KeylessHandler(_Reporting, EverTaskHandler[Keyless]):
    rate_limit = RateLimitPolicy(1, timedelta(hours=1))

    async def handle(self, task: Keyless, cancellation: CancellationToken) -> None:
        self.probe.record("keyless", task.tenant)


class Slow(EverTask):
    n: int = 0


class SlowHandler(_Reporting, EverTaskHandler[Slow]):
    """At most 2 at once; each run waits for the probe's "release" gate."""

    max_concurrency = 2

    async def handle(self, task: Slow, cancellation: CancellationToken) -> None:
        self.probe.record("begin", task.n)
        try:
            await self.probe.gate("release").wait()
        finally:
            self.probe.record("end", task.n)


class Quick(EverTask):
    n: int = 0


class QuickHandler(_Reporting, EverTaskHandler[Quick]):
    async def handle(self, task: Quick, cancellation: CancellationToken) -> None:
        self.probe.record("quick", task.n)
        await asyncio.sleep(0)


ALL = [
    CallHandler,
    ShortHandler,
    DroppedHandler,
    EmptyHandler,
    FlakyHandler,
    KeylessHandler,
    SlowHandler,
    QuickHandler,
]
