"""The host's public extension surface, and defects found while moving plug-ins onto it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from evertask import ManualClock, Outcome, UnknownQueueError
from evertask_abstractions import QueuedTaskStatus, QueueFullBehavior, TaskNotFoundError
from tests.engine.tasks import ALL, Blocker, Critical, Flaky, Ping
from tests.helpers import build_host, wait_status


def _critical(b: Any) -> Any:
    return b.add_queue(
        "critical",
        lambda q: q.set_max_degree_of_parallelism(2).set_full_behavior(QueueFullBehavior.WAIT),
    )


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def dispatching(self, run: Any, kind: str) -> None:
        self.seen.append(("dispatching", kind))

    def executing(self, run: Any, wait: float | None) -> Any:
        recorder = self

        class Scope:
            def retry(self, *args: Any) -> None:
                pass

            def finish(self, outcome: Outcome, error: Any, ms: float) -> None:
                recorder.seen.append(("finish", outcome.value))

        return Scope()


async def test_observers_are_added_and_removed_through_the_host() -> None:
    host, c = build_host(ALL)
    recorder = _Recorder()
    host.add_observer(recorder)  # type: ignore[arg-type]
    assert host.observers == (recorder,)
    async with host:
        await host.dispatcher.dispatch(Ping(n=1))
        await c.probe().wait_for(lambda: ("finish", "completed") in recorder.seen)
        assert ("dispatching", "immediate") in recorder.seen
        host.remove_observer(recorder)  # type: ignore[arg-type]
        host.remove_observer(recorder)  # type: ignore[arg-type]  # a second removal is ignored
        seen = len(recorder.seen)
        await host.dispatcher.dispatch(Ping(n=2))
        await c.probe().wait_for(lambda: c.probe().count("ping") == 2)
        assert len(recorder.seen) == seen


async def test_queue_state_and_clock_are_public() -> None:
    clock = ManualClock()
    host, c = build_host(ALL, lambda o: o.use_clock(clock), builder=_critical)
    assert host.queue_names == ["default", "recurring", "critical"]
    assert host.queue_config("critical").max_degree_of_parallelism == 2
    assert host.clock is clock
    with pytest.raises(UnknownQueueError, match="No queue named 'nope'; configured queues"):
        host.queue_length("nope")
    with pytest.raises(KeyError):  # it is a KeyError too
        host.is_queue_paused("nope")
    async with host:
        await host.pause_queue("critical")
        assert host.is_queue_paused("critical")
        await host.dispatcher.dispatch(Critical(n=1))
        assert host.queue_length("critical") == 1 and host.queue_running("critical") == 0
        await host.dispatcher.dispatch(Ping(n=1), timedelta(hours=1))
        assert host.scheduled_count == 1
        await host.resume_queue("critical")
        await c.probe().wait_for(lambda: c.probe().count("critical") == 1)
        assert host.handlers and {d.task_class for d in host.handlers} >= {Ping, Critical}


async def test_a_timer_fired_run_of_a_named_queue_runs_on_that_queue() -> None:
    # an empty queue is falsy (it has a length): the timer path once sent such runs to
    # "default", where a blocked default lane held them back
    clock = ManualClock()
    host, c = build_host(
        ALL, lambda o: o.use_clock(clock).set_max_degree_of_parallelism(1), builder=_critical
    )
    probe = c.probe()
    async with host:
        await host.dispatcher.dispatch(Blocker(name="hog"))  # holds the only default lane
        await probe.wait_for(lambda: probe.count("start") == 1)
        await host.dispatcher.dispatch(Critical(n=7), timedelta(seconds=5))
        clock.advance(6)
        await probe.wait_for(lambda: probe.count("critical") == 1)
        probe.gate("hog").set()


async def test_subscribe_with_dispatched_events() -> None:
    host, c = build_host(ALL)
    events: list[Any] = []
    async with host:
        host.subscribe(events.append, dispatched=True)
        await host.dispatcher.dispatch(Ping(n=1))
        await c.probe().wait_for(lambda: any(e.kind.value == "completed" for e in events))
        assert [e.kind.value for e in events][0] == "dispatched"


async def test_retrying_an_unknown_task_raises_task_not_found() -> None:
    host, _ = build_host(ALL)
    async with host:
        import uuid

        missing = uuid.uuid4()
        with pytest.raises(TaskNotFoundError, match=str(missing)) as info:
            await host.dispatcher.retry(missing)
        assert isinstance(info.value, KeyError) and info.value.task_id == missing


async def test_the_final_failure_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, _ = build_host(ALL)
    caplog.set_level(logging.ERROR, logger="evertask.executor")
    async with host:
        tid = await host.dispatcher.dispatch(Flaky(fail_times=5, error="ValueError"))
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
    records = [r for r in caplog.records if r.name == "evertask.executor"]
    assert len(records) == 1
    record = records[0]
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    text = caplog.text
    assert "Traceback (most recent call last)" in text and "in handle" in text


async def test_a_recurring_dispatch_without_task_key_warns_once_per_site(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, _ = build_host(ALL)
    caplog.set_level(logging.WARNING, logger="evertask.dispatcher")
    async with host:
        for _ in range(3):  # one site, three dispatches: one warning
            await host.dispatcher.dispatch(Ping(n=1), lambda b: b.schedule().every_hour())
        await host.dispatcher.dispatch(Ping(n=2), lambda b: b.schedule().every_hour())  # another
        await host.dispatcher.dispatch(
            Ping(n=3), lambda b: b.schedule().every_hour(), task_key="keyed"
        )
    warnings = [r.getMessage() for r in caplog.records if "without task_key" in r.getMessage()]
    assert len(warnings) == 2
    assert all("test_host_surface.py" in w and "task_key=" in w for w in warnings)
