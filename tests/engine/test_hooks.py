"""Lifecycle hooks: order, and failures that never change the outcome."""

from __future__ import annotations

import pytest

from evertask import EventKind
from evertask_abstractions import QueuedTaskStatus
from tests.engine.tasks import ALL, Hooked
from tests.helpers import build_host, wait_status


async def test_hooks_run_in_order_on_success() -> None:
    host, c = build_host(ALL)
    async with host:
        tid = await host.dispatcher.dispatch(Hooked())
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
        await c.probe().wait_for(lambda: "dispose" in c.probe().names())
    assert c.probe().names() == ["on_started", "handle", "on_completed", "dispose"]


async def test_hooks_run_in_order_on_failure() -> None:
    host, c = build_host(ALL)
    async with host:
        tid = await host.dispatcher.dispatch(Hooked(fail="handle"))
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
        await c.probe().wait_for(lambda: "dispose" in c.probe().names())
    assert c.probe().names() == ["on_started", "handle", "on_error", "dispose"]


@pytest.mark.parametrize("where", ["on_started", "on_completed", "dispose"])
async def test_hook_failure_does_not_change_a_success(where: str) -> None:
    host, c = build_host(ALL)
    events = []
    host.events.subscribe(events.append)
    async with host:
        # on_started runs before handle sets the failure point, so use a fresh handler flag
        tid = await host.dispatcher.dispatch(Hooked(fail=where))
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
        await c.probe().wait_for(lambda: "dispose" in c.probe().names())
    if where != "on_started":
        assert any(e.kind is EventKind.CALLBACK_ERROR for e in events)


async def test_on_error_failure_keeps_the_failed_outcome() -> None:
    host, c = build_host(ALL)
    async with host:
        tid = await host.dispatcher.dispatch(Hooked(fail="handle,on_error"))
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
        await c.probe().wait_for(lambda: "dispose" in c.probe().names())
        row = await host.storage.get(tid)
    assert row is not None and "handle exploded" in (row.exception or "")
    assert c.probe().names() == ["on_started", "handle", "on_error", "dispose"]
