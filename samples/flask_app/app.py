"""The Flask application factory: ``create_app()``.

The host runs on a background thread (:class:`HostThread`) created with the app and started
at the first request that needs it. Starting lazily keeps it out of the processes that
never serve requests: the dev server's reloader parent (``flask run --reload`` loads the app
in the watching process as well as in the serving child) and a pre-forking server's master
(gunicorn ``--preload``), whose threads would not survive the fork into the workers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

from dependency_injector import containers, providers
from flask import Flask, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from evertask import EverTaskServiceBuilder, HostThread, add_evertask

from . import tasks

__all__ = ["create_app", "evertask"]

# dispatch_sync returns once the row is committed; a storage that does not answer within
# this many seconds fails the request instead of holding its worker.
TIMEOUT = 10.0


class Container(containers.DeclarativeContainer):
    """The application's services (handlers receive them by constructor injection)."""

    outbox = providers.Singleton(tasks.Outbox)


def configure(container: Container, config: Mapping[str, Any]) -> EverTaskServiceBuilder:
    """EverTask's configuration, from the app's config."""
    builder = add_evertask(
        container,
        lambda opt: (
            opt.register_tasks_from_module(tasks)
            .with_persistent_logger()
            .set_run_workers(config["EVERTASK_RUN_WORKERS"])
        ),
    )
    path = config["EVERTASK_SQLITE_PATH"]
    return builder.add_sqlite_storage(path) if path else builder.add_memory_storage()


def evertask(app: Flask | None = None) -> HostThread:
    """The app's host thread, started at the first call (thread-safe, idempotent)."""
    runner: HostThread = (app or current_app).extensions["evertask"]
    return runner.start(timeout=TIMEOUT)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app; ``config`` overrides the defaults below (and the environment's)."""
    app = Flask(__name__)
    app.config.from_mapping(
        # a file shared with other processes (several gunicorn workers, worker nodes);
        # empty: in-memory storage, for one process
        EVERTASK_SQLITE_PATH=os.environ.get("EVERTASK_SQLITE_PATH", ""),
        # False: dispatch only; worker nodes on the same database run the tasks
        EVERTASK_RUN_WORKERS=os.environ.get("EVERTASK_RUN_WORKERS", "1") != "0",
    )
    if config is not None:
        app.config.from_mapping(config)
    container = Container()
    app.extensions["evertask"] = HostThread(configure(container, app.config), name="evertask-flask")
    app.extensions["evertask.container"] = container

    @app.post("/newsletters")
    def send_newsletter() -> ResponseReturnValue:
        email = request.form.get("email", "").strip()
        if "@" not in email:
            return jsonify(error="a valid email is required"), 400
        task_id = evertask().dispatcher.dispatch_sync(
            tasks.SendNewsletter(email=email), timeout=TIMEOUT
        )
        status_url = url_for("task_status", task_id=task_id)
        return jsonify(task_id=str(task_id), status_url=status_url), 202

    @app.get("/tasks/<uuid:task_id>")
    def task_status(task_id: uuid.UUID) -> ResponseReturnValue:
        runner = evertask()
        storage = runner.host.storage
        assert storage is not None  # configure() always adds one
        row = runner.run_coroutine(storage.get(task_id), timeout=TIMEOUT)
        if row is None:
            return jsonify(error="no such task"), 404
        logs = runner.run_coroutine(storage.get_execution_logs(task_id), timeout=TIMEOUT)
        return jsonify(
            id=str(row.id),
            type=row.type,
            status=row.status.value,
            exception=row.exception,
            logs=[f"{log.level} {log.message}" for log in logs],
        )

    @app.get("/outbox")
    def outbox() -> ResponseReturnValue:
        return jsonify(sent=container.outbox().sent())

    return app
