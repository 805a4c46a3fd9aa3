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


# -- an order saga (POST /order; dashboard: the Workflows page) ------------------------------
class ReserveStock(EverTask, task_name="samples.reserve-stock"):
    """An order's first step: hold its items (undone by ReleaseStock if the order fails)."""

    order_id: int
    items: int = 1


class ReserveStockHandler(EverTaskHandler[ReserveStock]):
    result_type = dict[str, int]

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    async def handle(self, task: ReserveStock, cancellation: CancellationToken) -> dict[str, int]:
        self.logger.info("Reserved %d items for order %d", task.items, task.order_id)
        self._stats.count("reserved")
        return {"order_id": task.order_id, "reserved": task.items}


class ReleaseStock(EverTask, task_name="samples.release-stock"):
    """The compensation of ReserveStock: runs when a later step of the order failed."""

    order_id: int


class ReleaseStockHandler(EverTaskHandler[ReleaseStock]):
    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    async def handle(self, task: ReleaseStock, cancellation: CancellationToken) -> str:
        self.logger.info("Released the items of order %d", task.order_id)
        self._stats.count("released")
        return f"released order {task.order_id}"


class ChargeCard(EverTask, task_name="samples.charge-card"):
    """Charge the order (after the stock is reserved); ``decline`` makes the bank refuse."""

    order_id: int
    amount_cents: int
    decline: bool = False


class ChargeCardHandler(EverTaskHandler[ChargeCard]):
    result_type = str

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    async def handle(self, task: ChargeCard, cancellation: CancellationToken) -> str:
        # the result of the step before (ReserveStock), typed
        reserved: dict[str, int] = await self.parent_result(dict[str, int])
        if task.decline:
            raise PermissionError(f"the card was declined for order {task.order_id}")
        self.logger.info("Charged %d cents for %d items", task.amount_cents, reserved["reserved"])
        self._stats.count("charged")
        return f"ch_{task.order_id:06d}"


class ShipParcel(EverTask, task_name="samples.ship-parcel"):
    """Ship one parcel of the order from a warehouse (the parcels go out in parallel)."""

    order_id: int
    warehouse: str


class ShipParcelHandler(EverTaskHandler[ShipParcel]):
    result_type = dict[str, str]

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    async def handle(self, task: ShipParcel, cancellation: CancellationToken) -> dict[str, str]:
        self.logger.info("Shipped order %d from %s", task.order_id, task.warehouse)
        self._stats.count("shipped")
        return {
            "warehouse": task.warehouse,
            "tracking": f"{task.warehouse[:2].upper()}{task.order_id:06d}",
        }
