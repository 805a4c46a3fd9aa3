"""Invalid and oversized request bodies: 422 without echo, 413 before reading, throttled."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from evertask_abstractions import ConfigurationError
from evertask_monitor_api import LoginThrottle, MonitoringOptions, monitoring_of

from .conftest import Monitored
from .harness import API, PASSWORD, USERNAME, Api, build_host, parent_app, serve

LOGIN = f"{API}/auth/login"
JSON = {"Content-Type": "application/json"}
SURROGATE = b'{"username":"\\ud800","password":"x"}'


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_invalid_bodies_get_422_without_their_input(
    memory: Monitored, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = memory.api.client
    bodies = {
        "lone surrogate": SURROGATE,
        "surrogate in password": b'{"username":"ops","password":"\\udfff secret"}',
        "wrong types": b'{"username": 12, "password": ["leak-me"]}',
        "too long": json.dumps({"username": "u" * 300 + "leak-me", "password": "x"}).encode(),
        "not json": b'{"username": "leak-me"',
    }
    for name, body in bodies.items():
        for path in ("/auth/login", "/auth/validate"):
            if path.endswith("validate"):  # the same faults in its one field
                if b'"username":"ops"' in body:
                    continue
                body = body.replace(b'"username"', b'"token"')
                body = body.replace(b'"u" * 300', b"").replace(b"u" * 300, b"u" * 5000)
            response = await client.post(f"{API}{path}", content=body, headers=JSON)
            assert response.status_code == 422, (name, path, response.text)
            answer = response.json()
            assert "leak-me" not in response.text and "secret" not in response.text, name
            assert "\\ud" not in response.text.lower() or name == "not json", name
            assert answer["message"].startswith("Invalid request"), name
            for item in answer["detail"]:
                assert set(item) == {"loc", "msg", "type"}, (name, item)
    assert _errors(caplog) == []
    bad_query = await memory.api.get("/tasks", pageSize="leak-me")
    assert bad_query.status_code == 422 and "leak-me" not in bad_query.text
    assert bad_query.json()["detail"][0]["loc"] == ["query", "pageSize"]


async def test_invalid_login_bodies_count_toward_the_throttle(memory: Monitored) -> None:
    now = [1000.0]
    context = monitoring_of(memory.host).context
    context.throttle = LoginThrottle(5, 60, clock=lambda: now[0])
    client = memory.api.client
    for _ in range(5):
        response = await client.post(LOGIN, content=SURROGATE, headers=JSON)
        assert response.status_code == 422
    blocked = await client.post(LOGIN, json={"username": USERNAME, "password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    still = await client.post(LOGIN, content=SURROGATE, headers=JSON)
    assert still.status_code == 429
    other = Api(parent_app(memory.host), client_ip="10.9.9.9")  # the per-address key only
    try:
        await other.login()
    finally:
        await other.aclose()
    now[0] += 61
    assert (
        await client.post(LOGIN, json={"username": USERNAME, "password": PASSWORD})
    ).status_code == 200


async def _asgi_post(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    """POST to ``app`` with a receive() that must never be called; the messages sent."""
    sent: list[Any] = []

    async def receive() -> Any:
        raise AssertionError("the body was read")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent


async def test_a_declared_oversized_body_is_refused_unread(memory: Monitored) -> None:
    app = monitoring_of(memory.host).app
    for path, size in (("/api/auth/login", 16 * 1024 + 1), ("/api/tasks/x/cancel", 2**20 + 1)):
        length = [(b"content-type", b"application/json"), (b"content-length", b"%d" % size)]
        sent = await _asgi_post(app, path, length)
        assert sent[0]["status"] == 413, path
        assert b"limit" in sent[1]["body"]
    small = await memory.api.client.post(LOGIN, content=b"x" * 16 * 1024, headers=JSON)
    assert small.status_code == 422  # within the limit: read and refused as invalid


async def test_a_streamed_oversized_body_stops_being_read(tmp_path: Path) -> None:
    built = build_host("memory", tmp_path, lambda o: o.set_body_limits(auth=1000, other=5000))
    await built.host.start()
    api = Api(parent_app(built.host))
    try:
        chunks_read = [0]

        async def stream(count: int, size: int) -> AsyncIterator[bytes]:
            for _ in range(count):
                chunks_read[0] += 1
                yield b" " * size

        response = await api.client.post(LOGIN, content=stream(1000, 100), headers=JSON)
        assert response.status_code == 413
        assert "1000 bytes" in response.json()["message"]
        assert chunks_read[0] < 20  # stopped soon after the limit, not after 100 kB
        await api.login()
        chunks_read[0] = 0
        other = await api.client.post(
            f"{API}/auth/validate", content=stream(30, 100), headers={**api.headers, **JSON}
        )
        assert other.status_code == 413  # /auth/* has the auth limit
        tasks = await api.client.post(
            f"{API}/tasks/00000000-0000-0000-0000-000000000000/cancel",
            content=stream(100, 100),
            headers={**api.headers, **JSON},
        )
        assert tasks.status_code in (413, 404)
    finally:
        await api.aclose()
        await built.close()


async def test_over_a_real_server_nothing_is_logged_as_an_error(
    memory: Monitored, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = parent_app(memory.host)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b" " * 1024

    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
        invalid = await client.post(LOGIN, content=SURROGATE, headers=JSON)
        assert invalid.status_code == 422
        huge = await client.post(LOGIN, content=b" " * 10 * 2**20, headers=JSON)
        assert huge.status_code == 413
        chunked = await client.post(LOGIN, content=chunks(), headers=JSON)
        assert chunked.status_code == 413
    assert _errors(caplog) == []


def test_body_limits_are_options() -> None:
    options = MonitoringOptions().validate()
    assert (options.max_auth_body_bytes, options.max_body_bytes) == (16 * 1024, 2**20)
    options.set_body_limits(auth=2048, other=4096)
    assert (options.max_auth_body_bytes, options.max_body_bytes) == (2048, 4096)
    with pytest.raises(ConfigurationError, match="max_body_bytes must be a positive"):
        MonitoringOptions(max_body_bytes=0).validate()
    assert MonitoringOptions().update(max_auth_body_bytes=512).validate().max_auth_body_bytes == 512
