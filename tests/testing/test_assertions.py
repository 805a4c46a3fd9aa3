"""assert_dispatched / assert_not_dispatched: matching and failure messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evertask.testing import EverTaskHostFactory, EverTaskTestHost
from evertask_abstractions import QueueFullBehavior, QueueFullError, ScheduleError
from tests.testing import app

START = datetime(2026, 1, 1, tzinfo=UTC)


async def test_matching_by_type_payload_predicate_and_time(host: EverTaskTestHost) -> None:
    first = await host.dispatch(app.SendEmail(to="a@x"))
    await host.dispatch(app.SendEmail(to="b@x", subject="bye"), timedelta(hours=1))
    await host.dispatch(app.Tick(), lambda b: b.schedule().every(1).hours(), task_key="hourly")

    [record] = host.assert_dispatched(app.SendEmail(to="a@x"))
    assert record.task_id == first and record.kind == "immediate" and record.due_at == START
    host.assert_dispatched(app.SendEmail, count=2)
    host.assert_dispatched(app.SendEmail, count=1, where=lambda d: d.task.subject == "bye")
    host.assert_dispatched(app.SendEmail, count=1, at=START + timedelta(hours=1))
    host.assert_dispatched(app.SendEmail, at=START)
    [tick] = host.assert_dispatched(app.Tick, count=1)
    assert tick.is_recurring and tick.task_key == "hourly" and tick.schedule
    host.assert_not_dispatched(app.Boom)
    host.assert_not_dispatched(app.SendEmail(to="c@x"))
    host.assert_not_dispatched(app.SendEmail, at=START + timedelta(minutes=5))
    assert len(host.dispatched_of()) == 3


async def test_a_missing_dispatch_lists_what_was_dispatched(host: EverTaskTestHost) -> None:
    with pytest.raises(AssertionError) as nothing:
        host.assert_dispatched(app.SendEmail)
    assert str(nothing.value) == (
        "Expected SendEmail to be dispatched at least once; found 0.\nDispatched: none."
    )
    tid = await host.dispatch(app.SendEmail(to="a@x"))
    await host.dispatch(app.FollowUp(email="a@x"), timedelta(days=1))
    with pytest.raises(AssertionError) as wrong_payload:
        host.assert_dispatched(app.SendEmail(to="b@x"))
    lines = str(wrong_payload.value).splitlines()
    assert lines[0] == (
        "Expected SendEmail(to='b@x', subject='hello') to be dispatched at least once; found 0."
    )
    assert lines[1] == "Dispatched (2):"
    assert lines[2] == (
        f"  1. SendEmail(to='a@x', subject='hello') immediate, dispatched "
        f"2026-01-01T00:00:00+00:00 (id {tid})"
    )
    assert lines[3].startswith(
        "  2. FollowUp(email='a@x') delayed, dispatched 2026-01-01T00:00:00+00:00, "
        "to run at 2026-01-02T00:00:00+00:00 (id "
    )


async def test_count_predicate_and_time_mismatches_say_what_was_expected(
    host: EverTaskTestHost,
) -> None:
    await host.dispatch(app.SendEmail(to="a@x"))
    with pytest.raises(AssertionError, match=r"to be dispatched 2 times; found 1\."):
        host.assert_dispatched(app.SendEmail, count=2)
    with pytest.raises(AssertionError, match=r"to be dispatched 0 times; found 1\."):
        host.assert_dispatched(app.SendEmail, count=0)
    with pytest.raises(AssertionError, match=r"^Expected SendEmail matching `where` to be"):
        host.assert_dispatched(app.SendEmail, where=lambda d: d.task.to == "z")
    at = START + timedelta(hours=1)
    with pytest.raises(AssertionError, match=r"SendEmail due at 2026-01-01T01:00:00\+00:00 to be"):
        host.assert_dispatched(app.SendEmail, at=at)
    with pytest.raises(ValueError, match="naive"):
        host.assert_dispatched(app.SendEmail, at=datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="EverTask class or instance"):
        host.assert_dispatched(str)  # type: ignore[arg-type]


async def test_an_unexpected_dispatch_is_listed(host: EverTaskTestHost) -> None:
    host.assert_not_dispatched()
    await host.dispatch(app.Signup(email="a@x"))
    await host.run_until_idle()
    with pytest.raises(AssertionError) as failure:
        host.assert_not_dispatched(app.SendEmail)
    assert str(failure.value).splitlines()[:3] == [
        "Expected no dispatch of SendEmail; found 1.",
        "Matching (1):",
        f"  1. SendEmail(to='a@x', subject='welcome') immediate, dispatched "
        f"2026-01-01T00:00:00+00:00 (id {host.dispatched[1].task_id})",
    ]
    with pytest.raises(AssertionError, match=r"^Expected no dispatch of any task; found 3\."):
        host.assert_not_dispatched()


async def test_clear_records_forgets_earlier_dispatches_and_executions(
    host: EverTaskTestHost,
) -> None:
    await host.dispatch(app.SendEmail(to="a@x"))
    await host.run_until_idle()
    assert len(host.dispatched) == 1 and len(host.executions) == 1
    host.clear_records()
    assert host.dispatched == [] and host.executions == []
    await host.dispatch(app.SendEmail(to="b@x"))
    await host.run_until_idle()
    host.assert_dispatched(app.SendEmail, count=1, where=lambda d: d.task.to == "b@x")
    assert [e.task for e in host.executions] == [app.SendEmail(to="b@x")]


async def test_a_failed_dispatch_is_not_recorded(
    make_evertask_host: EverTaskHostFactory,
) -> None:
    host = await make_evertask_host(
        app.Container(),
        app.configure,
        builder=lambda b: b.add_queue(
            "reports",
            lambda q: q.set_channel_capacity(1).set_full_behavior(
                QueueFullBehavior.THROW_EXCEPTION
            ),
        ),
    )
    with pytest.raises(ScheduleError):  # refused before the dispatcher looks at the task
        await host.dispatch(app.SendEmail(to="a@x"), timedelta(seconds=-1))
    await host.host.pause_queue("reports")
    await host.dispatch(app.Report(name="first"))  # waits in the paused queue
    with pytest.raises(QueueFullError):  # refused after the dispatcher observed it
        await host.dispatch(app.Report(name="second"))
    [record] = host.assert_dispatched(app.Report)
    assert record.task == app.Report(name="first") and record.queue_name == "reports"


async def test_batches_workflows_and_continuations_are_recorded_with_their_kind(
    host: EverTaskTestHost,
) -> None:
    from evertask_abstractions import Workflow

    first = await host.dispatch(app.SendEmail(to="a@x"))
    await host.dispatcher.dispatch(app.SendEmail(to="after@x"), after=first)
    await host.dispatcher.dispatch_batch([app.SendEmail(to="b1@x"), app.SendEmail(to="b2@x")])
    await host.dispatcher.dispatch_workflow(
        Workflow().then(app.SendEmail(to="w1@x")).then(app.SendEmail(to="w2@x"))
    )
    kinds = {d.task.to: d.kind for d in host.dispatched_of(app.SendEmail)}
    assert kinds == {
        "a@x": "immediate",
        "after@x": "continuation",
        "b1@x": "batch",
        "b2@x": "batch",
        "w1@x": "workflow",
        "w2@x": "workflow",
    }
    await host.run_until_idle()
    assert sorted(to for to, _ in host.container.mailer().sent) == sorted(kinds)


async def test_run_until_idle_waits_for_every_stage_of_a_workflow(host: EverTaskTestHost) -> None:
    from evertask_abstractions import Workflow

    flow = Workflow()
    for stage in range(6):
        flow.group(*(app.SendEmail(to=f"s{stage}-{i}@x") for i in range(3)))
    await host.dispatcher.dispatch_workflow(flow)
    await host.run_until_idle()
    assert len(host.container.mailer().sent) == 18
