"""The Flask sample: sync routes dispatch with dispatch_sync to a host on its own thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from evertask import HostThread
from samples.flask_app.app import create_app


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    path = str(tmp_path / "evertask.db") if request.param == "sqlite" else ""
    app = create_app({"TESTING": True, "EVERTASK_SQLITE_PATH": path})
    yield app
    app.extensions["evertask"].stop(timeout=30)


def poll_status(client: FlaskClient, status_url: str, wanted: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(status_url)
        assert response.status_code == 200, response.data
        body = response.get_json()
        if body["status"] == wanted:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task did not become {wanted} within {timeout}s: {body}")
        time.sleep(0.01)


def test_the_host_starts_at_the_first_request_not_with_the_app(app: Flask) -> None:
    runner: HostThread = app.extensions["evertask"]
    assert not runner.is_running  # create_app alone starts nothing (reloader parent, master)
    app.test_client().get("/tasks/00000000-0000-7000-8000-000000000000")
    assert runner.is_running


def test_a_route_dispatches_and_the_task_runs(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/newsletters", data={"email": "ada@example.com"})
    assert response.status_code == 202, response.data
    created = response.get_json()
    assert created["status_url"] == f"/tasks/{created['task_id']}"
    body = poll_status(client, created["status_url"], "Completed")
    assert body["type"] == "samples.flask.send-newsletter"
    assert any("Newsletter sent to ada@example.com" in line for line in body["logs"]), body
    assert client.get("/outbox").get_json() == {"sent": ["ada@example.com"]}


def test_routes_reject_bad_requests(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/newsletters", data={"email": "nobody"}).status_code == 400
    assert client.get("/newsletters").status_code == 405
    assert client.get("/tasks/00000000-0000-7000-8000-000000000000").status_code == 404
    assert client.get("/tasks/not-a-uuid").status_code == 404
