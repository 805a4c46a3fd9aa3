"""The FastAPI sample's tasks, on a test host built from the sample's own builder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from evertask import QueuedTaskStatus
from evertask.testing import EverTaskTestHost, Outcome

pytest.importorskip("fastapi")

from samples.fastapi_app import tasks
from samples.fastapi_app.app import (
    Container,
    create_builder,
    order_workflow,
    register_startup_tasks,
)
from samples.fastapi_app.services import EmailService

START = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingEmail(EmailService):
    async def send(self, to: str, subject: str) -> None:
        self.sent.append((to, subject))  # no sleep, no log line


@pytest.fixture
async def host() -> AsyncIterator[EverTaskTestHost]:
    async with EverTaskTestHost.from_builder(create_builder(Container())) as test_host:
        yield test_host


async def test_the_startup_tasks_run_on_their_schedules(host: EverTaskTestHost) -> None:
    email = RecordingEmail()
    host.override("email", email)
    await register_startup_tasks(host.dispatcher)
    heartbeat = host.assert_dispatched(tasks.Heartbeat, count=1)[0]
    assert heartbeat.is_recurring and heartbeat.task_key == "demo-heartbeat"
    host.assert_dispatched(tasks.GenerateReport, at=START + timedelta(seconds=2))

    await host.advance(timedelta(seconds=30))
    stats = host.container.stats()
    assert email.sent == [("ada@example.com", "Welcome, Ada!")]
    assert stats.counts["report"] == 1
    assert stats.counts["heartbeat"] == 7  # at 0, 5, ..., 30 s
    [report] = host.executions_of(tasks.GenerateReport)
    assert report.started_at == START + timedelta(seconds=2) and report.succeeded

    # registering again at the next start keeps one series
    await register_startup_tasks(host.dispatcher)
    await host.run_until_idle()
    assert len({d.task_id for d in host.dispatched_of(tasks.Heartbeat)}) == 1


async def test_a_flaky_call_that_always_fails_ends_failed_after_its_retries(
    host: EverTaskTestHost,
) -> None:
    tid = await host.dispatch(tasks.FlakyCall(fail_rate=1.0))
    await host.advance(timedelta(seconds=1))
    row = await host.assert_status(tid, QueuedTaskStatus.FAILED)
    assert "the remote service did not answer" in (row.exception or "")
    [run] = host.executions
    assert run.outcome is Outcome.FAILED and run.attempts == 3
    assert run.finished_at == START + timedelta(milliseconds=200)  # two retries, 100 ms apart


async def test_a_flaky_call_that_never_fails_counts_once(host: EverTaskTestHost) -> None:
    await host.dispatch(tasks.FlakyCall(fail_rate=0.0))
    await host.run_until_idle()
    assert host.container.stats().counts == {"flaky-ok": 1}


async def test_invoice_syncs_of_a_tenant_are_rate_limited(host: EverTaskTestHost) -> None:
    ids = [await host.dispatch(tasks.SyncInvoices(tenant_id="acme")) for _ in range(3)]
    other = await host.dispatch(tasks.SyncInvoices(tenant_id="globex"))
    await host.run_until_idle()
    assert host.container.stats().counts == {"invoices": 3}  # 2 of acme, 1 of globex
    await host.assert_status(ids[2], QueuedTaskStatus.QUEUED)  # parked for its slot
    await host.assert_status(other, QueuedTaskStatus.COMPLETED)
    await host.advance(timedelta(seconds=30))  # 2 a minute: the next slot
    await host.assert_status(ids[2], QueuedTaskStatus.COMPLETED)


async def test_an_order_saga_ships_or_releases_the_stock(host: EverTaskTestHost) -> None:
    shipped = await host.dispatcher.dispatch_workflow(order_workflow(42))
    declined = await host.dispatcher.dispatch_workflow(order_workflow(43, decline=True))

    async def finished() -> bool:
        await host.advance(timedelta(seconds=1))  # (the declined charge's retries)
        records = [await host.dispatcher.get_batch(w) for w in (shipped, declined)]
        counts = host.container.stats().counts
        return all(r.finished for r in records) and counts.get("released") == 1

    # (a workflow's later steps are released to the host's claim, which run_until_idle
    # does not wait for: poll)
    for _ in range(500):
        if await finished():
            break
        await asyncio.sleep(0.01)
    assert (await host.dispatcher.get_batch(shipped)).status.value == "Completed"
    assert (await host.dispatcher.get_batch(declined)).status.value == "Failed"
    counts = host.container.stats().counts
    assert counts == {"reserved": 2, "charged": 1, "shipped": 2, "released": 1}
    [charge] = [e for e in host.executions_of(tasks.ChargeCard) if e.succeeded]
    assert await host.dispatcher.get_result(charge.task_id) == "ch_000042"
