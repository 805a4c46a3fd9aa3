"""Results and continuations through the engine (memory storage and SQLite)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from evertask_abstractions import (
    CancellationToken,
    ContinueWhen,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
    TaskResultError,
)
from tests.helpers import Container, Probe, build_host, wait_status

Q = QueuedTaskStatus


class Total(BaseModel):
    value: int


class Sum(EverTask):
    a: int
    b: int
    fail: bool = False


class SumHandler(EverTaskHandler[Sum]):
    result_type = Total

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def handle(self, task: Sum, cancellation: CancellationToken) -> Total:
        self.probe.record("sum", task.a + task.b)
        if task.fail:
            raise RuntimeError("sum failed")
        return Total(value=task.a + task.b)


class Report(EverTask):
    label: str


class ReportHandler(EverTaskHandler[Report]):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def handle(self, task: Report, cancellation: CancellationToken) -> str:
        parent = self.parent_task_id
        value: Any = None
        if parent is not None:
            try:
                value = (await self.parent_result(Total)).value
            except TaskResultError:
                value = "no-result"
        self.probe.record("report", task.label, parent, value)
        return f"{task.label}:{value}"


class Bad(EverTask):
    pass


class BadHandler(EverTaskHandler[Bad]):
    async def handle(self, task: Bad, cancellation: CancellationToken) -> object:
        return object()


class SyncDict(EverTask):
    n: int


class SyncDictHandler(EverTaskHandler[SyncDict]):
    result_type = dict[str, int]

    def handle(self, task: SyncDict, cancellation: CancellationToken) -> dict[str, int]:
        return {"n": task.n}


HANDLERS = [SumHandler, ReportHandler, BadHandler, SyncDictHandler]


def _host(kind: str, tmp_path: Path) -> tuple[Any, Any]:
    container = Container()
    if kind == "sqlite":
        return build_host(
            HANDLERS,
            container=container,
            storage=False,
            builder=lambda b: b.add_sqlite_storage(str(tmp_path / "wf.db")),
        )
    return build_host(HANDLERS, container=container)


@pytest.fixture(params=["memory", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_result_is_stored_and_typed(kind: str, tmp_path: Path) -> None:
    host, _ = _host(kind, tmp_path)
    async with host:
        tid = await host.dispatcher.dispatch(Sum(a=2, b=3))
        await wait_status(host, tid, Q.COMPLETED)
        assert await host.dispatcher.get_result(tid, Total) == Total(value=5)
        assert await host.dispatcher.get_result(tid) == {"value": 5}
        sync_id = await host.dispatcher.dispatch(SyncDict(n=4))
        await wait_status(host, sync_id, Q.COMPLETED)
        assert await host.dispatcher.get_result(sync_id, dict[str, int]) == {"n": 4}
        with pytest.raises(TaskResultError, match="does not fit"):
            await host.dispatcher.get_result(tid, int)


async def test_result_errors(kind: str, tmp_path: Path) -> None:
    host, _ = _host(kind, tmp_path)
    async with host:
        failed = await host.dispatcher.dispatch(Sum(a=1, b=1, fail=True))
        await wait_status(host, failed, Q.FAILED)
        with pytest.raises(TaskResultError, match="Failed"):
            await host.dispatcher.get_result(failed, Total)
        with pytest.raises(TaskResultError, match="does not exist"):
            await host.dispatcher.get_result(uuid.uuid4())
        bad = await host.dispatcher.dispatch(Bad())
        await wait_status(host, bad, Q.FAILED)
        row = await host.storage.get(bad)
        assert row is not None and row.exception is not None
        assert "BadHandler" in row.exception and "object" in row.exception


async def test_continuations_run_by_outcome(kind: str, tmp_path: Path) -> None:
    host, c = _host(kind, tmp_path)
    probe: Probe = c.probe()
    d = host.dispatcher
    async with host:
        ok = await d.dispatch(Sum(a=20, b=22))
        bad = await d.dispatch(Sum(a=0, b=0, fail=True))
        on_ok = await d.dispatch(Report(label="ok"), after=ok)
        on_ok_failed = await d.dispatch(
            Report(label="x"), after=ok, continue_when=ContinueWhen.FAILED
        )
        on_bad = await d.dispatch(Report(label="bad"), after=bad, continue_when=ContinueWhen.FAILED)
        on_bad_any = await d.dispatch(
            Report(label="any"), after=bad, continue_when=ContinueWhen.FINISHED
        )
        for tid in (on_ok, on_bad, on_bad_any):
            await wait_status(host, tid, Q.COMPLETED)
        assert await wait_status(host, on_ok_failed, Q.CANCELLED) is Q.CANCELLED
        assert ("report", "ok", ok, 42) in probe.calls
        assert ("report", "bad", bad, "no-result") in probe.calls
        assert ("report", "any", bad, "no-result") in probe.calls
        assert probe.count("report") == 3
        assert await d.get_result(on_ok, str) == "ok:42"
        # the parent has finished: a new continuation runs at once
        late = await d.dispatch(Report(label="late"), after=ok)
        await wait_status(host, late, Q.COMPLETED)
        assert ("report", "late", ok, 42) in probe.calls


async def test_chain_of_three_and_cancelled_parent(kind: str, tmp_path: Path) -> None:
    host, c = _host(kind, tmp_path)
    probe: Probe = c.probe()
    d = host.dispatcher
    async with host:
        gate = await d.dispatch(Sum(a=1, b=1), __import__("datetime").timedelta(hours=1))
        second = await d.dispatch(Report(label="second"), after=gate)
        third = await d.dispatch(Report(label="third"), after=second)
        row = await host.storage.get(second)
        assert row is not None and row.status is Q.WAITING_PARENT
        await d.cancel(gate)
        assert await wait_status(host, second, Q.CANCELLED) is Q.CANCELLED
        assert await wait_status(host, third, Q.CANCELLED) is Q.CANCELLED
        first = await d.dispatch(Sum(a=1, b=2))
        two = await d.dispatch(Report(label="two"), after=first)
        three = await d.dispatch(Report(label="three"), after=two)
        await wait_status(host, three, Q.COMPLETED)
        assert ("report", "two", first, 3) in probe.calls
        # "two" returned a str: reading it as Total fails, which the handler reports
        assert ("report", "three", two, "no-result") in probe.calls
        assert probe.count("report") == 2
