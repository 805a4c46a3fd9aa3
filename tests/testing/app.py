"""A small application for the testing kit's tests: services, tasks and handlers."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from typing import Any

from dependency_injector import containers, providers

from evertask import EverTaskHost, EverTaskOptions
from evertask_abstractions import (
    CancellationToken,
    EverTask,
    EverTaskHandler,
    LinearRetryPolicy,
    NoRetryPolicy,
    RateLimitPolicy,
    TaskDispatcher,
)


class Journal:
    """What the handlers did, with the host clock's time of each entry."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any, datetime]] = []
        self.attempts: dict[str, int] = {}
        self.release = asyncio.Event()

    def names(self) -> list[str]:
        return [e[0] for e in self.entries]

    def times(self, name: str) -> list[datetime]:
        return [e[2] for e in self.entries if e[0] == name]


class Mailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, to: str, subject: str) -> None:
        self.sent.append((to, subject))


class FakeMailer(Mailer):
    pass


class Container(containers.DeclarativeContainer):
    journal = providers.Singleton(Journal)
    mailer = providers.Singleton(Mailer)


class SendEmail(EverTask):
    to: str
    subject: str = "hello"


class SendEmailHandler(EverTaskHandler[SendEmail]):
    def __init__(self, mailer: Mailer) -> None:
        super().__init__()
        self._mailer = mailer

    async def handle(self, task: SendEmail, cancellation: CancellationToken) -> None:
        await self._mailer.send(task.to, task.subject)


class Signup(EverTask):
    email: str


class FollowUp(EverTask):
    email: str


class SignupHandler(EverTaskHandler[Signup]):
    """Dispatches a welcome email now and a follow-up a day later."""

    def __init__(self, dispatcher: TaskDispatcher, journal: Journal) -> None:
        super().__init__()
        self._dispatcher = dispatcher
        self._journal = journal

    async def handle(self, task: Signup, cancellation: CancellationToken) -> None:
        await self._dispatcher.dispatch(SendEmail(to=task.email, subject="welcome"))
        await self._dispatcher.dispatch(FollowUp(email=task.email), timedelta(days=1))


class FollowUpHandler(EverTaskHandler[FollowUp]):
    def __init__(self, journal: Journal, host: EverTaskHost) -> None:
        super().__init__()
        self._journal = journal
        self._host = host

    async def handle(self, task: FollowUp, cancellation: CancellationToken) -> None:
        self._journal.entries.append(("follow-up", task.email, self._host.clock.now()))


class Tick(EverTask):
    label: str = "tick"


class TickHandler(EverTaskHandler[Tick]):
    def __init__(self, journal: Journal, host: EverTaskHost) -> None:
        super().__init__()
        self._journal = journal
        self._host = host

    async def handle(self, task: Tick, cancellation: CancellationToken) -> None:
        self._journal.entries.append((task.label, None, self._host.clock.now()))


class Flaky(EverTask):
    """Fails ``fail_times`` times, then succeeds; retried 3 times, 10 s apart."""

    name: str
    fail_times: int


class FlakyHandler(EverTaskHandler[Flaky]):
    retry_policy = LinearRetryPolicy(3, timedelta(seconds=10))

    def __init__(self, journal: Journal, host: EverTaskHost) -> None:
        super().__init__()
        self._journal = journal
        self._host = host

    async def handle(self, task: Flaky, cancellation: CancellationToken) -> None:
        attempt = self._journal.attempts.get(task.name, 0) + 1
        self._journal.attempts[task.name] = attempt
        self._journal.entries.append(("attempt", attempt, self._host.clock.now()))
        if attempt <= task.fail_times:
            raise ConnectionError(f"attempt {attempt} of {task.name} failed")


class Boom(EverTask):
    reason: str = "boom"


class BoomHandler(EverTaskHandler[Boom]):
    retry_policy = NoRetryPolicy()

    async def handle(self, task: Boom, cancellation: CancellationToken) -> None:
        raise ValueError(task.reason)


class Blocker(EverTask):
    """Waits for ``journal.release`` (which a test may never set)."""


class BlockerHandler(EverTaskHandler[Blocker]):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self._journal = journal

    async def handle(self, task: Blocker, cancellation: CancellationToken) -> None:
        await self._journal.release.wait()
        self._journal.entries.append(("released", None, datetime.now()))


class Report(EverTask):
    name: str


class ReportHandler(EverTaskHandler[Report]):
    queue_name = "reports"

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self._journal = journal

    async def handle(self, task: Report, cancellation: CancellationToken) -> None:
        self._journal.entries.append(("report", task.name, datetime.now()))


def configure(options: EverTaskOptions) -> None:
    """What the application passes to ``add_evertask``."""
    options.register_tasks_from_module(sys.modules[__name__])


class Notify(EverTask):
    """Rate limited per ``tenant``: one a minute."""

    tenant: str
    n: int

    @property
    def rate_limit_key(self) -> str:
        return self.tenant


class NotifyHandler(EverTaskHandler[Notify]):
    rate_limit = RateLimitPolicy(1, timedelta(minutes=1))

    def __init__(self, journal: Journal, host: EverTaskHost) -> None:
        super().__init__()
        self._journal = journal
        self._host = host

    async def handle(self, task: Notify, cancellation: CancellationToken) -> None:
        self._journal.entries.append(("notify", (task.tenant, task.n), self._host.clock.now()))


class Exclusive(EverTask):
    n: int


class ExclusiveHandler(EverTaskHandler[Exclusive]):
    """At most one at a time; records the most that ever ran at once."""

    max_concurrency = 1
    running = 0
    most = 0

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self._journal = journal

    async def handle(self, task: Exclusive, cancellation: CancellationToken) -> None:
        cls = type(self)
        cls.running += 1
        cls.most = max(cls.most, cls.running)
        try:
            for _ in range(3):  # give another run the chance to overlap
                await asyncio.sleep(0)
            self._journal.entries.append(("exclusive", task.n, datetime.now()))
        finally:
            cls.running -= 1
