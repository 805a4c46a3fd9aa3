"""Tasks and handlers of the demo application."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from evertask_abstractions import (
    CancellationToken,
    EverTask,
    EverTaskHandler,
    LinearRetryPolicy,
    RateLimitPolicy,
)

from .services import EmailService, Stats


class SendWelcomeEmail(EverTask, task_name="samples.send-welcome-email"):
    """Send a welcome email to a new user."""

    user_email: str
    user_name: str


class SendWelcomeEmailHandler(EverTaskHandler[SendWelcomeEmail]):
    retry_policy = LinearRetryPolicy(
        3, timedelta(milliseconds=200)
    ).handle_transient_network_errors()
    timeout = timedelta(seconds=10)

    def __init__(self, email: EmailService, stats: Stats) -> None:
        super().__init__()
        self._email = email
        self._stats = stats

    async def handle(self, task: SendWelcomeEmail, cancellation: CancellationToken) -> None:
        self.logger.info("Sending welcome email to %s", task.user_email)
        await self._email.send(task.user_email, f"Welcome, {task.user_name}!")
        self._stats.count("welcome")


class GenerateReport(EverTask, task_name="samples.generate-report"):
    """A slower job, sent to its own queue."""

    report: str
    rows: int = 1000


class GenerateReportHandler(EverTaskHandler[GenerateReport]):
    queue_name = "reports"

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    async def handle(self, task: GenerateReport, cancellation: CancellationToken) -> None:
        for chunk in range(0, task.rows, 250):
            cancellation.raise_if_cancelled()
            self.logger.info("Report %s: rows %d-%d", task.report, chunk, chunk + 249)
            await asyncio.sleep(0.01)
        self._stats.count("report")


class ResizeImage(EverTask, task_name="samples.resize-image"):
    """CPU-bound work in a synchronous handler: it runs in a worker thread."""

    name: str
    size: int = 200_000


class ResizeImageHandler(EverTaskHandler[ResizeImage]):
    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    def handle(self, task: ResizeImage, cancellation: CancellationToken) -> None:
        total = 0
        for i in range(task.size):
            total += i * i
        self.logger.info("Resized %s (checksum %d)", task.name, total % 997)
        self._stats.count("resize")


class Heartbeat(EverTask, task_name="samples.heartbeat"):
    """A recurring task registered at startup with a stable key."""


class HeartbeatHandler(EverTaskHandler[Heartbeat]):
    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    async def handle(self, task: Heartbeat, cancellation: CancellationToken) -> None:
        self._stats.count("heartbeat")


class FlakyCall(EverTask, task_name="samples.flaky-call"):
    """Fails sometimes, to show retries and failures in the dashboard."""

    fail_rate: float = 0.5


class FlakyCallHandler(EverTaskHandler[FlakyCall]):
    retry_policy = LinearRetryPolicy(2, timedelta(milliseconds=100))

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    async def handle(self, task: FlakyCall, cancellation: CancellationToken) -> None:
        if random.random() < task.fail_rate:
            raise ConnectionError("the remote service did not answer")
        self._stats.count("flaky-ok")


class SyncInvoices(EverTask, task_name="samples.sync-invoices"):
    """Calls a partner API that allows a few requests a minute per tenant: a rate limit."""

    tenant_id: str

    @property
    def rate_limit_key(self) -> str:
        return self.tenant_id


class SyncInvoicesHandler(EverTaskHandler[SyncInvoices]):
    # 2 starts a minute per tenant; the others are parked until their slot (dashboard:
    # the Rate limits page)
    rate_limit = RateLimitPolicy(2, timedelta(minutes=1))

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    async def handle(self, task: SyncInvoices, cancellation: CancellationToken) -> None:
        self.logger.info("Synced the invoices of %s", task.tenant_id)
        self._stats.count("invoices")
