"""EverTask in the Django project: the host configuration and the web process's host.

Web processes dispatch through a host running on a background thread (:class:`HostThread`),
started at its first use: that is always inside the process that serves the request, after
gunicorn or uWSGI forked it, and never in management commands that do not dispatch.
"""

from __future__ import annotations

import threading

from django.conf import settings

from evertask import EverTaskServiceBuilder, HostThread, add_evertask

from . import tasks

__all__ = ["configure", "stop_web_host", "web_host"]

_lock = threading.Lock()
_web: HostThread | None = None


def configure(*, run_workers: bool) -> EverTaskServiceBuilder:
    """The EverTask configuration shared by the web processes and the worker nodes."""
    builder = add_evertask(
        None,
        lambda opt: (
            opt.register_tasks_from_module(tasks)
            .with_persistent_logger()  # the status view shows each run's logs
            .set_run_workers(run_workers)
            .set_cluster_poll_interval(settings.EVERTASK_POLL_INTERVAL)
            .set_shutdown_grace_period(settings.EVERTASK_GRACE_PERIOD)
        ),
    )
    # One SQLite file serves the processes of one machine; across machines use the
    # database server the project already has, e.g. builder.add_postgres_storage(url).
    return builder.add_sqlite_storage(settings.EVERTASK_SQLITE_PATH)


def web_host() -> HostThread:
    """The web process's host, started at the first call (thread-safe, idempotent).

    Dispatch-only unless ``EVERTASK_WEB_RUNS_WORKERS`` is set: its rows wait in the database
    for a worker node (``python -m samples.django_app evertask_worker``).
    """
    global _web
    with _lock:
        if _web is None:
            builder = configure(run_workers=settings.EVERTASK_WEB_RUNS_WORKERS)
            _web = HostThread(builder, name="evertask-web")
        runner = _web
    return runner.start(timeout=30)


def stop_web_host(timeout: float | None = None) -> None:
    """Stop the web process's host, if it started (tests; a server's worker-exit hook).

    The host also stops by itself when the process exits normally (``atexit``).
    """
    global _web
    with _lock:
        runner, _web = _web, None
    if runner is not None:
        runner.stop(timeout)
