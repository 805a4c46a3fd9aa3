"""``/batches``: batches and workflows with their members, stages, compensations and
continuations; cancel; a step's retry; read-only mode; on every storage."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from evertask_abstractions import ContinueWhen, QueuedTaskStatus, Step, Workflow
from evertask_monitor_api.routes import batches

from . import tasks
from .conftest import Monitored
from .harness import Api, build_host, parent_app, wait_for, wait_status

S = QueuedTaskStatus


async def _finished(api: Api, batch_id: uuid.UUID, timeout: float = 10.0) -> dict[str, Any]:
    """The record's detail once it is no longer Running."""
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        found.append(await api.json(f"/batches/{batch_id}"))
        return bool(found[-1]["status"] != "Running")

    await wait_for(done, timeout)
    return found[-1]


async def test_a_batch_with_its_members_results_and_continuations(fresh: Monitored) -> None:
    api, d = fresh.api, fresh.host.dispatcher
    batch = await d.dispatch_batch(
        [
            tasks.Stage(name="a", value=1),
            tasks.Stage(name="b", value=2),
            tasks.Stage(name="c", fail=True),
        ],
        name="trio",
    )
    on_failure = await d.dispatch(
        tasks.Stage(name="alert"), after=batch, continue_when=ContinueWhen.FAILED
    )
    on_success = await d.dispatch(tasks.Stage(name="ship"), after=batch)
    detail = await _finished(api, batch)
    await wait_status(fresh.host, on_failure, S.COMPLETED)

    assert (detail["id"], detail["kind"], detail["name"], detail["status"]) == (
        str(batch),
        "Batch",
        "trio",
        "Failed",
    )
    progress = [detail[k] for k in ("total", "succeeded", "failed", "cancelled", "pending")]
    assert progress == [3, 2, 1, 0, 0]
    assert detail["finishedAtUtc"] is not None and detail["canCancel"] is False
    assert detail["memberCount"] == 3 and detail["stages"] == [] and detail["compensations"] == []
    members = {m["result"]["name"] if m["result"] else "c": m for m in detail["members"]}
    assert members["a"]["result"] == {"name": "a", "value": 1}
    assert members["a"]["status"] == "Completed" and members["a"]["shortType"] == "Stage"
    assert members["a"]["batchId"] == str(batch) and members["a"]["workflowId"] is None
    failed = members["c"]
    assert failed["status"] == "Failed" and failed["result"] is None
    assert failed["exceptionSummary"] == "RuntimeError: c failed"
    assert failed["canRetry"] is True and failed["canCancel"] is False
    # the continuations: the failure one ran, the success one was skipped
    detail = await api.json(f"/batches/{batch}")
    continuations = {c["id"]: c for c in detail["continuations"]}
    assert list(continuations) == [str(on_failure), str(on_success)]
    alert = continuations[str(on_failure)]
    assert (alert["status"], alert["continueWhen"], alert["parentTaskId"]) == (
        "Completed",
        "Failed",
        str(batch),
    )
    assert alert["result"] == {"name": "alert", "value": 0}
    ship = continuations[str(on_success)]
    assert ship["status"] == "Cancelled" and ship["exceptionSummary"].startswith("Skipped")

    listed = await api.json("/batches")
    assert listed["items"][0]["id"] == str(batch) and listed["hasMore"] is False
    assert (listed["page"], listed["pageSize"]) == (1, 20)
    # a task's page names its batch, and a continuation's parent says it is a batch
    task = await api.json(f"/tasks/{failed['id']}")
    assert (task["batchId"], task["workflowId"], task["parentKind"]) == (str(batch), None, None)
    task = await api.json(f"/tasks/{on_failure}")
    assert (task["parentTaskId"], task["parentKind"]) == (str(batch), "Batch")
    assert task["result"] == {"name": "alert", "value": 0}


async def test_paging_and_kinds(fresh: Monitored) -> None:
    api, d = fresh.api, fresh.host.dispatcher
    batches = [await d.dispatch_batch([tasks.Stage(name=f"p{i}")]) for i in range(3)]
    flow = await d.dispatch_workflow(
        Workflow("paged")
        .then(tasks.Stage(name="x"))
        .group(tasks.Stage(name="y"), tasks.Stage(name="z"))
    )
    newest_first = [str(flow), *(str(b) for b in reversed(batches))]
    first = await api.json("/batches", pageSize=3)
    assert [b["id"] for b in first["items"]] == newest_first[:3] and first["hasMore"] is True
    second = await api.json("/batches", pageSize=3, page=2)
    assert [b["id"] for b in second["items"]] == newest_first[3:] and second["hasMore"] is False
    only = await api.json("/batches", kind="Workflow")
    assert [b["id"] for b in only["items"]] == [str(flow)]
    groups = await api.json("/batches", kind="Group")
    assert len(groups["items"]) == 1 and groups["items"][0]["workflowId"] == str(flow)
    both = await api.json("/batches", kind=["Batch", "Group"])
    assert {b["kind"] for b in both["items"]} == {"Batch", "Group"}
    assert (await api.get("/batches", kind="Task")).status_code == 422
    assert (await api.get("/batches", pageSize=201)).status_code == 422
    assert (await api.get("/batches", page=0)).status_code == 422
    assert (await api.json("/batches", page=50))["items"] == []


async def test_a_saga_with_stages_groups_a_failure_and_its_compensations(
    fresh: Monitored,
) -> None:
    api, d = fresh.api, fresh.host.dispatcher
    flow = await d.dispatch_workflow(
        Workflow("order-42")
        .then(tasks.Stage(name="reserve", value=1), compensate=tasks.Undo(name="reserve"))
        .group(
            Step(tasks.Stage(name="ship-a", value=2), compensate=tasks.Undo(name="ship-a")),
            tasks.Stage(name="ship-b", value=3),
        )
        .then(tasks.Stage(name="charge", fail=True))
        .then(tasks.Stage(name="notify"))
    )
    detail = await _finished(api, flow)
    assert (detail["kind"], detail["name"], detail["status"]) == ("Workflow", "order-42", "Failed")
    assert [detail[k] for k in ("total", "succeeded", "failed", "cancelled")] == [5, 3, 1, 1]

    # the compensating task runs once the workflow failed, then the compensations
    async def compensated() -> dict[str, Any] | None:
        found = await api.json(f"/batches/{flow}")
        comps = found["compensations"]
        return found if comps and comps[0]["status"] == "Completed" else None

    detail = await wait_for(compensated, 10)
    by_name = {
        (m["result"] or {}).get("name", "charge" if m["status"] == "Failed" else "notify"): m
        for m in detail["members"]
    }
    stages = detail["stages"]
    assert [len(s["taskIds"]) for s in stages] == [1, 2, 1, 1]
    assert [s["index"] for s in stages] == [1, 2, 3, 4]
    assert stages[0]["taskIds"] == [by_name["reserve"]["id"]] and stages[0]["group"] is None
    group = stages[1]["group"]
    assert group["kind"] == "Group" and group["status"] == "Completed"
    assert group["workflowId"] == str(flow) and group["total"] == 2
    assert set(stages[1]["taskIds"]) == {by_name["ship-a"]["id"], by_name["ship-b"]["id"]}
    assert stages[2]["taskIds"] == [by_name["charge"]["id"]]
    assert stages[3]["taskIds"] == [by_name["notify"]["id"]]
    assert by_name["notify"]["status"] == "Cancelled"
    assert by_name["notify"]["exceptionSummary"].startswith("Skipped: parent task")
    assert by_name["reserve"]["compensation"] == "Undo"
    assert by_name["ship-a"]["compensation"] == "Undo"
    assert by_name["ship-b"]["compensation"] is None
    assert by_name["ship-a"]["batchId"] == group["id"]
    assert by_name["ship-a"]["workflowId"] == str(flow)
    [comp] = detail["compensations"]
    assert (comp["kind"], comp["workflowId"], comp["total"]) == ("Compensation", str(flow), 2)
    # last completed step first
    assert [m["result"] for m in comp["members"]] == ["undid ship-a", "undid reserve"]
    [compensate] = detail["continuations"]
    assert compensate["shortType"] == "CompensateWorkflow"
    assert (compensate["continueWhen"], compensate["status"]) == ("Failed", "Completed")
    assert compensate["result"] == comp["id"]

    # groups and compensations are listed inside their workflow, not on their own
    listed = [b["id"] for b in (await api.json("/batches"))["items"]]
    assert listed == [str(flow)]
    assert (await api.json(f"/batches/{group['id']}"))["memberCount"] == 2
    # a step names its workflow and group; a step after a group waits for the group
    charge = await api.json(f"/tasks/{by_name['charge']['id']}")
    assert (charge["workflowId"], charge["batchId"]) == (str(flow), None)
    assert (charge["parentTaskId"], charge["parentKind"]) == (group["id"], "Group")
    ship = await api.json(f"/tasks/{by_name['ship-a']['id']}")
    assert (ship["workflowId"], ship["batchId"], ship["parentKind"]) == (
        str(flow),
        group["id"],
        "Task",
    )

    # a failed saga's step is not retried in place (its compensations ran): 409, the reason
    refused = await api.post(f"/tasks/{by_name['charge']['id']}/retry")
    assert refused.status_code == 409, refused.text
    assert "saga" in refused.json()["message"]
    after = await api.json(f"/batches/{flow}")
    assert (after["status"], after["failed"], after["memberCount"]) == ("Failed", 1, 5)


async def test_a_failed_step_is_retried_in_place_and_the_workflow_goes_on(
    fresh: Monitored,
) -> None:
    api, host = fresh.api, fresh.host
    gate = f"wf-{uuid.uuid4()}"
    flow = await host.dispatcher.dispatch_workflow(
        Workflow("retried")
        .then(tasks.Stage(name="flaky", fail=True))
        .then(tasks.Stage(name="after", gate=gate))
    )
    first, second = (m.id for m in await fresh.storage.batch_members(flow))
    await wait_status(host, second, S.CANCELLED)
    failed = await api.json(f"/batches/{flow}")
    assert failed["status"] == "Failed" and failed["members"][0]["canRetry"] is True
    retry = await api.post(f"/tasks/{first}/retry")
    assert retry.status_code == 202, retry.text
    assert uuid.UUID(retry.json()["taskId"]) == first  # in place: the same task

    # it runs again and fails again (its payload says so): counted once, its follower
    # skipped again
    async def failed_again() -> bool:
        audits = [a.new_status for a in await fresh.storage.get_status_audits(first)]
        return audits.count(S.FAILED) == 2

    await wait_for(failed_again, 10)
    audits = [a.new_status for a in await fresh.storage.get_status_audits(first)]
    assert audits[audits.index(S.FAILED) + 1] is S.QUEUED  # requeued by the retry
    again = await api.json(f"/batches/{flow}")
    assert (again["status"], again["failed"], again["cancelled"]) == ("Failed", 1, 1)
    assert (await fresh.storage.get(second)).status is S.CANCELLED


async def test_cancel_a_running_workflow(fresh: Monitored) -> None:
    api, host = fresh.api, fresh.host
    gate = f"wf-{uuid.uuid4()}"
    flow = await host.dispatcher.dispatch_workflow(
        Workflow("held")
        .then(tasks.Stage(name="first", gate=gate), compensate=tasks.Undo(name="first"))
        .then(tasks.Stage(name="next"))
    )
    running = await api.json(f"/batches/{flow}")
    assert running["status"] == "Running" and running["canCancel"] is True
    assert running["pending"] == 2
    first, second = (uuid.UUID(m["id"]) for m in running["members"])
    await wait_status(host, first, S.IN_PROGRESS)
    assert (await fresh.storage.get(second)).status is S.WAITING_PARENT
    assert (await api.json("/batches"))["items"][0]["canCancel"] is True

    response = await api.post(f"/batches/{flow}/cancel")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["batchId"], body["kind"], body["status"]) == (str(flow), "Workflow", "Cancelled")
    assert "was cancelled" in body["message"]
    await wait_status(host, first, S.CANCELLED)
    await wait_status(host, second, S.CANCELLED)
    detail = await api.json(f"/batches/{flow}")
    assert detail["status"] == "Cancelled" and detail["canCancel"] is False
    assert detail["cancelled"] == 2 and detail["pending"] == 0
    # a cancelled saga compensates nothing: its compensating task waits for a failure
    [compensate] = detail["continuations"]
    assert compensate["shortType"] == "CompensateWorkflow" and compensate["status"] == "Cancelled"
    assert detail["compensations"] == []

    again = await api.post(f"/batches/{flow}/cancel")
    assert again.status_code == 409 and "is Cancelled" in again.json()["message"]
    missing = await api.post(f"/batches/{uuid.uuid4()}/cancel")
    assert missing.status_code == 404 and "No batch or workflow" in missing.json()["message"]
    assert (await api.post("/batches/nope/cancel")).status_code == 422
    assert (await api.get(f"/batches/{uuid.uuid4()}")).status_code == 404
    assert (await api.get("/batches/nope")).status_code == 422

    done = await host.dispatcher.dispatch_batch([tasks.Stage(name="quick")])
    await _finished(api, done)
    finished = await api.post(f"/batches/{done}/cancel")
    assert finished.status_code == 409 and "is Completed" in finished.json()["message"]


async def test_read_only_mode_refuses_to_cancel_a_batch(tmp_path: Path) -> None:
    built = build_host("memory", tmp_path, lambda o: o.set_read_only())
    await built.host.start()
    api = Api(parent_app(built.host))
    try:
        await api.login()
        gate = f"ro-{uuid.uuid4()}"
        batch = await built.host.dispatcher.dispatch_batch(
            [tasks.Stage(name="held", gate=gate), tasks.Stage(name="bad", fail=True)]
        )
        detail = await api.json(f"/batches/{batch}")
        assert detail["status"] == "Running" and detail["canCancel"] is False
        refused = await api.post(f"/batches/{batch}/cancel")
        assert refused.status_code == 409 and "read-only" in refused.json()["message"]
        bad = detail["members"][1]  # (dispatch order)
        await wait_status(built.host, uuid.UUID(bad["id"]), S.FAILED)
        detail = await api.json(f"/batches/{batch}")
        assert all(not m["canRetry"] and not m["canCancel"] for m in detail["members"])
        assert (await built.host.dispatcher.get_batch(batch)).status.value == "Running"
        tasks.gate(gate).set()
    finally:
        await api.aclose()
        await built.close()


async def test_batches_need_a_token(memory: Monitored) -> None:
    client = memory.api.client
    batch = await memory.host.dispatcher.dispatch_batch([tasks.Stage(name="t")])
    for method, path in (
        ("GET", "/batches"),
        ("GET", f"/batches/{batch}"),
        ("POST", f"/batches/{batch}/cancel"),
    ):
        response = await client.request(method, f"/evertask-monitoring/api{path}")
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_large_record_returns_its_first_members_and_says_how_many(
    memory: Monitored, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches, "MAX_MEMBERS", 2)
    batch = await memory.host.dispatcher.dispatch_batch(
        [tasks.Stage(name=f"m{i}", value=i) for i in range(3)]
    )
    detail = await _finished(memory.api, batch)
    assert (detail["memberCount"], detail["memberLimit"], len(detail["members"])) == (3, 2, 2)
    assert detail["total"] == 3 and detail["succeeded"] == 3
