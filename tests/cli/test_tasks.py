"""``evertask tasks list | show | cancel | retry`` and ``evertask nodes`` on seeded rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evertask import uuid7
from evertask.storage.models import NodeInfo, QueuedTask, TaskExecutionLog
from evertask_abstractions import QueuedTaskStatus
from tests.cli.conftest import Database, evertask, evertask_json, invoke, invoke_json

S = QueuedTaskStatus
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _row(status: QueuedTaskStatus, minute: int, **fields: Any) -> QueuedTask:
    return QueuedTask(
        id=uuid7(),
        type=fields.pop("type", "app.tasks.SendEmail"),
        request='{"to": "a@b.c"}',
        handler="app.handlers.SendEmailHandler",
        status=status,
        created_at_utc=T0 + timedelta(minutes=minute),
        **fields,
    )


@pytest.fixture
def seeded(database: Database) -> dict[str, QueuedTask]:
    rows = {
        "queued": _row(S.QUEUED, 1, queue_name="critical", task_key="welcome-1"),
        "waiting": _row(S.WAITING_QUEUE, 2, scheduled_execution_utc=T0 + timedelta(days=1)),
        "completed": _row(S.COMPLETED, 3, execution_time_ms=12.5),
        "failed": _row(S.FAILED, 4, type="app.tasks.Resize", exception="ValueError: bad image"),
        "stopped": _row(S.SERVICE_STOPPED, 5),
    }

    async def seed(storage: Any) -> None:
        for row in rows.values():
            await storage.persist(row)
        await storage.save_execution_logs(
            rows["failed"].id,
            [
                TaskExecutionLog(
                    id=uuid.uuid4(),
                    task_id=rows["failed"].id,
                    timestamp_utc=T0,
                    level="Error",
                    message=f"resizing {i}",
                    sequence_number=i,
                )
                for i in range(3)
            ],
        )
        now = datetime.now(UTC)
        await storage.register_node(
            NodeInfo(
                id=uuid.uuid4(),
                host_name="worker-1",
                pid=4242,
                started_at_utc=now,
                last_heartbeat_utc=now,
                lease_expires_utc=now + timedelta(minutes=5),
                queues=("default", "critical"),
            )
        )

    database.call(seed)
    return rows


def test_list_filters_pages_and_sorts(database: Database, seeded: dict[str, QueuedTask]) -> None:
    page = evertask_json("tasks", "list", *database.args)
    assert page["total_count"] == 5 and page["total_pages"] == 1
    assert [item["id"] for item in page["items"]] == [
        str(seeded[k].id) for k in ("stopped", "failed", "completed", "waiting", "queued")
    ]
    assert page["items"][-1]["task_key"] == "welcome-1"
    assert page["items"][-1]["status"] == "Queued"

    failed = invoke_json("tasks", "list", "--status", "failed", *database.args)
    assert [i["id"] for i in failed["items"]] == [str(seeded["failed"].id)]
    pending = invoke_json(
        "tasks", "list", "--status", "Queued,WaitingQueue", "--ascending", *database.args
    )
    assert [i["status"] for i in pending["items"]] == ["Queued", "WaitingQueue"]
    assert invoke_json("tasks", "list", "--queue", "critical", *database.args)["total_count"] == 1
    assert invoke_json("tasks", "list", "--type", "resize", *database.args)["total_count"] == 1
    second = invoke_json("tasks", "list", "--limit", "2", "--page", "2", *database.args)
    assert second["total_pages"] == 3 and len(second["items"]) == 2
    assert second["items"][0]["id"] == str(seeded["completed"].id)

    table = invoke("tasks", "list", "--limit", "2", *database.args)
    assert table.returncode == 0 and str(seeded["stopped"].id) in table.stdout
    assert "page 1 of 3, 5 task(s)" in table.stdout
    bad = invoke("tasks", "list", "--status", "Finished", *database.args)
    assert bad.returncode == 2 and "not a status" in bad.stderr


def test_show_prints_the_row_its_history_and_logs(
    database: Database, seeded: dict[str, QueuedTask]
) -> None:
    failed = seeded["failed"]
    detail = evertask_json("tasks", "show", str(failed.id), *database.args)
    assert detail["task"]["id"] == str(failed.id)
    assert detail["task"]["exception"] == "ValueError: bad image"
    assert [a["new_status"] for a in detail["status_audits"]] == ["Failed"]
    assert detail["execution_log_count"] == 3
    assert [e["message"] for e in detail["execution_logs"]] == [f"resizing {i}" for i in range(3)]
    assert detail["can_retry"] is True and detail["can_cancel"] is False

    text = invoke("tasks", "show", str(failed.id), "--logs", "2", *database.args)
    assert text.returncode == 0
    assert "ValueError: bad image" in text.stdout and "Logs (last 2 of 3)" in text.stdout
    assert "resizing 2" in text.stdout and "resizing 0" not in text.stdout

    missing = invoke("tasks", "show", str(uuid.uuid4()), *database.args)
    assert missing.returncode == 1 and "No task with id" in missing.stderr
    assert invoke("tasks", "show", "not-an-id", *database.args).returncode == 2


def test_cancel_marks_pending_tasks_and_refuses_finished_ones(
    database: Database, seeded: dict[str, QueuedTask]
) -> None:
    queued = seeded["queued"]
    done = evertask("tasks", "cancel", str(queued.id), *database.args)
    assert done.returncode == 0, done.stderr
    assert f"Task {queued.id} is Cancelled." in done.stdout
    waiting = invoke_json("tasks", "cancel", str(seeded["waiting"].id), *database.args)
    assert waiting["status"] == "Cancelled"

    again = invoke("tasks", "cancel", str(queued.id), *database.args)
    assert again.returncode == 1 and "is Cancelled" in again.stderr
    finished = invoke("tasks", "cancel", str(seeded["completed"].id), *database.args)
    assert finished.returncode == 1 and "is Completed" in finished.stderr
    unknown = invoke("tasks", "cancel", str(uuid.uuid4()), *database.args)
    assert unknown.returncode == 1 and "No task with id" in unknown.stderr

    rows = database.call(lambda s: s.get(queued.id))
    assert rows.status is S.CANCELLED


def test_retry_stores_a_new_unowned_queued_task(
    database: Database, seeded: dict[str, QueuedTask]
) -> None:
    failed = seeded["failed"]
    done = evertask("tasks", "retry", str(failed.id), *database.args)
    assert done.returncode == 0, done.stderr
    result = invoke_json("tasks", "retry", str(failed.id), *database.args)  # twice: two runs
    new_id = uuid.UUID(result["task_id"])
    assert result["retried_from"] == str(failed.id)

    row = database.call(lambda s: s.get(new_id))
    assert row.status is S.QUEUED and row.owner_node is None and row.retried_from == failed.id
    assert (row.type, row.request, row.handler) == (failed.type, failed.request, failed.handler)
    assert row.scheduled_execution_utc is None

    refused = invoke("tasks", "retry", str(seeded["queued"].id), *database.args)
    assert refused.returncode == 1 and "only Failed or Cancelled" in refused.stderr
    unknown = invoke("tasks", "retry", str(uuid.uuid4()), *database.args)
    assert unknown.returncode == 1


def test_nodes_lists_the_registered_hosts(
    database: Database, seeded: dict[str, QueuedTask]
) -> None:
    nodes = evertask_json("nodes", *database.args)
    assert len(nodes) == 1
    assert nodes[0]["host_name"] == "worker-1" and nodes[0]["pid"] == 4242
    assert nodes[0]["alive"] is True and nodes[0]["queues"] == ["default", "critical"]
    table = invoke("nodes", *database.args)
    assert table.returncode == 0 and "worker-1" in table.stdout and "1 node(s)" in table.stdout
