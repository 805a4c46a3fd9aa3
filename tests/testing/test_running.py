"""run_until_idle and advance: what runs, when, and what the host records."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from evertask import ManualClock, QueuedTaskStatus
from evertask.testing import EverTaskHostFactory, EverTaskTestHost, HostBusyError, Outcome
from tests.testing import app

START = datetime(2026, 1, 1, tzinfo=UTC)


async def test_an_immediate_task_runs_at_run_until_idle(
    host: EverTaskTestHost, container: app.Container
) -> None:
    tid = await host.dispatch(app.SendEmail(to="ann@example.com"))
    await host.run_until_idle()
    assert container.mailer().sent == [("ann@example.com", "hello")]
    await host.assert_status(tid, QueuedTaskStatus.COMPLETED)
    [run] = host.executions
    assert run.task_id == tid and run.outcome is Outcome.COMPLETED and run.attempts == 1
    assert run.started_at == START and host.now() == START  # time did not move


async def test_run_until_idle_also_runs_what_handlers_dispatch(
    host: EverTaskTestHost, container: app.Container
) -> None:
    await host.dispatch(app.Signup(email="bob@example.com"))
    await host.run_until_idle()
    # the welcome email, dispatched by the signup handler, ran in the same call
    assert container.mailer().sent == [("bob@example.com", "welcome")]
    assert [type(d.task) for d in host.dispatched] == [app.Signup, app.SendEmail, app.FollowUp]
    follow_up = host.assert_dispatched(app.FollowUp, count=1, at=START + timedelta(days=1))[0]
    assert follow_up.kind == "delayed" and await host.status(follow_up.task_id) is (
        QueuedTaskStatus.WAITING_QUEUE
    )
    assert container.journal().names() == []


async def test_advance_runs_a_delayed_task_at_its_time_and_not_before(
    host: EverTaskTestHost, container: app.Container
) -> None:
    journal = container.journal()
    await host.dispatch(app.FollowUp(email="c@example.com"), timedelta(minutes=10))
    await host.advance(timedelta(minutes=9, seconds=59))
    assert journal.entries == []
    await host.advance(timedelta(seconds=1))
    assert journal.times("follow-up") == [START + timedelta(minutes=10)]
    assert host.now() == START + timedelta(minutes=10)


async def test_advance_stops_at_each_due_time_in_between(
    host: EverTaskTestHost, container: app.Container
) -> None:
    journal = container.journal()
    await host.dispatch(app.FollowUp(email="late"), START + timedelta(hours=2))
    await host.dispatch(app.FollowUp(email="early"), START + timedelta(minutes=30))
    await host.advance(timedelta(days=1))
    assert journal.entries == [
        ("follow-up", "early", START + timedelta(minutes=30)),
        ("follow-up", "late", START + timedelta(hours=2)),
    ]
    assert host.now() == START + timedelta(days=1)


async def test_a_recurring_task_advanced_five_minutes_runs_five_times(
    host: EverTaskTestHost, container: app.Container
) -> None:
    tid = await host.dispatch(
        app.Tick(), lambda b: b.schedule().every_minute(), task_key="every-minute"
    )
    host.assert_dispatched(app.Tick, count=1, where=lambda d: d.is_recurring, at=START)
    await host.run_until_idle()  # START is on the minute: the first occurrence is now
    assert container.journal().times("tick") == [START]
    await host.advance(timedelta(minutes=5))
    assert container.journal().times("tick") == [START + timedelta(minutes=n) for n in range(6)]
    assert [e.scheduled_for for e in host.executions_of(app.Tick)] == [
        START + timedelta(minutes=n) for n in range(6)
    ]
    row = await host.get_task(tid)
    assert row is not None and row.current_run_count == 6
    assert row.next_run_utc == START + timedelta(minutes=6)


async def test_a_recurring_series_ends_after_max_runs(
    host: EverTaskTestHost, container: app.Container
) -> None:
    tid = await host.dispatch(
        app.Tick(label="hourly"),
        lambda b: b.run_now().then().every(1).hours().max_runs(3),
        task_key="three-hours",
    )
    await host.run_until_idle()
    assert container.journal().times("hourly") == [START]  # run_now: at once
    await host.advance_to(START + timedelta(days=2))
    assert container.journal().times("hourly") == [START + timedelta(hours=h) for h in range(3)]
    await host.assert_status(tid, QueuedTaskStatus.COMPLETED)


async def test_retries_wait_for_their_delay_on_the_manual_clock(
    host: EverTaskTestHost, container: app.Container
) -> None:
    journal = container.journal()
    tid = await host.dispatch(app.Flaky(name="f", fail_times=2))
    await host.run_until_idle()  # the first attempt failed; the retry waits 10 s of clock
    assert journal.attempts == {"f": 1}
    assert host.host.activity.waiting_for_clock == 1
    await host.assert_status(tid, QueuedTaskStatus.IN_PROGRESS)
    await host.advance(timedelta(seconds=9))
    assert journal.attempts == {"f": 1}
    await host.advance(timedelta(seconds=1))
    assert journal.attempts == {"f": 2}
    await host.advance(timedelta(minutes=1))
    assert journal.times("attempt") == [
        START,
        START + timedelta(seconds=10),
        START + timedelta(seconds=20),
    ]
    await host.assert_status(tid, QueuedTaskStatus.COMPLETED)
    [run] = host.executions
    assert run.succeeded and run.retries == (timedelta(seconds=10),) * 2
    assert run.finished_at == START + timedelta(seconds=20)


async def test_a_failure_is_visible_in_storage_and_in_the_executions(
    host: EverTaskTestHost,
) -> None:
    tid = await host.dispatch(app.Boom(reason="the disk is full"))
    await host.run_until_idle()
    row = await host.assert_status(tid, QueuedTaskStatus.FAILED)
    assert "the disk is full" in (row.exception or "")
    [run] = host.executions_of(app.Boom)
    assert run.outcome is Outcome.FAILED and isinstance(run.error, ValueError)
    with pytest.raises(AssertionError) as failure:
        await host.assert_status(tid, QueuedTaskStatus.COMPLETED)
    text = str(failure.value)
    assert f"Expected task {tid} to be Completed; it is Failed." in text
    assert "the disk is full" in text and "failed" in text


async def test_retries_that_run_out_end_failed_after_every_delay(
    host: EverTaskTestHost, container: app.Container
) -> None:
    tid = await host.dispatch(app.Flaky(name="g", fail_times=10))
    await host.advance(timedelta(minutes=5))
    assert container.journal().attempts == {"g": 4}
    await host.assert_status(tid, QueuedTaskStatus.FAILED)
    [run] = host.executions
    assert run.outcome is Outcome.FAILED and run.attempts == 4
    assert str(run.error) == "attempt 4 of g failed"


async def test_run_until_idle_raises_listing_what_is_still_busy(
    host: EverTaskTestHost, container: app.Container
) -> None:
    tid = await host.dispatch(app.Blocker())
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(HostBusyError) as failure:
        await host.run_until_idle(timeout=0.2)
    assert loop.time() - began < 2
    text = str(failure.value)
    assert "still busy after 0.2 s" in text
    assert f"running: tests.testing.app:Blocker {tid}" in text
    container.journal().release.set()
    await host.run_until_idle()
    await host.assert_status(tid, QueuedTaskStatus.COMPLETED)


async def test_runs_waiting_in_a_paused_queue_do_not_keep_the_host_busy(
    host: EverTaskTestHost, container: app.Container
) -> None:
    await host.host.pause_queue("reports")
    tid = await host.dispatch(app.Report(name="q3"))
    await host.run_until_idle(timeout=1)
    assert await host.status(tid) is QueuedTaskStatus.QUEUED
    assert container.journal().names() == []
    await host.host.resume_queue("reports")
    await host.run_until_idle()
    assert container.journal().names() == ["report"]


async def test_advance_refuses_to_go_back_and_naive_times(host: EverTaskTestHost) -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        await host.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="cannot go back"):
        await host.advance_to(START - timedelta(seconds=1))
    with pytest.raises(ValueError, match="aware"):
        await host.advance_to(datetime(2026, 1, 2))


async def test_a_host_that_is_not_started_says_so(container: app.Container) -> None:
    host = EverTaskTestHost.create(container, app.configure)
    with pytest.raises(RuntimeError, match="start it first"):
        await host.run_until_idle()
    async with host:
        await host.dispatch(app.SendEmail(to="x"))
        await host.run_until_idle()
    assert container.mailer().sent == [("x", "hello")]
    with pytest.raises(RuntimeError, match="stopped"):
        await host.run_until_idle()


async def test_the_clock_fixture_is_the_hosts_clock_and_can_start_elsewhere(
    make_evertask_host: EverTaskHostFactory, evertask_clock: ManualClock
) -> None:
    first = await make_evertask_host(app.Container(), app.configure)
    assert first.clock is evertask_clock and first.now() == START
    later = datetime(2030, 6, 1, 12, tzinfo=UTC)
    second = await make_evertask_host(app.Container(), app.configure, start=later)
    assert second.clock is not evertask_clock and second.now() == later
    await second.dispatch(app.FollowUp(email="z"), timedelta(hours=1))
    await second.advance(timedelta(hours=1))
    assert second.executions_of(app.FollowUp)[0].started_at == later + timedelta(hours=1)
    assert first.executions == []


async def test_a_builder_with_storage_is_refused_with_a_hint(container: app.Container) -> None:
    from evertask import add_evertask
    from evertask_abstractions import ConfigurationError

    builder = add_evertask(container, app.configure).add_memory_storage()
    with pytest.raises(ConfigurationError, match="without storage"):
        EverTaskTestHost.from_builder(builder)


async def test_a_task_cancelled_while_waiting_for_its_retry_stops_waiting(
    host: EverTaskTestHost, container: app.Container
) -> None:
    activity = host.host.activity
    tid = await host.dispatch(app.Flaky(name="h", fail_times=5))
    await host.run_until_idle()
    assert activity.waiting_for_clock == 1
    await host.dispatcher.cancel(tid)
    await host.run_until_idle()
    assert activity.waiting_for_clock == 0 and host.clock.next_timer() is None
    await host.assert_status(tid, QueuedTaskStatus.CANCELLED)
    assert [e.outcome for e in host.executions] == [Outcome.CANCELLED]
    # nothing left over: a task that runs now keeps the host busy again
    await host.dispatch(app.Blocker())
    with pytest.raises(HostBusyError):
        await host.run_until_idle(timeout=0.1)
    container.journal().release.set()
    await host.run_until_idle()
    assert container.journal().attempts == {"h": 1}
