"""Django settings of the sample project (development values; read the EVERTASK_* ones)."""

from __future__ import annotations

import os


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-key-for-the-evertask-sample-only")
DEBUG = _flag("DJANGO_DEBUG")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = ["samples.django_app.reports"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "samples.django_app.urls"
WSGI_APPLICATION = "samples.django_app.wsgi.application"
# The sample keeps no Django models: EverTask has its own tables. A real project points
# EverTask at its own database server instead (add_postgres_storage, see reports/runtime.py).
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# -- EverTask ------------------------------------------------------------------------------
# The SQLite file the web processes and the worker nodes share (one machine). Across
# machines, use PostgreSQL, MySQL/MariaDB or SQL Server storage instead.
EVERTASK_SQLITE_PATH = os.environ.get("EVERTASK_SQLITE_PATH", "evertask-django.db")
# False (the default): web processes only dispatch (set_run_workers(False)) and
# `python -m samples.django_app evertask_worker` runs the tasks. True: web processes run
# tasks too, and no worker process is needed.
EVERTASK_WEB_RUNS_WORKERS = _flag("EVERTASK_WEB_RUNS_WORKERS")
# How often a worker node looks for rows dispatched by web processes (seconds).
EVERTASK_POLL_INTERVAL = float(os.environ.get("EVERTASK_POLL_INTERVAL", "1.0"))
# How long a stopping worker lets running tasks finish (seconds).
EVERTASK_GRACE_PERIOD = float(os.environ.get("EVERTASK_GRACE_PERIOD", "30"))
