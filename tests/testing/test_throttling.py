"""The testing kit with rate-limited and concurrency-limited handlers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from evertask import QueuedTaskStatus
from evertask.testing import EverTaskTestHost
from tests.testing import app

START = datetime(2026, 1, 1, tzinfo=UTC)


async def test_deferred_runs_wait_for_their_slot_on_the_manual_clock(
    host: EverTaskTestHost, container: app.Container
) -> None:
    journal = container.journal()
    ids = [await host.dispatch(app.Notify(tenant="acme", n=n)) for n in range(3)]
    await host.dispatch(app.Notify(tenant="other", n=0))
    await host.run_until_idle()
    # one a minute per tenant: acme's first and other's first run now, the rest are parked
    assert sorted(e[1] for e in journal.entries) == [("acme", 0), ("other", 0)]
    await host.assert_status(ids[1], QueuedTaskStatus.QUEUED)
    await host.advance(timedelta(minutes=2))
    assert [e[1] for e in journal.entries if e[1][0] == "acme"] == [
        ("acme", 0),
        ("acme", 1),
        ("acme", 2),
    ]
    assert [e[2] for e in journal.entries if e[1][0] == "acme"] == [
        START,
        START + timedelta(minutes=1),
        START + timedelta(minutes=2),
    ]
    for tid in ids:
        await host.assert_status(tid, QueuedTaskStatus.COMPLETED)


async def test_runs_over_the_concurrency_limit_wait_and_idle_waits_for_them(
    host: EverTaskTestHost, container: app.Container
) -> None:
    app.ExclusiveHandler.most = 0
    for n in range(5):
        await host.dispatch(app.Exclusive(n=n))
    await host.run_until_idle()
    assert sorted(e[1] for e in container.journal().entries) == [0, 1, 2, 3, 4]
    assert app.ExclusiveHandler.most == 1
