"""Tasks and handlers the monitoring tests dispatch."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler, RateLimitPolicy

GATES: dict[str, asyncio.Event] = {}
"""Events ``Hold`` tasks wait on (created in the host's loop)."""


def gate(name: str) -> asyncio.Event:
    return GATES.setdefault(name, asyncio.Event())


class Work(EverTask):
    n: int = 0


class WorkHandler(EverTaskHandler[Work]):
    async def handle(self, task: Work, cancellation: CancellationToken) -> None:
        self.logger.info("work %s starting", task.n)
        self.logger.warning("work %s took a while", task.n)
        self.logger.info("work %s done", task.n)


class Boom(EverTask):
    message: str = "boom"


class BoomHandler(EverTaskHandler[Boom]):
    async def handle(self, task: Boom, cancellation: CancellationToken) -> None:
        self.logger.info("about to fail")
        self.logger.warning("failing with %s", task.message)
        raise ValueError(task.message)


class Report(EverTask):
    name: str = "r"


class ReportHandler(EverTaskHandler[Report]):
    queue_name = "reports"

    async def handle(self, task: Report, cancellation: CancellationToken) -> None:
        self.logger.info("report %s", task.name)


class Tick(EverTask):
    pass


class TickHandler(EverTaskHandler[Tick]):
    async def handle(self, task: Tick, cancellation: CancellationToken) -> None:
        self.logger.info("tick")


class Hold(EverTask):
    name: str


class HoldHandler(EverTaskHandler[Hold]):
    async def handle(self, task: Hold, cancellation: CancellationToken) -> None:
        await gate(task.name).wait()


class Limited(EverTask):
    """Rate-limited per tenant: 1 start per 10 minutes, so the next ones stay parked."""

    tenant: str = "acme"
    n: int = 0

    @property
    def rate_limit_key(self) -> str:
        return self.tenant


class LimitedHandler(EverTaskHandler[Limited]):
    rate_limit = RateLimitPolicy(
        1, timedelta(minutes=10), max_reservation_horizon=timedelta(hours=2)
    )

    async def handle(self, task: Limited, cancellation: CancellationToken) -> None:
        self.logger.info("limited %s %s", task.tenant, task.n)


class Single(EverTask):
    name: str


class SingleHandler(EverTaskHandler[Single]):
    """One run at a time; each waits for its gate."""

    max_concurrency = 1

    async def handle(self, task: Single, cancellation: CancellationToken) -> None:
        await gate(task.name).wait()


THROTTLED = (LimitedHandler, SingleHandler)
"""Handlers of the rate-limits page (not in every test host: its empty state needs none)."""


class Stage(EverTask):
    """A workflow step: returns ``{"name", "value"}``; fails when asked; with a gate, waits
    for it first (the gate's event is created in the host's loop)."""

    name: str
    value: int = 0
    fail: bool = False
    gate: str | None = None


class StageHandler(EverTaskHandler[Stage]):
    async def handle(self, task: Stage, cancellation: CancellationToken) -> dict[str, object]:
        if task.gate is not None:
            await gate(task.gate).wait()
        if task.fail:
            raise RuntimeError(f"{task.name} failed")
        return {"name": task.name, "value": task.value}


class Undo(EverTask):
    """A saga step's compensation."""

    name: str


class UndoHandler(EverTaskHandler[Undo]):
    async def handle(self, task: Undo, cancellation: CancellationToken) -> str:
        return f"undid {task.name}"
