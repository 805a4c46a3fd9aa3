"""URLs of the sample project."""

from __future__ import annotations

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from .reports import views

urlpatterns = [
    # a JSON API called by scripts: no CSRF token (session-authenticated forms keep it)
    path("reports", csrf_exempt(views.create_report), name="create-report"),
    path("tasks/<uuid:task_id>", views.task_status, name="task-status"),
]
