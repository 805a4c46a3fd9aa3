"""Synchronous views: they dispatch with ``dispatch_sync`` and read a task's state."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from .runtime import web_host
from .tasks import GenerateReport

# dispatch_sync returns once the row is committed; a database that does not answer within
# this many seconds fails the request instead of holding its worker.
DISPATCH_TIMEOUT = 10.0


def create_report(request: HttpRequest) -> HttpResponse:
    """``POST /reports`` (``name``, ``rows``): dispatch a report; 202 with its task id."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    name = request.POST.get("name", "report")
    try:
        rows = int(request.POST.get("rows", "1000"))
    except ValueError:
        return JsonResponse({"error": "rows must be an integer"}, status=400)
    task = GenerateReport(name=name, rows=rows)
    task_id = web_host().dispatcher.dispatch_sync(task, timeout=DISPATCH_TIMEOUT)
    status_url = reverse("task-status", args=[task_id])
    return JsonResponse({"task_id": str(task_id), "status_url": status_url}, status=202)


def task_status(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    """``GET /tasks/<id>``: the task's status and the logs its run wrote."""
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET"})
    runner = web_host()
    storage = runner.host.storage
    assert storage is not None  # configured in runtime.configure
    row = runner.run_coroutine(storage.get(task_id), timeout=DISPATCH_TIMEOUT)
    if row is None:
        raise Http404("no such task")
    logs = runner.run_coroutine(storage.get_execution_logs(task_id), timeout=DISPATCH_TIMEOUT)
    return JsonResponse(
        {
            "id": str(row.id),
            "type": row.type,
            "status": row.status.value,
            "queue": row.queue_name,
            "exception": row.exception,
            "logs": [f"{log.level} {log.message}" for log in logs],
        }
    )
