"""The recent-activity feed's order and success rates with nothing finished."""

from __future__ import annotations

from datetime import timedelta

from evertask_abstractions import QueuedTaskStatus

from . import tasks
from .conftest import Monitored
from .harness import wait_status

S = QueuedTaskStatus


async def test_recent_activity_is_sorted_by_the_time_it_shows(memory: Monitored) -> None:
    d = memory.host.dispatcher
    ran_later = await d.dispatch(tasks.Work(n=1), timedelta(milliseconds=200))
    created_later = await d.dispatch(tasks.Work(n=2), timedelta(hours=1))
    await wait_status(memory.host, ran_later, S.COMPLETED)
    recent = await memory.api.json("/dashboard/recent-activity", limit=2)
    assert [r["taskId"] for r in recent] == [str(ran_later), str(created_later)]
    assert recent[0]["timestamp"] > recent[1]["timestamp"]
    assert [r["isRecurring"] for r in recent] == [False, False]


async def test_a_queue_with_nothing_finished_has_no_success_rate(memory: Monitored) -> None:
    await memory.host.dispatcher.dispatch(tasks.Report(name="later"), timedelta(hours=1))
    metrics = {q["queueName"]: q for q in await memory.api.json("/queues")}
    assert metrics["reports"]["successRate"] is None
    assert (await memory.api.json("/dashboard/overview"))["successRate"] is None
