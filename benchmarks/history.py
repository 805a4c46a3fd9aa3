"""A service with a long task history: what the history costs on SQLite and PostgreSQL.

``python -m benchmarks history [--quick] [--rows N] [--json FILE]``

Each database is measured empty and holding ``N`` finished tasks (1,000,000 by default,
100,000 with ``--quick``), written by :class:`History` the way a live service leaves them:
spread over the last 45 days with daily and weekly peaks, on six queues and ten task types,
97% Completed, 2% Failed, 1% Cancelled, every status-audit row the engine writes at audit
level Full, four recurring tasks with their runs, and 3% of the rows created since
midnight UTC, the newest of them still Queued or WaitingQueue. On a host of that service
(audit Full) the suite measures:

- start: ``await host.start()`` and the recovery pass it starts;
- idle dispatch latency: awaited dispatches of a no-op task, one at a time, each after the
  previous task completed;
- end-to-end throughput: no-op tasks from 64 concurrent producers until the last task's
  Completed row is committed, and its ratio to the empty database;
- monitoring: the dashboard's counts, the Today overview and the first page of Completed
  tasks (``MonitorQueries`` and ``query_tasks``), p50 / p95;
- retention: ``storage.cleanup(RetentionPolicy.with_uniform_retention(7,
  delete_completed_tasks=True))`` while 200 awaited dispatches a second run beside it,
  stopped after 60 s (20 s quick): task rows deleted per second and the dispatch latency,
  next to the same stream without a cleanup.

Bars (at 1,000,000 rows, both databases): overview and counts p95 <= 100 ms, retention >=
5,000 task rows/s, dispatch p99 during retention <= 10 ms, tasks/s >= 90% of empty.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import heapq
import itertools
import math
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from evertask import add_evertask, build_schedule
from evertask.builder import EverTaskServiceBuilder
from evertask.registry import handler_type_name
from evertask_abstractions import (
    AuditLevel,
    CancellationToken,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
)

from .common import Results, percentile, report

__all__ = ["KINDS", "History", "HistoryStats", "Plan", "load_postgres", "load_sqlite", "run"]

PG_URL = os.environ.get("EVERTASK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
S = QueuedTaskStatus


# -- the service's tasks -----------------------------------------------------------------------
# Real task types, registered on the measured host: its recovery pass loads and runs the
# history's pending rows as the service would. Handlers do nothing; their rows are the point.
class SendWelcomeEmail(EverTask, task_name="emails.send-welcome"):
    """Welcome a new user."""

    user_id: int
    email: str


class SendPasswordReset(EverTask, task_name="emails.password-reset"):
    """Mail a password-reset link."""

    user_id: int


class SendDigest(EverTask, task_name="emails.digest"):
    """Mail a user's digest."""

    user_id: int
    period: str


class DeliverWebhook(EverTask, task_name="webhooks.deliver"):
    """Post an event to a customer's endpoint."""

    endpoint_id: int
    event: str
    attempt: int


class ChargeInvoice(EverTask, task_name="billing.charge-invoice"):
    """Charge an invoice (dispatched with a task key: once per invoice)."""

    invoice_id: int
    amount_cents: int
    currency: str


class SyncPayment(EverTask, task_name="billing.sync-payment"):
    """Fetch a payment's status from the provider."""

    payment_id: int


class ExportCsv(EverTask, task_name="reports.export-csv"):
    """Export a report as CSV."""

    report_id: int
    user_id: int


class BuildSummary(EverTask, task_name="reports.build-summary"):
    """Build an account's daily summary."""

    account_id: int
    day: str


class ResizeImage(EverTask, task_name="media.resize-image"):
    """Make an image's thumbnail."""

    image_id: int
    width: int
    height: int


class RecalculateScore(EverTask, task_name="users.recalculate-score"):
    """Recompute a user's score."""

    user_id: int


class SendWelcomeEmailHandler(EverTaskHandler[SendWelcomeEmail]):
    """The service's handler (a no-op here)."""

    queue_name = "emails"

    async def handle(self, task: SendWelcomeEmail, cancellation: CancellationToken) -> None:
        return None


class SendPasswordResetHandler(EverTaskHandler[SendPasswordReset]):
    """The service's handler (a no-op here)."""

    queue_name = "emails"

    async def handle(self, task: SendPasswordReset, cancellation: CancellationToken) -> None:
        return None


class SendDigestHandler(EverTaskHandler[SendDigest]):
    """The service's handler (a no-op here)."""

    queue_name = "emails"

    async def handle(self, task: SendDigest, cancellation: CancellationToken) -> None:
        return None


class DeliverWebhookHandler(EverTaskHandler[DeliverWebhook]):
    """The service's handler (a no-op here)."""

    queue_name = "webhooks"

    async def handle(self, task: DeliverWebhook, cancellation: CancellationToken) -> None:
        return None


class ChargeInvoiceHandler(EverTaskHandler[ChargeInvoice]):
    """The service's handler (a no-op here)."""

    queue_name = "billing"

    async def handle(self, task: ChargeInvoice, cancellation: CancellationToken) -> None:
        return None


class SyncPaymentHandler(EverTaskHandler[SyncPayment]):
    """The service's handler (a no-op here)."""

    queue_name = "billing"

    async def handle(self, task: SyncPayment, cancellation: CancellationToken) -> None:
        return None


class ExportCsvHandler(EverTaskHandler[ExportCsv]):
    """The service's handler (a no-op here)."""

    queue_name = "reports"

    async def handle(self, task: ExportCsv, cancellation: CancellationToken) -> None:
        return None


class BuildSummaryHandler(EverTaskHandler[BuildSummary]):
    """The service's handler (a no-op here)."""

    queue_name = "reports"

    async def handle(self, task: BuildSummary, cancellation: CancellationToken) -> None:
        return None


class ResizeImageHandler(EverTaskHandler[ResizeImage]):
    """The service's handler (a no-op here)."""

    async def handle(self, task: ResizeImage, cancellation: CancellationToken) -> None:
        return None


class RecalculateScoreHandler(EverTaskHandler[RecalculateScore]):
    """The service's handler (a no-op here)."""

    async def handle(self, task: RecalculateScore, cancellation: CancellationToken) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Kind:
    """A task type of the service and how its tasks behave."""

    task: type[EverTask]
    handler: type[EverTaskHandler[Any]]
    queue: str  # where the engine puts its one-shot tasks
    weight: float  # share of the traffic
    median_ms: float  # handler duration (log-normal)
    delayed: float  # share dispatched with a delay
    payload: Callable[[int], str]  # the request JSON, as ``dump_task`` writes it
    error: str  # what its failures raise
    key: str | None = None  # task-key prefix (one key per task)


KINDS: tuple[Kind, ...] = (
    Kind(
        SendWelcomeEmail,
        SendWelcomeEmailHandler,
        "emails",
        8,
        140,
        0.0,
        lambda n: f'{{"user_id":{n},"email":"user{n}@example.com"}}',
        "smtplib.SMTPServerDisconnected: Connection unexpectedly closed",
    ),
    Kind(
        SendPasswordReset,
        SendPasswordResetHandler,
        "emails",
        4,
        110,
        0.0,
        lambda n: f'{{"user_id":{n}}}',
        "smtplib.SMTPServerDisconnected: Connection unexpectedly closed",
    ),
    Kind(
        SendDigest,
        SendDigestHandler,
        "emails",
        10,
        180,
        0.35,
        lambda n: f'{{"user_id":{n},"period":"{"daily" if n % 4 else "weekly"}"}}',
        "smtplib.SMTPDataError: (451, b'4.3.0 Temporary server error')",
    ),
    Kind(
        DeliverWebhook,
        DeliverWebhookHandler,
        "webhooks",
        28,
        260,
        0.02,
        lambda n: f'{{"endpoint_id":{n % 4001},"event":"order.updated","attempt":1}}',
        "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url "
        "'https://hooks.example.net/evt'",
    ),
    Kind(
        ChargeInvoice,
        ChargeInvoiceHandler,
        "billing",
        5,
        420,
        0.0,
        lambda n: f'{{"invoice_id":{n},"amount_cents":{1000 + n % 90000},"currency":"EUR"}}',
        "app.billing.PaymentDeclined: card_declined (insufficient_funds)",
        key="invoice",
    ),
    Kind(
        SyncPayment,
        SyncPaymentHandler,
        "billing",
        4,
        230,
        0.2,
        lambda n: f'{{"payment_id":{n}}}',
        "TimeoutError: the payment provider did not answer within 10 s",
    ),
    Kind(
        ExportCsv,
        ExportCsvHandler,
        "reports",
        3,
        2400,
        0.0,
        lambda n: f'{{"report_id":{n % 700},"user_id":{n}}}',
        "OSError: [Errno 28] No space left on device",
    ),
    Kind(
        BuildSummary,
        BuildSummaryHandler,
        "reports",
        2,
        3800,
        0.5,
        lambda n: f'{{"account_id":{n % 9000},"day":"2025-{1 + n % 12:02d}-{1 + n % 28:02d}"}}',
        "sqlalchemy.exc.OperationalError: (psycopg.errors.QueryCanceled) canceling statement "
        "due to statement timeout",
    ),
    Kind(
        ResizeImage,
        ResizeImageHandler,
        "default",
        22,
        650,
        0.0,
        lambda n: (
            f'{{"image_id":{n},"width":{320 + 160 * (n % 4)},"height":{240 + 120 * (n % 4)}}}'
        ),
        "PIL.UnidentifiedImageError: cannot identify image file <_io.BytesIO object>",
    ),
    Kind(
        RecalculateScore,
        RecalculateScoreHandler,
        "default",
        14,
        45,
        0.1,
        lambda n: f'{{"user_id":{n}}}',
        "KeyError: 'last_login'",
    ),
)

QUEUES = ("default", "recurring", "emails", "webhooks", "billing", "reports")


@dataclass(frozen=True, slots=True)
class Series:
    """A recurring task of the service (registered at every start by its task key)."""

    kind: int  # index into KINDS
    key: str
    configure: Callable[[Any], object]


SERIES: tuple[Series, ...] = (
    Series(7, "recurring:daily-summary", lambda b: b.schedule().every_day().at_time(day_time(3))),
    Series(5, "recurring:sync-payments", lambda b: b.schedule().every(15).minutes()),
    Series(9, "recurring:scores", lambda b: b.schedule().every_hour()),
    Series(2, "recurring:weekly-digest", lambda b: b.schedule().every_week().on_day(0)),
)


# -- the history ------------------------------------------------------------------------------
TASK_COLUMNS = (
    "Id",
    "CreatedAtUtc",
    "LastExecutionUtc",
    "ExecutionTimeMs",
    "ScheduledExecutionUtc",
    "Type",
    "Request",
    "Handler",
    "Exception",
    "IsRecurring",
    "RecurringTask",
    "RecurringInfo",
    "CurrentRunCount",
    "MaxRuns",
    "RunUntil",
    "NextRunUtc",
    "QueueName",
    "TaskKey",
    "AuditLevel",
    "RecoveryDispatchFailureCount",
    "Status",
    "TraceContext",
    "RetriedFrom",
    "OwnerNode",
)
AUDIT_COLUMNS = ("QueuedTaskId", "UpdatedAtUtc", "NewStatus", "Exception")
RUNS_COLUMNS = ("QueuedTaskId", "ExecutedAt", "ExecutionTimeMs", "Status", "Exception")
LOG_COLUMNS = (
    "Id",
    "TaskId",
    "TimestampUtc",
    "Level",
    "Message",
    "ExceptionDetails",
    "SequenceNumber",
)

US = 1_000_000  # microseconds per second: history times are integer microseconds
HOUR = 3600 * US
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)  # UUIDv7, as evertask.ids makes them
# traffic by hour of day (UTC): a night trough and an afternoon peak
HOUR_WEIGHTS = tuple(0.15 + math.exp(-(((h - 14) / 4.5) ** 2)) for h in range(24))
DELAYS_S = (60, 300, 900, 3600, 3600, 6 * 3600, 24 * 3600)  # what delayed dispatches ask for
RETRIES = 3  # the default retry policy: 3 retries, 500 ms apart
RETRY_DELAY_US = 500_000
CLAIM_LEAD_US = 20_000  # a delayed task's Queued is committed 20 ms before its time
COMPLETED, FAILED, CANCELLED = S.COMPLETED.value, S.FAILED.value, S.CANCELLED.value
QUEUED, IN_PROGRESS, WAITING = S.QUEUED.value, S.IN_PROGRESS.value, S.WAITING_QUEUE.value


@dataclass(frozen=True, slots=True)
class Encoding:
    """How ids, instants and booleans are stored by one database (as the storage binds them)."""

    uid: Callable[[uuid.UUID], Any]
    instant: Callable[[datetime], Any]
    flag: Callable[[bool], Any]


def _same(value: Any) -> Any:
    return value


NATIVE = Encoding(_same, _same, _same)
"""PostgreSQL: ``uuid``, ``timestamptz`` and ``boolean`` take the Python values."""


def sqlite_encoding() -> Encoding:
    """SQLite: the storage's own bind processors (CHAR(36) ids, fixed-width ISO text)."""
    from sqlalchemy.dialects import sqlite

    from evertask_storage_efcore_like.types import GuidType, UtcDateTime

    dialect = sqlite.dialect()
    uid = GuidType().bind_processor(dialect)
    instant = UtcDateTime().bind_processor(dialect)
    assert uid is not None and instant is not None
    return Encoding(uid, instant, int)


@dataclass(slots=True)
class Chunk:
    """Rows to insert together, in ``*_COLUMNS`` order (tasks before their children)."""

    tasks: list[tuple[Any, ...]] = field(default_factory=list)
    audits: list[tuple[Any, ...]] = field(default_factory=list)
    runs: list[tuple[Any, ...]] = field(default_factory=list)
    logs: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(slots=True)
class HistoryStats:
    """What a :class:`History` wrote."""

    statuses: Counter[str] = field(default_factory=Counter)
    status_audits: int = 0
    runs_audits: int = 0
    logs: int = 0
    samples: dict[str, uuid.UUID] = field(default_factory=dict)  # a task id per status

    @property
    def tasks(self) -> int:
        """Task rows."""
        return sum(self.statuses.values())


def _failure_text(error: str) -> str:
    """A Failed row's exception as the engine formats it after the default retries."""
    attempts = RETRIES + 1
    frames = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/app/tasks.py", line 88, in handle\n'
        "    await self.client.send(task)\n"
        '  File "/srv/app/app/clients.py", line 41, in send\n'
        "    raise error\n"
    )
    parts = [f"{error}\nFailed after {attempts} attempts."]
    for n in range(1, attempts + 1):
        final = " (final)" if n == attempts else ""
        parts.append(f"Attempt {n} of {attempts}{final}: {error}\n{frames}{error}")
    return "\n\n".join(parts)


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; exact sum)."""
    whole = sum(weights)
    if total <= 0 or whole <= 0:
        return [0] * len(weights)
    exact = [total * w / whole for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class History:
    """``rows`` one-shot tasks of a live service and its recurring tasks, oldest first.

    One-shot rows are spread over ``days`` days before midnight UTC (weekends at 45%,
    traffic growing 40% over the period, an afternoon peak), plus ``today_share`` of them
    between midnight and ``now``. Ids are UUIDv7 of the creation time; every row, audit
    and log holds what the engine writes for it at audit Full. The newest
    ``pending_share`` of the day's rows, rows whose work would reach past ``now`` and
    delayed rows due after it are still pending, without an owner (a graceful stop
    released them).
    """

    def __init__(
        self,
        rows: int,
        now: datetime,
        *,
        days: int = 45,
        today_share: float = 0.03,
        pending_share: float = 0.002,
        seed: int = 11,
    ) -> None:
        self.rows = rows
        self.now = now
        self.days = days
        self.today_share = today_share
        self.pending_share = pending_share
        self.seed = seed
        self.stats = HistoryStats()

    # -- time -------------------------------------------------------------------------------
    def _cells(self) -> list[tuple[int, int, int]]:
        """(start, end, rows) per hour of the history, oldest first."""
        now_us = _us(self.now)
        midnight = now_us - now_us % DAY
        past: list[tuple[int, int, float]] = []
        for d in range(self.days, 0, -1):
            start = midnight - d * DAY
            weekday = (EPOCH + timedelta(microseconds=start)).weekday()
            day_weight = (0.45 if weekday >= 5 else 1.0) * (1 + 0.4 * (self.days - d) / self.days)
            for h in range(24):
                s = start + h * HOUR
                past.append((s, s + HOUR, day_weight * HOUR_WEIGHTS[h]))
        today: list[tuple[int, int, float]] = []
        for h in range(24):
            s = midnight + h * HOUR
            if s >= now_us:
                break
            e = min(s + HOUR, now_us)
            today.append((s, e, HOUR_WEIGHTS[h] * (e - s) / HOUR))
        today_rows = round(self.rows * self.today_share) if today else 0
        cells: list[tuple[int, int, int]] = []
        for group, total in ((past, self.rows - today_rows), (today, today_rows)):
            counts = _allocate(total, [w for _, _, w in group])
            cells.extend((s, e, n) for (s, e, _), n in zip(group, counts, strict=True))
        return cells

    # -- rows -------------------------------------------------------------------------------
    def chunks(self, enc: Encoding, size: int = 20_000) -> Iterator[Chunk]:
        """The history as insertable chunks; children follow their tasks, status and runs
        audits in time order (their identity ids grow with time, as the engine's do)."""
        rnd = random.Random(self.seed)
        stats = self.stats = HistoryStats()
        now_us = _us(self.now)
        midnight = now_us - now_us % DAY
        uid, instant, flag = enc.uid, enc.instant, enc.flag
        counter = itertools.count(rnd.getrandbits(12) << 64 | rnd.getrandbits(58))

        def new_id(at_us: int) -> uuid.UUID:
            return uuid.UUID(int=((at_us // 1000) << 80) | _VERSION_VARIANT | next(counter))

        def at(us: int) -> Any:
            return instant(EPOCH + timedelta(microseconds=us))

        # the service restarts (a deploy) every few days under a new node id
        first = midnight - self.days * DAY
        node_starts = [first]
        while node_starts[-1] < now_us:
            node_starts.append(node_starts[-1] + rnd.randrange(DAY, 6 * DAY))
        nodes = [uid(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in node_starts]

        def node_at(us: int) -> Any:
            return nodes[bisect.bisect_right(node_starts, us) - 1]

        kinds = [
            (
                k,
                k.task.evertask_type_name(),
                handler_type_name(k.handler),
                _failure_text(k.error),
                math.log(k.median_ms),
            )
            for k in KINDS
        ]
        cumulative = list(itertools.accumulate(k.weight for k in KINDS))
        weight_total = cumulative[-1]
        # audits as (time, order, table, row), table 0 StatusAudit and 1 RunsAudit: those
        # of this chunk, and (a heap) those written later than its last task was created
        ready: list[tuple[int, int, int, tuple[Any, ...]]] = []
        deferred: list[tuple[int, int, int, tuple[Any, ...]]] = []
        seq = itertools.count()
        chunk = Chunk()

        def audit(us: int, row: tuple[Any, ...]) -> None:
            ready.append((us, next(seq), 0, row))

        false, true = flag(False), flag(True)
        statuses = stats.statuses
        samples = stats.samples

        # the recurring tasks, registered when the history starts, with every run since
        for number, series in enumerate(SERIES):
            kind, type_name, handler_name, failure, _ = kinds[series.kind]
            schedule = build_schedule(series.configure)
            created = first + HOUR + number * 7 * US
            tid = new_id(created)
            t = uid(tid)
            runs = 0
            last_end = 0
            last_ms = 0.0
            occurrence = schedule.next_occurrence(_instant(created))
            while occurrence is not None and _us(occurrence) < now_us - 60 * US:
                due_us = _us(occurrence)
                occurrence = schedule.next_occurrence(occurrence)
                runs += 1
                ms = kind.median_ms * math.exp(0.4 * rnd.gauss())
                start = due_us + 700 + rnd.randrange(300)
                end = start + int(ms * 1000)
                failed = rnd.random() < 0.01
                status = FAILED if failed else COMPLETED
                error = failure if failed else None
                for us, table, row in (
                    (due_us - CLAIM_LEAD_US, 0, (t, at(due_us - CLAIM_LEAD_US), QUEUED, None)),
                    (start, 0, (t, at(start), IN_PROGRESS, None)),
                    (end, 0, (t, at(end), status, error)),
                    (end, 1, (t, at(end), ms, status, error)),
                ):
                    heapq.heappush(deferred, (us, next(seq), table, row))
                last_end, last_ms = end, ms
            upcoming = schedule.next_occurrence(self.now)
            assert upcoming is not None
            statuses[WAITING] += 1
            samples.setdefault("Recurring", tid)
            chunk.tasks.append(
                (
                    t,
                    at(created),
                    at(last_end) if runs else None,
                    last_ms,
                    instant(upcoming),
                    type_name,
                    kind.payload(number + 1),
                    handler_name,
                    None,
                    true,
                    schedule.to_json(),
                    str(schedule),
                    runs,
                    None,
                    None,
                    instant(upcoming),
                    kind.queue if kind.queue != "default" else "recurring",
                    series.key,
                    int(AuditLevel.FULL),
                    0,
                    WAITING,
                    None,
                    None,
                    None,
                )
            )

        def flush(until: int) -> Chunk:
            nonlocal chunk, ready
            while deferred and deferred[0][0] <= until:
                ready.append(heapq.heappop(deferred))
            for item in ready:
                if item[0] > until:
                    heapq.heappush(deferred, item)
            now_ready = sorted(item for item in ready if item[0] <= until)
            done, chunk, ready = chunk, Chunk(), []
            done.audits = [row for _, _, table, row in now_ready if table == 0]
            done.runs = [row for _, _, table, row in now_ready if table == 1]
            stats.status_audits += len(done.audits)
            stats.runs_audits += len(done.runs)
            stats.logs += len(done.logs)
            return done

        cells = self._cells()
        today_rows = sum(n for s, _, n in cells if s >= midnight)
        pending_rows = max(1, round(today_rows * self.pending_share)) if today_rows else 0
        queued_from = today_rows - pending_rows
        today_index = 0
        entity = itertools.count(1)
        keys = itertools.count(1)
        for cell_start, cell_end, count in cells:
            span = cell_end - cell_start
            for offset in sorted(rnd.random() for _ in range(count)):
                created = cell_start + int(offset * span)
                kind, type_name, handler_name, failure, log_median = kinds[
                    bisect.bisect_right(cumulative, rnd.random() * weight_total)
                ]
                tid = new_id(created)
                t = uid(tid)
                n = next(entity)
                due = None
                if kind.delayed and rnd.random() < kind.delayed:
                    due = created + rnd.choice(DELAYS_S) * US
                ms = math.exp(log_median + 0.8 * rnd.gauss())
                if due is None:
                    start = created + 200 + int(rnd.expovariate(1 / 3000))
                    if rnd.random() < 0.005:  # a burst filled the queue
                        start += rnd.randrange(US, 30 * US)
                    queued_at = created + 120
                else:
                    start = due + 300 + rnd.randrange(700)
                    queued_at = max(created + 120, due - CLAIM_LEAD_US)
                pending = False
                if created >= midnight:
                    pending = today_index >= queued_from
                    today_index += 1
                roll = rnd.random()
                if pending or start + int(ms * (RETRIES + 1) * 1000) + 3 * RETRY_DELAY_US >= (
                    now_us
                ):
                    status = WAITING if due is not None and due > now_us else QUEUED
                else:
                    status = COMPLETED if roll < 0.97 else FAILED if roll < 0.99 else CANCELLED
                last = None
                elapsed = 0.0
                error = None
                owner = None
                if status == COMPLETED:
                    end = start + int(ms * 1000)
                    last, elapsed, owner = at(end), ms, node_at(end)
                    audit(queued_at, (t, at(queued_at), QUEUED, None))
                    audit(start, (t, at(start), IN_PROGRESS, None))
                    audit(end, (t, at(end), COMPLETED, None))
                elif status == FAILED:
                    elapsed = ms * (RETRIES + 1) + RETRIES * RETRY_DELAY_US / 1000
                    end = start + int(elapsed * 1000)
                    last, error, owner = at(end), failure, node_at(end)
                    audit(queued_at, (t, at(queued_at), QUEUED, None))
                    audit(start, (t, at(start), IN_PROGRESS, None))
                    audit(end, (t, at(end), FAILED, failure))
                    first_try = start + int(ms * 1000)
                    for line, (us, level, message, details) in enumerate(
                        (
                            (start + 400, "Information", f"Running {type_name} #{n}", None),
                            (first_try, "Warning", "Attempt 1 failed; retrying in 500 ms", None),
                            (end, "Error", f"Giving up on {type_name} #{n}", failure),
                        )
                    ):
                        chunk.logs.append(
                            (uid(new_id(us)), t, at(us), level, message, details, line)
                        )
                elif status == CANCELLED:
                    if due is not None:  # cancelled while it waited for its time
                        cancel = created + rnd.randrange(due - created)
                        owner = node_at(cancel)
                        audit(cancel, (t, at(cancel), CANCELLED, None))
                    else:  # cancelled while it ran: the cancel, then the run's own record
                        cancel = start + rnd.randrange(max(1, int(ms * 1000)))
                        owner = node_at(cancel)
                        audit(queued_at, (t, at(queued_at), QUEUED, None))
                        audit(start, (t, at(start), IN_PROGRESS, None))
                        audit(cancel, (t, at(cancel), CANCELLED, None))
                        audit(cancel + 1500, (t, at(cancel + 1500), CANCELLED, None))
                elif status == QUEUED:
                    audit(queued_at, (t, at(queued_at), QUEUED, None))
                statuses[status] += 1
                samples.setdefault(status, tid)
                chunk.tasks.append(
                    (
                        t,
                        at(created),
                        last,
                        elapsed,
                        None if due is None else at(due),
                        type_name,
                        kind.payload(n),
                        handler_name,
                        error,
                        false,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        kind.queue,
                        None if kind.key is None else f"{kind.key}-{next(keys)}",
                        int(AuditLevel.FULL),
                        0,
                        status,
                        None,
                        None,
                        owner,
                    )
                )
                if len(chunk.tasks) >= size:
                    yield flush(created)
        yield flush(1 << 62)  # (everything left: nothing happened after ``now``)


def _us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def _instant(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _insert(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


def load_sqlite(path: str | os.PathLike[str], history: History) -> HistoryStats:
    """Write ``history`` into an existing (migrated, closed) SQLite database file."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA cache_size = -262144")  # 256 MiB: the indexes stay in memory
        statements = (
            _insert("QueuedTasks", TASK_COLUMNS),
            _insert("StatusAudit", AUDIT_COLUMNS),
            _insert("RunsAudit", RUNS_COLUMNS),
            _insert("TaskExecutionLogs", LOG_COLUMNS),
        )
        for chunk in history.chunks(sqlite_encoding()):
            con.execute("BEGIN")
            for statement, rows in zip(
                statements, (chunk.tasks, chunk.audits, chunk.runs, chunk.logs), strict=True
            ):
                if rows:
                    con.executemany(statement, rows)
            con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return history.stats


async def load_postgres(url: str, schema: str, history: History) -> HistoryStats:
    """Write ``history`` into an existing (migrated) PostgreSQL schema with ``COPY``."""
    import asyncpg  # type: ignore[import-untyped]

    con = await asyncpg.connect(_asyncpg_url(url))
    try:
        tables = (
            ("QueuedTasks", TASK_COLUMNS),
            ("StatusAudit", AUDIT_COLUMNS),
            ("RunsAudit", RUNS_COLUMNS),
            ("TaskExecutionLogs", LOG_COLUMNS),
        )
        for chunk in history.chunks(NATIVE):
            async with con.transaction():
                for (table, columns), rows in zip(
                    tables, (chunk.tasks, chunk.audits, chunk.runs, chunk.logs), strict=True
                ):
                    if rows:
                        await con.copy_records_to_table(
                            table, records=rows, columns=list(columns), schema_name=schema
                        )
        for table, _ in tables:  # what autovacuum keeps up on a live database
            await con.execute(f'VACUUM ANALYZE "{schema}"."{table}"')
        with contextlib.suppress(asyncpg.PostgresError):  # (needs a superuser)
            await con.execute("CHECKPOINT")  # the load's dirty pages, written before measuring
    finally:
        await con.close()
    return history.stats


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def fold_counts(storage: object) -> int:
    """Fold the storage's pending count rollups, if it keeps any (``fold_counts()`` until it
    returns 0); returns how many calls that took."""
    from sqlalchemy.exc import IntegrityError

    fold = getattr(storage, "fold_counts", None)
    if fold is None:
        return 0
    calls = races = 0
    while True:
        calls += 1
        try:
            if not await fold():
                return calls
        except IntegrityError:  # the storage's own fold loop created the same counter rows
            races += 1
            if races > 100:
                raise


# -- the databases ----------------------------------------------------------------------------
class Database:
    """One database under test: created fresh, loaded, measured, dropped."""

    key = ""
    title = ""

    def storage(self) -> Any:
        """A storage instance on this database (the host makes its own)."""
        raise NotImplementedError

    def add_storage(self, builder: EverTaskServiceBuilder) -> EverTaskServiceBuilder:
        """Configure the host's storage on this database."""
        raise NotImplementedError

    async def create(self) -> None:
        """Make the database and its tables (opening a storage migrates it)."""
        storage = self.storage()
        await storage.open()
        await storage.close()

    async def load(self, history: History) -> HistoryStats:
        """Bulk-load ``history``."""
        raise NotImplementedError

    async def count_old(self, cutoff: datetime) -> dict[str, int]:
        """Rows per table older than ``cutoff`` (by the time retention looks at)."""
        raise NotImplementedError

    async def drop(self) -> None:
        """Remove the database."""
        raise NotImplementedError


_OLD = (
    ("tasks", "QueuedTasks", "CreatedAtUtc"),
    ("status_audits", "StatusAudit", "UpdatedAtUtc"),
    ("runs_audits", "RunsAudit", "ExecutedAt"),
    ("logs", "TaskExecutionLogs", "TimestampUtc"),
)


class SqliteDatabase(Database):
    """A SQLite file in a temporary directory."""

    key = "sqlite"
    title = "SQLite"

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="evertask-history-")
        self.path = Path(self.dir.name) / "service.db"

    def storage(self) -> Any:
        from evertask_storage_sqlite import SqliteTaskStorage

        return SqliteTaskStorage(self.path)

    def add_storage(self, builder: EverTaskServiceBuilder) -> EverTaskServiceBuilder:
        return builder.add_sqlite_storage(self.path)

    async def load(self, history: History) -> HistoryStats:
        return await asyncio.to_thread(load_sqlite, self.path, history)

    async def count_old(self, cutoff: datetime) -> dict[str, int]:
        text = sqlite_encoding().instant(cutoff)

        def count() -> dict[str, int]:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                return {
                    name: int(
                        con.execute(
                            f'SELECT COUNT(*) FROM "{table}" WHERE "{column}" < ?', (text,)
                        ).fetchone()[0]
                    )
                    for name, table, column in _OLD
                }
            finally:
                con.close()

        return await asyncio.to_thread(count)

    async def drop(self) -> None:
        self.dir.cleanup()


class PostgresDatabase(Database):
    """A fresh schema in the test database."""

    key = "pg"
    title = "PostgreSQL"

    def __init__(self, url: str = PG_URL) -> None:
        self.url = url
        self.schema = f"bench_history_{uuid.uuid4().hex[:8]}"

    def storage(self) -> Any:
        from evertask_storage_postgres import PostgresTaskStorage

        return PostgresTaskStorage(self.url, schema=self.schema)

    def add_storage(self, builder: EverTaskServiceBuilder) -> EverTaskServiceBuilder:
        return builder.add_postgres_storage(self.url, schema=self.schema)

    async def load(self, history: History) -> HistoryStats:
        return await load_postgres(self.url, self.schema, history)

    async def count_old(self, cutoff: datetime) -> dict[str, int]:
        import asyncpg

        con = await asyncpg.connect(_asyncpg_url(self.url))
        try:
            return {
                name: int(
                    await con.fetchval(
                        f'SELECT COUNT(*) FROM "{self.schema}"."{table}" WHERE "{column}" < $1',
                        cutoff,
                    )
                )
                for name, table, column in _OLD
            }
        finally:
            await con.close()

    async def drop(self) -> None:
        import asyncpg

        con = await asyncpg.connect(_asyncpg_url(self.url))
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await con.close()


async def postgres_unreachable(url: str = PG_URL) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or ``None``."""
    try:
        import asyncpg

        con = await asyncpg.connect(_asyncpg_url(url), timeout=3)
    except Exception as error:
        return f"PostgreSQL at {url} is not reachable ({type(error).__name__}: {error})"
    await con.close()
    return None


# -- the measured host ------------------------------------------------------------------------
class Completions:
    """Counts the committed completions of :class:`Ping` tasks and wakes a waiter."""

    def __init__(self) -> None:
        self.count = 0
        self._target = 0
        self._reached: asyncio.Event | None = None

    async def reach(self, total: int, timeout: float = 600) -> None:
        """Return once ``total`` tasks have completed since the host started."""
        if self.count >= total:
            return
        self._target, self._reached = total, asyncio.Event()
        await asyncio.wait_for(self._reached.wait(), timeout)

    def completed(self) -> None:
        """One more completion."""
        self.count += 1
        if self._reached is not None and self.count >= self._target:
            self._reached.set()


class Ping(EverTask, task_name="bench.ping"):
    """The measured no-op task."""

    n: int = 0


class PingHandler(EverTaskHandler[Ping]):
    """Does nothing; its completion hook runs once the Completed row is committed."""

    def __init__(self, completions: Completions) -> None:
        self.completions = completions

    async def handle(self, task: Ping, cancellation: CancellationToken) -> None:
        return None

    async def on_completed(self, task_id: uuid.UUID) -> None:
        self.completions.completed()


class Container(containers.DeclarativeContainer):
    """The measured service's dependencies."""

    completions = providers.Singleton(Completions)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures."""

    rows: int = 1_000_000
    tasks: int = 20_000  # end-to-end
    producers: int = 64
    parallelism: int = 64
    idle_dispatches: int = 300
    samples: int = 30  # per monitoring figure
    warmups: int = 3
    retention_days: int = 7
    retention_bound_s: float = 60.0
    stream_rate: float = 200.0  # dispatches per second beside the cleanup
    stream_idle_s: float = 5.0  # the same stream without a cleanup
    databases: tuple[str, ...] = ("sqlite", "pg")
    days: int = 45
    rounds: int = 4  # dispatch and throughput rounds, alternating empty and full
    monitor_bound_s: float = 20.0  # per monitoring figure, once 10 samples are taken

    @classmethod
    def quick(cls) -> Plan:
        """The ``--quick`` plan."""
        return cls(
            rows=100_000,
            tasks=5_000,
            retention_bound_s=20.0,
            stream_idle_s=3.0,
            monitor_bound_s=10.0,
        )


def size_label(rows: int) -> str:
    """``0``, ``100k``, ``1m``, ``10m``: the size in JSON keys."""
    if rows and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}m"
    if rows and rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def _builder(container: Container, plan: Plan) -> EverTaskServiceBuilder:
    builder = add_evertask(
        container,
        lambda o: (
            o.register_handler(PingHandler, *(k.handler for k in KINDS))
            .set_max_degree_of_parallelism(plan.parallelism)
            .set_default_audit_level(AuditLevel.FULL)
        ),
    )
    for name in QUEUES:
        if name not in ("default", "recurring"):
            builder.add_queue(name)
    return builder


def _ms(samples: Sequence[float], pct: float) -> float:
    return round(percentile(samples, pct), 3)


async def _timed(call: Callable[[], Awaitable[Any]], plan: Plan) -> list[float]:
    """``plan.samples`` timings after the warm-ups, fewer (at least 10) past the time bound."""
    for _ in range(plan.warmups):
        await call()
    out: list[float] = []
    bound = time.perf_counter() + plan.monitor_bound_s
    while len(out) < plan.samples and (len(out) < 10 or time.perf_counter() < bound):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def _idle_dispatch(service: Service, count: int) -> list[float]:
    """Each dispatch alone on an idle host: its task has completed before the next one."""
    dispatch = service.host.dispatcher.dispatch
    completions = service.completions
    out: list[float] = []
    for i in range(count + 5):  # (the first 5 warm up)
        done = completions.count + 1
        start = time.perf_counter()
        await dispatch(Ping(n=i))
        elapsed = time.perf_counter() - start
        await completions.reach(done, 30)
        if i >= 5:
            out.append(elapsed * 1000)
    return out


async def _throughput(service: Service, plan: Plan) -> tuple[int, float]:
    """A round of no-op tasks: their number and the seconds from the first dispatch to the
    last committed completion."""
    dispatch = service.host.dispatcher.dispatch
    completions = service.completions
    tasks = max(1, plan.tasks // plan.rounds)
    numbers = iter(range(tasks))
    done = completions.count + tasks

    async def producer() -> None:
        for i in numbers:
            await dispatch(Ping(n=i))

    start = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(plan.producers)))
    await completions.reach(done)
    return tasks, time.perf_counter() - start


async def _monitoring(storage: Any, plan: Plan) -> Results:
    """The dashboard's counts, Today overview and Completed list: p50 / p95 in ms."""
    from evertask.storage.models import TaskQuery
    from evertask_monitor_api import MonitorQueries
    from evertask_monitor_api.schemas import Range

    queries = MonitorQueries(storage, lambda: datetime.now(UTC))
    completed = TaskQuery(statuses=frozenset({S.COMPLETED}), page=1, page_size=20)
    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "counts": queries.counts,
        "overview": lambda: queries.overview(Range.TODAY, QUEUES),
        "list": lambda: storage.query_tasks(completed),
    }
    out: Results = {}
    for name, call in cases.items():
        times = await _timed(call, plan)
        out[f"{name}_p50_ms"] = _ms(times, 50)
        out[f"{name}_p95_ms"] = _ms(times, 95)
        out[f"{name}_samples"] = float(len(times))
    return out


async def _stream(
    host: Any, completions: Completions, rate: float, stop: Callable[[], bool]
) -> list[float]:
    """Awaited dispatches at ``rate`` per second until ``stop()``: each one's time in ms
    (returns once their tasks have completed)."""
    dispatch = host.dispatcher.dispatch
    done = completions.count
    interval = 1 / rate
    out: list[float] = []
    next_at = time.perf_counter()
    i = 0
    while not stop():
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        start = time.perf_counter()
        await dispatch(Ping(n=i))
        out.append((time.perf_counter() - start) * 1000)
        i += 1
        next_at = max(next_at + interval, start - 0.1)  # late: catch up by 100 ms at most
    await completions.reach(done + i)
    return out


async def _retention(service: Service, plan: Plan) -> tuple[Results, datetime, dict[str, int]]:
    """Dispatch latency with and without a cleanup running; the old rows before it."""
    from evertask_storage_efcore_like import RetentionPolicy

    db, host, completions = service.db, service.host, service.completions
    until = time.perf_counter() + plan.stream_idle_s
    rate = plan.stream_rate
    idle = await _stream(host, completions, rate, lambda: time.perf_counter() >= until)
    policy = RetentionPolicy.with_uniform_retention(
        plan.retention_days, delete_completed_tasks=True
    )
    cutoff = datetime.now(UTC) - timedelta(days=plan.retention_days)
    before = await db.count_old(cutoff)
    storage: Any = host.storage
    start = time.perf_counter()
    cleanup = asyncio.ensure_future(storage.cleanup(policy))
    deadline = start + plan.retention_bound_s
    stream = asyncio.ensure_future(
        _stream(host, completions, rate, lambda: cleanup.done() or time.perf_counter() >= deadline)
    )
    await asyncio.wait([cleanup], timeout=plan.retention_bound_s)
    finished = cleanup.done()
    elapsed = time.perf_counter() - start
    if not finished:
        cleanup.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cleanup  # (a failure of the cleanup itself is raised here)
    busy = await stream
    out: Results = {
        "dispatch_p50_before_retention_ms": _ms(idle, 50),
        "dispatch_p99_before_retention_ms": _ms(idle, 99),
        "dispatch_p50_during_retention_ms": _ms(busy, 50),
        "dispatch_p99_during_retention_ms": _ms(busy, 99),
        "dispatch_max_during_retention_ms": round(max(busy), 3),
        "retention_s": round(elapsed, 2),
        "retention_finished": float(finished),
    }
    return out, cutoff, before


@dataclass(slots=True)
class Service:
    """One database with the service's host on it, and what was measured there."""

    db: Database
    rows: int
    out: Results = field(default_factory=dict)
    host: Any = None
    completions: Completions = field(default_factory=Completions)
    dispatch_ms: list[float] = field(default_factory=list)
    throughput: list[tuple[int, float]] = field(default_factory=list)  # (tasks, seconds)

    async def prepare(self, plan: Plan, now: datetime) -> None:
        """Create the database, load its history, fold its count rollups."""
        await self.db.create()
        out = self.out
        if self.rows:
            start = time.perf_counter()
            stats = await self.db.load(History(self.rows, now, days=plan.days))
            out["load_s"] = round(time.perf_counter() - start, 1)
            out["history_tasks"] = float(stats.tasks)
            out["history_status_audits"] = float(stats.status_audits)
            out["history_runs_audits"] = float(stats.runs_audits)
            out["history_logs"] = float(stats.logs)
            for status in (S.QUEUED, S.WAITING_QUEUE):
                out[f"history_{status.value.lower()}"] = float(stats.statuses[status.value])
        storage = self.db.storage()
        await storage.open()
        try:
            start = time.perf_counter()
            out["fold_passes"] = float(await fold_counts(storage))
            out["fold_s"] = round(time.perf_counter() - start, 2)
        finally:
            await storage.close()

    async def start(self, plan: Plan) -> None:
        """Build and start the host (timed), then wait for its recovery pass."""
        container = Container()
        host = self.db.add_storage(_builder(container, plan)).build()
        self.completions = container.completions()
        start = time.perf_counter()
        await host.start()
        self.host = host
        self.out["start_s"] = round(time.perf_counter() - start, 3)
        recovery = await host.wait_recovered(600)
        self.out["recovery_s"] = round(time.perf_counter() - start, 3)
        self.out["recovered"] = float(0 if recovery is None else recovery.scheduled)

    async def stop(self) -> None:
        """Stop the host, if it started."""
        if self.host is not None:
            await self.host.stop()


async def measure(make: Callable[[], Database], plan: Plan, now: datetime) -> tuple[Results, ...]:
    """One database kind, empty and with ``plan.rows`` of history: two hosts running side
    by side, their dispatch and throughput rounds interleaved (so the VM's drifts in speed
    fall on both); returns the figures of the empty one, the full one and the retention."""
    empty, full = Service(make(), 0), Service(make(), plan.rows)
    both = (empty, full)
    retention: Results = {}
    try:
        for service in both:
            await service.prepare(plan, now)
        gc.collect()
        cutoff, before = datetime.now(UTC), dict[str, int]()
        try:
            for service in both:
                await service.start(plan)
            per_round = max(1, plan.idle_dispatches // plan.rounds)
            for service in both:  # a warm-up round each (connections, plans, caches)
                await _idle_dispatch(service, per_round)
                await _throughput(service, plan)
            for n in range(plan.rounds):  # alternating which one goes first
                for service in both if n % 2 == 0 else both[::-1]:
                    service.dispatch_ms += await _idle_dispatch(service, per_round)
            for n in range(plan.rounds):
                for service in both if n % 2 == 0 else both[::-1]:
                    service.throughput.append(await _throughput(service, plan))
            for service in both:
                service.out.update(await _monitoring(service.host.storage, plan))
            if plan.rows:
                retention, cutoff, before = await _retention(full, plan)
        finally:
            for service in both:
                await service.stop()
        if before:  # counted once the hosts have stopped: every started batch has committed
            after = await full.db.count_old(cutoff)
            seconds = retention["retention_s"]
            tasks = before["tasks"] - after["tasks"]
            everything = sum(before.values()) - sum(after.values())
            retention["retention_old_tasks"] = float(before["tasks"])
            retention["retention_old_rows"] = float(sum(before.values()))
            retention["retention_tasks_deleted"] = float(tasks)
            retention["retention_rows_deleted_all_tables"] = float(everything)
            retention["retention_rows_per_s"] = round(tasks / seconds, 1)
            retention["retention_all_rows_per_s"] = round(everything / seconds, 1)
    finally:
        for service in both:
            await service.db.drop()
    for service in both:
        out = service.out
        out["dispatch_p50_ms"] = _ms(service.dispatch_ms, 50)
        out["dispatch_p99_ms"] = _ms(service.dispatch_ms, 99)
        tasks = sum(n for n, _ in service.throughput)
        out["tasks_per_s"] = round(tasks / sum(s for _, s in service.throughput), 1)
    return empty.out, full.out, retention


# -- the suite --------------------------------------------------------------------------------
RETENTION_KEYS = (
    "retention_rows_per_s",
    "retention_all_rows_per_s",
    "retention_tasks_deleted",
    "retention_rows_deleted_all_tables",
    "retention_old_tasks",
    "retention_old_rows",
    "retention_s",
    "retention_finished",
    "dispatch_p50_before_retention_ms",
    "dispatch_p99_before_retention_ms",
    "dispatch_p50_during_retention_ms",
    "dispatch_p99_during_retention_ms",
    "dispatch_max_during_retention_ms",
)


DATABASES: dict[str, Callable[[], Database]] = {
    "sqlite": SqliteDatabase,
    "pg": PostgresDatabase,
}


def measure_all(plan: Plan) -> tuple[Results, list[str]]:
    """Run the plan: each database kind in a fresh event loop."""
    results: Results = {"rows": float(plan.rows), "tasks": float(plan.tasks)}
    notes: list[str] = []
    label = size_label(plan.rows)
    for key in plan.databases:
        if key == "pg":
            why = asyncio.run(postgres_unreachable())
            if why is not None:
                notes.append(f"PostgreSQL skipped: {why}")
                continue
        empty, full, retention = asyncio.run(measure(DATABASES[key], plan, datetime.now(UTC)))
        results.update({f"{key}_0_{name}": value for name, value in empty.items()})
        for name, value in full.items():
            if name.startswith("history_"):
                results.setdefault(name, value)
            else:
                results[f"{key}_{label}_{name}"] = value
        results.update({f"{key}_{name}": value for name, value in retention.items()})
        empty_tps, full_tps = (results.get(f"{key}_{n}_tasks_per_s") for n in ("0", label))
        if empty_tps and full_tps is not None:
            results[f"{key}_{label}_tasks_per_s_ratio_to_empty"] = round(full_tps / empty_tps, 3)
    return results, notes


def bars(results: Results, plan: Plan) -> list[tuple[str, bool, str]]:
    """(what, passed, figure) of every bar that has its figures."""
    label = size_label(plan.rows)
    out: list[tuple[str, bool, str]] = []
    for key in plan.databases:
        for name in ("overview", "counts"):
            value = results.get(f"{key}_{label}_{name}_p95_ms")
            if value is not None:
                out.append((f"{key} {label} {name} p95 <= 100 ms", value <= 100, f"{value:.1f} ms"))
        value = results.get(f"{key}_retention_rows_per_s")
        if value is not None:
            out.append((f"{key} retention >= 5,000 task rows/s", value >= 5000, f"{value:,.0f}/s"))
        value = results.get(f"{key}_dispatch_p99_during_retention_ms")
        if value is not None:
            text = f"{value:.2f} ms"
            out.append((f"{key} dispatch p99 during retention <= 10 ms", value <= 10, text))
        value = results.get(f"{key}_{label}_tasks_per_s_ratio_to_empty")
        if value is not None:
            out.append((f"{key} {label} tasks/s >= 90% of empty", value >= 0.9, f"{value:.1%}"))
    return out


def _rows(results: Results, plan: Plan, notes: list[str]) -> list[tuple[str, str]]:
    label = size_label(plan.rows)
    rows: list[tuple[str, str]] = [
        (
            "history",
            f"{plan.rows:,} tasks over {plan.days} days + 3% since midnight UTC; "
            f"{results.get('history_status_audits', 0):,.0f} status audits, "
            f"{results.get('history_runs_audits', 0):,.0f} runs audits, "
            f"{results.get('history_logs', 0):,.0f} logs; "
            f"{results.get('history_queued', 0):,.0f} Queued, "
            f"{results.get('history_waitingqueue', 0):,.0f} WaitingQueue",
        ),
        ("sizes", f"0 / {label}"),
    ]

    def pair(key: str, name: str, fmt: str) -> str:
        values = [results.get(f"{key}_{size}_{name}") for size in ("0", label)]
        return " / ".join("-" if v is None else format(v, fmt) for v in values)

    for key in plan.databases:
        if f"{key}_0_tasks_per_s" not in results:
            continue
        ratio = results.get(f"{key}_{label}_tasks_per_s_ratio_to_empty")
        load = results.get(f"{key}_{label}_load_s")
        rows += [
            (f"{key}: bulk load", "-" if load is None else f"{load:.1f} s"),
            (f"{key}: host start (s)", pair(key, "start_s", ".3f")),
            (f"{key}: start to recovered (s)", pair(key, "recovery_s", ".3f")),
            (
                f"{key}: idle dispatch p50 | p99 (ms)",
                f"{pair(key, 'dispatch_p50_ms', '.3f')} | {pair(key, 'dispatch_p99_ms', '.3f')}",
            ),
            (
                f"{key}: tasks/s ({plan.tasks:,} per size, {plan.producers} producers)",
                pair(key, "tasks_per_s", ",.0f")
                + ("" if ratio is None else f"  ({ratio:.1%} of empty)"),
            ),
        ]
        for name in ("counts", "overview", "list"):
            rows.append(
                (
                    f"{key}: {name} p50 | p95 (ms; samples)",
                    f"{pair(key, f'{name}_p50_ms', '.2f')} | {pair(key, f'{name}_p95_ms', '.2f')}"
                    f"  ({pair(key, f'{name}_samples', '.0f')})",
                )
            )
        if f"{key}_retention_s" in results:
            r = {name: results[f"{key}_{name}"] for name in RETENTION_KEYS}
            state = "finished" if r["retention_finished"] else "stopped at the bound"
            rows += [
                (
                    f"{key}: retention ({plan.retention_days} days), {state}",
                    f"{r['retention_tasks_deleted']:,.0f} of {r['retention_old_tasks']:,.0f} old "
                    f"tasks, {r['retention_rows_deleted_all_tables']:,.0f} of "
                    f"{r['retention_old_rows']:,.0f} old rows in {r['retention_s']:.1f} s",
                ),
                (
                    f"{key}: retention rate",
                    f"{r['retention_rows_per_s']:,.0f} task rows/s, "
                    f"{r['retention_all_rows_per_s']:,.0f} rows/s of all tables",
                ),
                (
                    f"{key}: dispatch p50 | p99 at {plan.stream_rate:.0f}/s, without | with "
                    "cleanup",
                    f"{r['dispatch_p50_before_retention_ms']:.3f} | "
                    f"{r['dispatch_p99_before_retention_ms']:.3f} ms, "
                    f"{r['dispatch_p50_during_retention_ms']:.3f} | "
                    f"{r['dispatch_p99_during_retention_ms']:.3f} ms "
                    f"(max {r['dispatch_max_during_retention_ms']:.1f} ms)",
                ),
            ]
    for what, passed, figure in bars(results, plan):
        rows.append((f"bar: {what}", f"{'PASS' if passed else 'FAIL'} ({figure})"))
    if label != "1m":
        rows.append(("note", "the bars are set for 1,000,000 rows"))
    rows.extend(("note", n) for n in notes)
    return rows


def run(quick: bool = False, json_path: str | None = None, rows: int | None = None) -> Results:
    """Measure both databases, print the table and the bars (and write ``json_path``)."""
    plan = Plan.quick() if quick else Plan()
    if rows is not None:
        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        plan = replace(plan, rows=rows)
    started = time.perf_counter()
    results, notes = measure_all(plan)
    results["suite_s"] = round(time.perf_counter() - started, 1)
    title = "python -m benchmarks history" + (" --quick" if quick else "")
    if rows is not None:
        title += f" --rows {rows}"
    table = _rows(results, plan, notes)
    table.append(("suite time", f"{results['suite_s']:.0f} s"))
    report(title, table, results, json_path)
    return results


if __name__ == "__main__":  # pragma: no cover
    import sys

    run("--quick" in sys.argv)
