"""Management actions: cancel, retry, pause/resume, and read-only mode, on every storage."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from evertask_abstractions import QueuedTaskStatus

from . import tasks
from .conftest import Monitored
from .harness import Api, build_host, parent_app, wait_for, wait_status

S = QueuedTaskStatus


async def test_cancel_scheduled_and_running_tasks(fresh: Monitored) -> None:
    api, host = fresh.api, fresh.host
    scheduled = await host.dispatcher.dispatch(tasks.Work(n=1), timedelta(hours=1))
    response = await api.post(f"/tasks/{scheduled}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Cancelled"
    assert (await fresh.storage.get(scheduled)).status is S.CANCELLED
    again = await api.post(f"/tasks/{scheduled}/cancel")
    assert again.status_code == 409 and "Cancelled" in again.json()["message"]
    assert (await api.post(f"/tasks/{uuid.uuid4()}/cancel")).status_code == 404
    assert (await api.post("/tasks/nope/cancel")).status_code == 422

    running = await host.dispatcher.dispatch(tasks.Hold(name=f"run-{uuid.uuid4()}"))
    await wait_status(host, running, S.IN_PROGRESS)
    response = await api.post(f"/tasks/{running}/cancel")
    assert response.status_code == 200
    await wait_status(host, running, S.CANCELLED)
    detail = (await api.get(f"/tasks/{running}")).json()
    assert detail["canCancel"] is False and detail["canRetry"] is True


async def test_retry_failed_and_cancelled_tasks(fresh: Monitored) -> None:
    api, host = fresh.api, fresh.host
    failed = await host.dispatcher.dispatch(tasks.Boom(message="first"))
    await wait_status(host, failed, S.FAILED)
    response = await api.post(f"/tasks/{failed}/retry")
    assert response.status_code == 202, response.text
    body = response.json()
    new_id = uuid.UUID(body["taskId"])
    assert body["retriedFrom"] == str(failed) and new_id != failed
    await wait_status(host, new_id, S.FAILED)
    detail = (await api.get(f"/tasks/{new_id}")).json()
    assert detail["retriedFrom"] == str(failed)
    assert detail["request"] == (await api.get(f"/tasks/{failed}")).json()["request"]

    done = await host.dispatcher.dispatch(tasks.Work(n=2))
    await wait_status(host, done, S.COMPLETED)
    refused = await api.post(f"/tasks/{done}/retry")
    assert refused.status_code == 409 and "only Failed or Cancelled" in refused.json()["message"]
    assert (await api.post(f"/tasks/{uuid.uuid4()}/retry")).status_code == 404

    cancelled = await host.dispatcher.dispatch(tasks.Work(n=3), timedelta(hours=1))
    await host.dispatcher.cancel(cancelled)
    again = await api.post(f"/tasks/{cancelled}/retry")
    assert again.status_code == 202
    await wait_status(host, uuid.UUID(again.json()["taskId"]), S.COMPLETED)


async def test_pause_queue_makes_its_tasks_wait_until_resumed(fresh: Monitored) -> None:
    api, host = fresh.api, fresh.host
    response = await api.post("/queues/reports/pause")
    assert response.status_code == 200 and response.json()["paused"] is True
    assert "reports" in await fresh.storage.get_paused_queues()
    configs = {q["queueName"]: q for q in (await api.get("/queues/configurations")).json()}
    assert configs["reports"]["paused"] is True
    overview = (await api.get("/dashboard/overview")).json()
    assert {q["queueName"]: q["paused"] for q in overview["queueSummaries"]}["reports"] is True

    report = await host.dispatcher.dispatch(tasks.Report(name="held"))
    queue = host.engine.queues.queues["reports"]
    await wait_for(lambda: len(queue) == 1)  # accepted, persisted, not started
    assert (await fresh.storage.get(report)).status is S.QUEUED
    other = await host.dispatcher.dispatch(tasks.Work(n=5))  # other queues keep running
    await wait_status(host, other, S.COMPLETED)
    assert (await fresh.storage.get(report)).status is S.QUEUED

    response = await api.post("/queues/reports/resume")
    assert response.status_code == 200 and response.json()["paused"] is False
    await wait_status(host, report, S.COMPLETED)
    assert "reports" not in await fresh.storage.get_paused_queues()
    missing = await api.post("/queues/nowhere/pause")
    assert missing.status_code == 404 and "configured queues" in missing.json()["message"]


async def test_read_only_mode_refuses_management(tmp_path: Path) -> None:
    built = build_host("memory", tmp_path, lambda o: o.set_read_only())
    await built.host.start()
    api = Api(parent_app(built.host))
    try:
        await api.login()
        failed = await built.host.dispatcher.dispatch(tasks.Boom())
        await wait_status(built.host, failed, S.FAILED)
        for path in (f"/tasks/{failed}/retry", f"/tasks/{failed}/cancel", "/queues/default/pause"):
            response = await api.post(path)
            assert response.status_code == 409, path
            assert "read-only" in response.json()["message"]
        detail = (await api.get(f"/tasks/{failed}")).json()
        assert detail["canRetry"] is False and detail["canCancel"] is False
        assert (await api.get("/config")).json()["readOnly"] is True
    finally:
        await api.aclose()
        await built.close()
