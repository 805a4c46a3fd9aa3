"""Every read route, filter, sort key and paging edge, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evertask_abstractions import QueuedTaskStatus

from .conftest import Monitored
from .harness import BASE

pytestmark = pytest.mark.asyncio(loop_scope="module")

S = QueuedTaskStatus
SORT_KEYS = [
    "createdAtUtc",
    "lastExecutionUtc",
    "scheduledExecutionUtc",
    "status",
    "type",
    "queueName",
]


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def as_str(values: list[uuid.UUID]) -> set[str]:
    return {str(v) for v in values}


async def test_default_page_is_newest_first(seeded: Monitored) -> None:
    page = await seeded.api.json("/tasks")
    assert seeded.seeded is not None
    assert page["totalCount"] == seeded.seeded.total == 15
    assert (page["page"], page["pageSize"], page["totalPages"]) == (1, 20, 1)
    created = [item["createdAtUtc"] for item in page["items"]]
    assert created == sorted(created, reverse=True)
    item = page["items"][0]
    assert {
        "id",
        "type",
        "shortType",
        "status",
        "queueName",
        "createdAtUtc",
        "hasException",
        "ownerNode",
    } <= set(item)


async def test_filters(seeded: Monitored) -> None:
    data = seeded.seeded
    assert data is not None
    api = seeded.api
    created = [item["createdAtUtc"] for item in (await api.json("/tasks", pageSize=50))["items"]]
    oldest = min(created)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    cases: list[tuple[dict[str, Any], set[str] | int]] = [
        ({"statuses": "Failed"}, as_str(data.failed)),
        ({"statuses": ["Failed", "Cancelled"]}, as_str([*data.failed, data.cancelled])),
        # the recurring series waits for its next run
        ({"statuses": "WaitingQueue"}, as_str([*data.scheduled, data.recurring])),
        ({"taskType": "BOOM"}, as_str(data.failed)),
        ({"taskType": "tasks:Rep"}, as_str(data.reports)),
        ({"queueName": "reports"}, as_str(data.reports)),
        ({"queueName": "Reports"}, 0),
        ({"isRecurring": "true"}, {str(data.recurring)}),
        ({"isRecurring": "false"}, 14),
        ({"searchTerm": "tick-KEY"}, {str(data.recurring)}),
        ({"searchTerm": "BoomHandler"}, as_str(data.failed)),
        ({"searchTerm": "100%_"}, 0),
        ({"createdAfter": future}, 0),
        ({"createdBefore": past}, 0),
        ({"createdAfter": past, "createdBefore": future}, 15),
        ({"createdAfter": oldest}, 15),
        ({"createdBefore": oldest}, 0),
        ({"createdAfter": "2000-01-01T00:00:00"}, 15),  # naive: taken as UTC
        ({"statuses": "Completed", "queueName": "default"}, as_str(data.completed)),
        ({"statuses": "Completed", "taskType": "Boom"}, 0),
    ]
    for params, expected in cases:
        page = await api.json("/tasks", pageSize=50, **params)
        if isinstance(expected, int):
            assert page["totalCount"] == expected, params
        else:
            assert set(ids(page)) == expected, params
            assert page["totalCount"] == len(expected), params


def _check_order(items: list[dict[str, Any]], key: str, descending: bool) -> None:
    values = [item[key] for item in items]
    present = [v for v in values if v is not None]
    # rows without a value come last in both directions
    assert values == present + [None] * (len(values) - len(present)), (key, values)
    assert present == sorted(present, reverse=descending), (key, descending, present)


async def test_every_sort_key_both_directions_and_stable_paging(seeded: Monitored) -> None:
    api = seeded.api
    for key in SORT_KEYS:
        for descending in (True, False):
            flag = str(descending).lower()
            full = await api.json("/tasks", sortBy=key, sortDescending=flag, pageSize=200)
            assert full["totalCount"] == 15
            _check_order(full["items"], key, descending)
            paged: list[str] = []
            for page in range(1, 5):
                chunk = await api.json(
                    "/tasks", sortBy=key, sortDescending=flag, pageSize=4, page=page
                )
                assert chunk["totalPages"] == 4
                paged.extend(ids(chunk))
            assert paged == ids(full), (key, descending)


async def test_paging_edges(seeded: Monitored) -> None:
    api = seeded.api
    beyond = await api.json("/tasks", page=99, pageSize=4)
    assert beyond["items"] == [] and beyond["totalCount"] == 15 and beyond["totalPages"] == 4
    last = await api.json("/tasks", page=4, pageSize=4)
    assert len(last["items"]) == 3
    single = await api.json("/tasks", pageSize=1)
    assert len(single["items"]) == 1 and single["totalPages"] == 15
    assert (await api.json("/tasks", page=1_000_000))["items"] == []
    empty = await api.json("/tasks", statuses="ServiceStopped")
    assert empty == {"items": [], "totalCount": 0, "page": 1, "pageSize": 20, "totalPages": 1}
    for params in (
        {"page": 0},
        {"page": 1_000_001},
        {"pageSize": 0},
        {"pageSize": 201},
        {"sortBy": "Id"},
        {"statuses": "Done"},
        {"isRecurring": "maybe"},
        {"createdAfter": "yesterday"},
        {"taskType": "x" * 201},
    ):
        response = await api.get("/tasks", **params)
        assert response.status_code == 422, params


async def test_task_detail_of_completed_task_has_audits_and_logs(seeded: Monitored) -> None:
    assert seeded.seeded is not None
    tid = seeded.seeded.completed[0]
    detail = await seeded.api.json(f"/tasks/{tid}")
    assert detail["id"] == str(tid)
    assert detail["status"] == "Completed"
    statuses = [a["newStatus"] for a in detail["statusAudits"]]
    assert statuses[0] == "Completed"  # newest first
    assert {"Queued", "InProgress", "Completed"} <= set(statuses)
    assert detail["executionLogCount"] == 3
    assert detail["canCancel"] is False and detail["canRetry"] is False
    assert '"n":0' in detail["request"].replace(" ", "")
    assert detail["auditLevel"] == "Full"
    assert detail["runsAudits"] == []


async def test_task_detail_of_failed_task_shows_exception(seeded: Monitored) -> None:
    assert seeded.seeded is not None
    tid = seeded.seeded.failed[1]
    detail = await seeded.api.json(f"/tasks/{tid}")
    assert detail["status"] == "Failed"
    assert "ValueError" in detail["exception"] and "boom 1" in detail["exception"]
    assert detail["hasException"] is True
    assert detail["canRetry"] is True and detail["canCancel"] is False
    failed_audit = detail["statusAudits"][0]
    assert failed_audit["newStatus"] == "Failed" and "boom 1" in failed_audit["exception"]


async def test_task_detail_of_recurring_task_has_runs(seeded: Monitored) -> None:
    assert seeded.seeded is not None
    tid = seeded.seeded.recurring
    detail = await seeded.api.json(f"/tasks/{tid}")
    assert detail["isRecurring"] is True and detail["taskKey"] == "tick-key"
    assert detail["recurringInfo"] and detail["nextRunUtc"]
    assert detail["currentRunCount"] >= 1
    assert len(detail["runsAudits"]) >= 1 and detail["runsAudits"][0]["status"] == "Completed"
    assert detail["canCancel"] is True  # a live series can be cancelled
    runs = await seeded.api.json(f"/tasks/{tid}/runs-audit")
    assert [r["id"] for r in runs] == [r["id"] for r in detail["runsAudits"]]


async def test_unknown_and_malformed_ids(seeded: Monitored) -> None:
    api = seeded.api
    unknown = uuid.uuid4()
    response = await api.get(f"/tasks/{unknown}")
    assert response.status_code == 404 and str(unknown) in response.json()["message"]
    assert (await api.get("/tasks/not-a-uuid")).status_code == 422
    assert await api.json(f"/tasks/{unknown}/status-audit") == []
    assert await api.json(f"/tasks/{unknown}/runs-audit") == []
    logs = await api.json(f"/tasks/{unknown}/execution-logs")
    assert logs == {"logs": [], "totalCount": 0, "skip": 0, "take": 100}


async def test_status_audit_route_newest_first(seeded: Monitored) -> None:
    assert seeded.seeded is not None
    audits = await seeded.api.json(f"/tasks/{seeded.seeded.cancelled}/status-audit")
    assert audits[0]["newStatus"] == "Cancelled"
    stamps = [a["updatedAtUtc"] for a in audits]
    assert stamps == sorted(stamps, reverse=True)


async def test_execution_logs_paging_and_level_filter(seeded: Monitored) -> None:
    assert seeded.seeded is not None
    api = seeded.api
    done = seeded.seeded.completed[2]
    all_logs = await api.json(f"/tasks/{done}/execution-logs")
    assert all_logs["totalCount"] == 3
    messages = [entry["message"] for entry in all_logs["logs"]]
    assert messages == ["work 2 starting", "work 2 took a while", "work 2 done"]
    assert [e["sequenceNumber"] for e in all_logs["logs"]] == sorted(
        e["sequenceNumber"] for e in all_logs["logs"]
    )
    middle = await api.json(f"/tasks/{done}/execution-logs", skip=1, take=1)
    assert [e["message"] for e in middle["logs"]] == ["work 2 took a while"]
    assert (middle["totalCount"], middle["skip"], middle["take"]) == (3, 1, 1)
    past_end = await api.json(f"/tasks/{done}/execution-logs", skip=10)
    assert past_end["logs"] == [] and past_end["totalCount"] == 3
    failed = seeded.seeded.failed[0]
    warnings = await api.json(f"/tasks/{failed}/execution-logs", level="warning")
    assert [e["message"] for e in warnings["logs"]] == ["failing with boom 0"]
    assert warnings["totalCount"] == 1
    assert (await api.json(f"/tasks/{failed}/execution-logs", level="Nope"))["totalCount"] == 0
    for params in ({"skip": -1}, {"take": 0}, {"take": 1001}):
        assert (await api.get(f"/tasks/{failed}/execution-logs", **params)).status_code == 422


async def test_counts(seeded: Monitored) -> None:
    counts = await seeded.api.json("/tasks/counts")
    assert counts == {"all": 15, "standard": 14, "recurring": 1, "failed": 3}


def _midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def test_overview_counts_equal_the_storage(seeded: Monitored) -> None:
    overview = await seeded.api.json("/dashboard/overview")
    by_status = await seeded.storage.count_by_status(_midnight())
    assert overview["range"] == "Today"
    assert overview["statusDistribution"] == {s.value: by_status.get(s, 0) for s in S}
    assert overview["totalTasksToday"] == overview["totalTasksInRange"] == 15
    assert overview["totalTasksWeek"] == 15
    completed, failed = by_status[S.COMPLETED], by_status[S.FAILED]
    assert overview["failedCount"] == failed == 3
    assert overview["successRate"] == round(completed * 100 / (completed + failed), 2)
    assert overview["avgExecutionTimeMs"] is not None and overview["avgExecutionTimeMs"] >= 0
    hours = overview["tasksOverTime"]
    assert len(hours) == 24
    assert sum(h["total"] for h in hours) == 15
    assert sum(h["failed"] for h in hours) == 3
    assert sum(h["completed"] for h in hours) == completed
    queues = {q["queueName"]: q for q in overview["queueSummaries"]}
    assert set(queues) == {"default", "recurring", "reports"}
    assert queues["reports"]["completedCount"] == 2
    assert queues["default"]["pendingCount"] == 2  # the two scheduled tasks
    assert queues["default"]["failedCount"] == 3
    for span in ("Week", "Month", "All"):
        other = await seeded.api.json("/dashboard/overview", range=span)
        assert other["range"] == span and other["totalTasksInRange"] == 15
    assert (await seeded.api.get("/dashboard/overview", range="Year")).status_code == 422


async def test_recent_activity(seeded: Monitored) -> None:
    api = seeded.api
    recent = await api.json("/dashboard/recent-activity", limit=5)
    assert len(recent) == 5
    rows = (await api.json("/tasks", pageSize=200))["items"]
    shown = sorted((t["lastExecutionUtc"] or t["createdAtUtc"] for t in rows), reverse=True)
    assert [r["timestamp"] for r in recent] == shown[:5]  # newest by the time shown
    assert all(r["message"] for r in recent)
    assert len(await api.json("/dashboard/recent-activity")) == 15
    for limit in (0, 201):
        assert (await api.get("/dashboard/recent-activity", limit=limit)).status_code == 422


async def test_queue_metrics_equal_the_storage(seeded: Monitored) -> None:
    metrics = {q["queueName"]: q for q in await seeded.api.json("/queues")}
    counts = await seeded.storage.count_by_queue_and_status()
    for name, queue in metrics.items():
        mine = {s: n for (q, s), n in counts.items() if q == name}
        assert queue["totalTasks"] == sum(mine.values())
        assert queue["completedTasks"] == mine.get(S.COMPLETED, 0)
        assert queue["failedTasks"] == mine.get(S.FAILED, 0)
        assert queue["cancelledTasks"] == mine.get(S.CANCELLED, 0)
    assert metrics["default"]["pendingTasks"] == 2
    assert metrics["default"]["successRate"] == round(6 * 100 / 9, 2)
    assert metrics["reports"]["avgExecutionTimeMs"] is not None


async def test_queue_configurations(seeded: Monitored) -> None:
    configs = {q["queueName"]: q for q in await seeded.api.json("/queues/configurations")}
    assert set(configs) == {"default", "recurring", "reports"}
    reports = configs["reports"]
    assert reports["configured"] is True
    assert reports["maxDegreeOfParallelism"] == 2
    assert reports["channelCapacity"] == 500
    assert reports["queueFullBehavior"] == "FALLBACK_TO_DEFAULT"
    assert reports["paused"] is False
    assert configs["default"]["queueFullBehavior"] == "WAIT"


async def test_queue_tasks(seeded: Monitored) -> None:
    assert seeded.seeded is not None
    page = await seeded.api.json("/queues/reports/tasks")
    assert set(ids(page)) == as_str(seeded.seeded.reports)
    assert (await seeded.api.json("/queues/nowhere/tasks"))["totalCount"] == 0
    two = await seeded.api.json("/queues/default/tasks", pageSize=2, page=2)
    assert len(two["items"]) == 2 and two["totalCount"] == 12


async def test_statistics(seeded: Monitored) -> None:
    api = seeded.api
    by_status = await seeded.storage.count_by_status(_midnight())
    for period, buckets in (("Last7Days", 7), ("Last30Days", 30), ("Last90Days", 13)):
        trend = await api.json("/statistics/success-rate-trend", period=period)
        assert len(trend["timestamps"]) == len(trend["successRates"]) == buckets
        assert trend["completed"][-1] == by_status[S.COMPLETED]
        assert trend["failed"][-1] == 3
        assert trend["successRates"][0] is None
    types = await api.json("/statistics/task-types")
    counted = {t["shortType"]: t["count"] for t in types["types"]}
    assert counted == {"Work": 9, "Boom": 3, "Report": 2, "Tick": 1}
    assert types["exact"] is True and types["range"] == "Week"
    for span, points in (("Today", 24), ("Week", 7), ("Month", 30), ("All", 26)):
        times = await api.json("/statistics/execution-times", range=span)
        assert len(times) == points, span
        assert times[-1]["sampleSize"] > 0 and times[-1]["avgExecutionTimeMs"] is not None
    assert (await api.get("/statistics/success-rate-trend", period="Forever")).status_code == 422


async def test_openapi_schema_and_config(seeded: Monitored) -> None:
    client = seeded.api.client
    schema = (await client.get(f"{BASE}/api/openapi.json")).json()
    assert "/api/tasks" in schema["paths"] and "/api/tasks/{task_id}/retry" in schema["paths"]
    assert "bearerAuth" in schema["components"]["securitySchemes"]
    config = (await client.get(f"{BASE}/api/config")).json()
    assert config["requireAuthentication"] is True
    assert config["apiBasePath"] == f"{BASE}/api" and config["webSocketPath"] == f"{BASE}/ws"
    assert config["readOnly"] is False and config["liveEvents"] is True
    assert config["docsUrl"] is None
