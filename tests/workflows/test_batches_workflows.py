"""Batches, workflows (chains, groups, fan-in) and sagas through the engine."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from evertask_abstractions import (
    BatchKind,
    BatchStatus,
    CancellationToken,
    ConfigurationError,
    ContinueWhen,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
    Step,
    TaskNotFoundError,
    TaskResultError,
    Workflow,
)
from tests.helpers import Container, Probe, build_host, wait_status, wait_until

Q = QueuedTaskStatus


class Work(EverTask):
    name: str
    value: int = 0
    fail: bool = False
    fail_once: bool = False
    gate: str | None = None


class WorkHandler(EverTaskHandler[Work]):
    result_type = int

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def handle(self, task: Work, cancellation: CancellationToken) -> int:
        self.probe.record("work", task.name)
        if task.gate is not None:
            await self.probe.gate(task.gate).wait()
        if task.fail or (
            task.fail_once and self.probe.count("work") and _runs(self.probe, task) == 1
        ):
            raise RuntimeError(f"{task.name} failed")
        return task.value


def _runs(probe: Probe, task: Work) -> int:
    return sum(1 for c in probe.calls if c == ("work", task.name))


class Collect(EverTask):
    name: str


class CollectHandler(EverTaskHandler[Collect]):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def handle(self, task: Collect, cancellation: CancellationToken) -> None:
        try:
            results: Any = await self.parent_results(int)
        except TaskResultError as exc:
            results = str(exc)
        self.probe.record("collect", task.name, self.parent_task_id, results)


class Undo(EverTask):
    name: str
    fail: bool = False


class UndoHandler(EverTaskHandler[Undo]):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def handle(self, task: Undo, cancellation: CancellationToken) -> None:
        self.probe.record("undo", task.name)
        if task.fail:
            raise RuntimeError(f"undo {task.name} failed")


HANDLERS = [WorkHandler, CollectHandler, UndoHandler]


def _host(kind: str, tmp_path: Path) -> tuple[Any, Probe]:
    container = Container()
    if kind == "sqlite":
        host, c = build_host(
            HANDLERS,
            container=container,
            storage=False,
            builder=lambda b: b.add_sqlite_storage(str(tmp_path / "wf.db")),
        )
    else:
        host, c = build_host(HANDLERS, container=container)
    probe: Probe = c.probe()
    return host, probe


@pytest.fixture(params=["memory", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _batch_done(host: Any, batch_id: uuid.UUID, timeout: float = 10.0) -> Any:
    found: list[Any] = []

    async def finished() -> bool:
        info = await host.dispatcher.get_batch(batch_id)
        found.append(info)
        return bool(info.finished)

    await wait_until(finished, timeout)
    return found[-1]


async def test_batch_progress_and_fan_in(kind: str, tmp_path: Path) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        batch = await d.dispatch_batch(
            [Work(name=f"w{i}", value=i) for i in range(20)], name="twenty"
        )
        after = await d.dispatch(Collect(name="sum"), after=batch)
        info = await _batch_done(host, batch)
        assert (info.kind, info.status, info.name) == (
            BatchKind.BATCH,
            BatchStatus.COMPLETED,
            "twenty",
        )
        assert (info.total, info.succeeded, info.failed, info.cancelled) == (20, 20, 0, 0)
        await wait_status(host, after, Q.COMPLETED)
        assert ("collect", "sum", batch, list(range(20))) in probe.calls
        # the batch has finished: a continuation dispatched now runs at once
        late = await d.dispatch(Collect(name="late"), after=batch)
        await wait_status(host, late, Q.COMPLETED)
        assert probe.count("collect") == 2


async def test_batch_with_a_failure_runs_failed_and_finished_continuations(
    kind: str, tmp_path: Path
) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        batch = await d.dispatch_batch([Work(name="a", value=1), Work(name="b", fail=True)])
        ok = await d.dispatch(Collect(name="ok"), after=batch)
        failed = await d.dispatch(
            Collect(name="failed"), after=batch, continue_when=ContinueWhen.FAILED
        )
        done = await d.dispatch(
            Collect(name="done"), after=batch, continue_when=ContinueWhen.FINISHED
        )
        info = await _batch_done(host, batch)
        assert (info.status, info.succeeded, info.failed) == (BatchStatus.FAILED, 1, 1)
        assert await wait_status(host, ok, Q.CANCELLED) is Q.CANCELLED
        await wait_status(host, failed, Q.COMPLETED)
        await wait_status(host, done, Q.COMPLETED)
        assert ("collect", "done", batch, [1, None]) in probe.calls


async def test_cancel_batch_cancels_pending_members_and_no_success_continuation(
    kind: str, tmp_path: Path
) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        running = Work(name="held", gate="hold")
        batch = await d.dispatch_batch([running] + [Work(name=f"p{i}") for i in range(3)])
        await probe.wait_for(lambda: probe.count("work") >= 4)
        members = await host.storage.batch_members(batch)
        held = next(m.id for m in members if '"held"' in m.request)
        on_success = await d.dispatch(Collect(name="success"), after=batch)
        on_end = await d.dispatch(
            Collect(name="end"), after=batch, continue_when=ContinueWhen.FINISHED
        )
        await d.cancel_batch(batch)
        info = await d.get_batch(batch)
        assert info.status is BatchStatus.CANCELLED
        assert await wait_status(host, held, Q.CANCELLED) is Q.CANCELLED
        assert await wait_status(host, on_success, Q.CANCELLED) is Q.CANCELLED
        assert await wait_status(host, on_end, Q.CANCELLED) is Q.CANCELLED
        assert probe.count("collect") == 0
        info = await d.get_batch(batch)
        assert info.pending == 0 and info.status is BatchStatus.CANCELLED
        # a second cancel of a finished batch changes nothing
        await d.cancel_batch(batch)
        with pytest.raises(TaskNotFoundError):
            await d.cancel_batch(uuid.uuid4())


async def test_cancel_workflow_stops_its_running_step_and_later_stages(
    kind: str, tmp_path: Path
) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        wf = (
            Workflow("w")
            .then(Work(name="slow", gate="never"), compensate=Undo(name="slow"))
            .group(Work(name="n1"), Work(name="n2"))
        )
        wid = await d.dispatch_workflow(wf)
        await probe.wait_for(lambda: ("work", "slow") in probe.calls)
        await d.cancel_batch(wid)
        for m in await host.storage.batch_members(wid):
            assert await wait_status(host, m.id, Q.CANCELLED) is Q.CANCELLED
        info = await d.get_batch(wid)
        assert (info.status, info.cancelled, info.pending) == (BatchStatus.CANCELLED, 3, 0)
        groups = await host.storage.list_batches(workflow_id=wid)
        assert [g.status for g in groups] == [BatchStatus.CANCELLED]
        # cancelling is not failing: no compensation runs
        assert probe.calls == [("work", "slow")]


async def test_workflow_chain_group_and_fan_in(kind: str, tmp_path: Path) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        wf = (
            Workflow("order")
            .then(Work(name="first", value=1))
            .group(Work(name="g1", value=10), Work(name="g2", value=20), Work(name="g3", value=30))
            .then(Collect(name="fan-in"))
        )
        wid = await d.dispatch_workflow(wf)
        info = await _batch_done(host, wid)
        assert (info.kind, info.status, info.total, info.succeeded) == (
            BatchKind.WORKFLOW,
            BatchStatus.COMPLETED,
            5,
            5,
        )
        groups = await host.storage.list_batches(workflow_id=wid)
        assert [g.kind for g in groups] == [BatchKind.GROUP]
        assert ("collect", "fan-in", groups[0].id, [10, 20, 30]) in probe.calls
        order = [c[1] for c in probe.calls if c[0] == "work"]
        assert order[0] == "first" and sorted(order[1:]) == ["g1", "g2", "g3"]


async def test_workflow_failure_cancels_later_stages(kind: str, tmp_path: Path) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        wf = (
            Workflow()
            .then(Work(name="a"))
            .group(Work(name="b1"), Work(name="b2", fail=True))
            .then(Work(name="c"))
            .then(Work(name="d"))
        )
        wid = await d.dispatch_workflow(wf)
        info = await _batch_done(host, wid)
        assert (info.status, info.succeeded, info.failed, info.cancelled) == (
            BatchStatus.FAILED,
            2,
            1,
            2,
        )
        assert ("work", "c") not in probe.calls and ("work", "d") not in probe.calls


async def test_saga_compensates_completed_steps_in_reverse(kind: str, tmp_path: Path) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        wf = (
            Workflow("saga")
            .then(Work(name="reserve"), compensate=Undo(name="reserve"))
            .then(Work(name="no-undo"))
            .group(
                Step(Work(name="charge"), compensate=Undo(name="charge", fail=True)),
                Step(Work(name="ship"), compensate=Undo(name="ship")),
                Step(Work(name="boom", fail=True), compensate=Undo(name="boom")),
            )
            .then(Work(name="never"), compensate=Undo(name="never"))
        )
        wid = await d.dispatch_workflow(wf)
        await _batch_done(host, wid)

        async def compensated() -> bool:
            found = await host.storage.list_batches(kinds=["Compensation"], workflow_id=wid)
            return bool(found) and found[0].status is not BatchStatus.RUNNING

        await wait_until(compensated, 10.0)
        comp = (await host.storage.list_batches(kinds=["Compensation"], workflow_id=wid))[0]
        undone = [c[1] for c in probe.calls if c[0] == "undo"]
        # reverse dispatch order of the completed steps; a failed compensation does not
        # stop the ones after it; the failed and the skipped steps are not compensated
        assert undone == ["ship", "charge", "reserve"]
        assert (comp.total, comp.succeeded, comp.failed, comp.status) == (
            3,
            2,
            1,
            BatchStatus.FAILED,
        )
        assert ("work", "never") not in probe.calls
        # the compensating task running again (its node died mid-run) adds nothing
        assert await d.compensate_workflow(wid) == comp.id
        assert len(await host.storage.batch_members(comp.id)) == 3
        assert [c[1] for c in probe.calls if c[0] == "undo"] == ["ship", "charge", "reserve"]


async def test_saga_that_succeeds_runs_no_compensation(kind: str, tmp_path: Path) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        wf = Workflow().then(Work(name="a"), compensate=Undo(name="a")).then(Work(name="b"))
        wid = await d.dispatch_workflow(wf)
        info = await _batch_done(host, wid)
        assert info.status is BatchStatus.COMPLETED
        assert await host.storage.list_batches(kinds=["Compensation"]) == []
        # the compensating task waited for a failure and was skipped
        assert probe.count("undo") == 0


async def test_bad_input_is_refused(kind: str, tmp_path: Path) -> None:
    host, _ = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        with pytest.raises(ConfigurationError, match="at least one task"):
            await d.dispatch_batch([])
        with pytest.raises(ConfigurationError, match="at least one step"):
            await d.dispatch_workflow(Workflow())
        with pytest.raises(ConfigurationError, match="EverTask instances"):
            await d.dispatch_batch(["not a task"])  # type: ignore[list-item]
        with pytest.raises(TaskNotFoundError):
            await d.get_batch(uuid.uuid4())
        with pytest.raises(ConfigurationError, match="at least one step"):
            Workflow().group()
        assert await host.storage.list_batches() == []


async def test_retrying_a_failed_step_resumes_the_workflow(kind: str, tmp_path: Path) -> None:
    host, probe = _host(kind, tmp_path)
    d = host.dispatcher
    async with host:
        wf = (
            Workflow("retry")
            .then(Work(name="a", value=1))
            .group(Work(name="b1", value=2), Work(name="b2", value=3, fail_once=True))
            .then(Collect(name="after-group"))
        )
        wid = await d.dispatch_workflow(wf)
        info = await _batch_done(host, wid)
        assert (info.status, info.failed, info.cancelled) == (BatchStatus.FAILED, 1, 1)
        members = await host.storage.batch_members(wid)
        failed = next(m.id for m in members if m.status is Q.FAILED)
        assert await d.retry(failed) == failed  # in place: the same task
        info = await _batch_done(host, wid)
        assert (info.status, info.succeeded) == (BatchStatus.COMPLETED, 4)
        groups = await host.storage.list_batches(workflow_id=wid)
        assert [c for c in probe.calls if c[0] == "collect"] == [
            ("collect", "after-group", groups[0].id, [2, 3])
        ]


async def test_management_retry_of_a_batch_member_is_in_place(tmp_path: Path) -> None:
    """The command line's and other processes' retry (SQLite: the host's poll finds it)."""
    from evertask.management import TaskStateError, retry_stored_task

    host, probe = _host("sqlite", tmp_path)
    d = host.dispatcher
    async with host:
        batch = await d.dispatch_batch([Work(name="x", fail_once=True), Work(name="y")])
        after = await d.dispatch(Collect(name="all"), after=batch)
        await _batch_done(host, batch)
        failed = next(m.id for m in await host.storage.batch_members(batch) if m.status is Q.FAILED)
        assert await retry_stored_task(host.storage, failed) == failed
        await wait_status(host, after, Q.COMPLETED)
        assert ("collect", "all", batch, [0, 0]) in probe.calls
        with pytest.raises(TaskStateError, match="only Failed or Cancelled"):
            await retry_stored_task(host.storage, failed)
