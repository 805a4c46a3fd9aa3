"""Observer hooks (the plug-in point of OpenTelemetry and metrics)."""

from __future__ import annotations

from datetime import timedelta

from evertask import Outcome
from evertask.run import TaskRun
from evertask_abstractions import LinearRetryPolicy, QueuedTaskStatus
from tests.engine.tasks import ALL, Flaky, Ping, Slow
from tests.helpers import build_host, wait_status


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def dispatching(self, run: TaskRun, kind: str) -> Recorder.Scope:
        run.trace_context = "00-trace-span-01"
        return Recorder.Scope(self, ("dispatch", kind, run.id))

    def executing(self, run: TaskRun, queue_wait_s: float | None) -> Recorder.Scope:
        self.events.append(("execute", run.id, run.trace_context, queue_wait_s is not None))
        return Recorder.Scope(self, ("execution", run.id))

    class Scope:
        def __init__(self, owner: Recorder, what: tuple[object, ...]) -> None:
            self.owner, self.what = owner, what

        def retry(self, attempt: int, exception: BaseException, delay: timedelta) -> None:
            self.owner.events.append(("retry", *self.what, attempt))

        def finish(self, *args: object) -> None:
            self.owner.events.append(("finish", *self.what, *args[:1]))


async def test_observers_see_dispatches_executions_retries_and_outcomes() -> None:
    rec = Recorder()
    host, _ = build_host(
        ALL,
        lambda o: o.set_default_retry_policy(LinearRetryPolicy(1, 0.001)),
        builder=lambda b: b.on_build(lambda h: h.engine.observers.append(rec)),
    )
    async with host:
        ok = await host.dispatcher.dispatch(Ping(n=1))
        later = await host.dispatcher.dispatch(Ping(n=2), timedelta(milliseconds=20))
        bad = await host.dispatcher.dispatch(Flaky(fail_times=5))
        slow = await host.dispatcher.dispatch(Slow(seconds=5))
        for t, s in [(ok, "Completed"), (later, "Completed"), (bad, "Failed"), (slow, "Failed")]:
            await wait_status(host, t, QueuedTaskStatus(s))
        row = await host.storage.get(ok)
        assert row is not None and row.trace_context == "00-trace-span-01"  # persisted
    ev = rec.events
    assert ("finish", "dispatch", "immediate", ok, None) in ev
    assert ("finish", "dispatch", "delayed", later, None) in ev
    assert ("execute", ok, "00-trace-span-01", True) in ev
    assert ("finish", "execution", ok, Outcome.COMPLETED) in ev
    assert ("retry", "execution", bad, 1) in ev
    assert ("finish", "execution", bad, Outcome.FAILED) in ev
    assert ("finish", "execution", slow, Outcome.TIMEOUT) in ev
