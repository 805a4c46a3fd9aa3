"""The live-event WebSocket on a real uvicorn server: auth, events, bounded buffer, closing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from evertask import EventKind, TaskEvent
from evertask_monitor_api import monitoring_of

from . import tasks
from .conftest import Monitored
from .harness import BASE, build_host, parent_app, serve


def auth(token: str | None) -> dict[str, Any]:
    """Connect options carrying a token the way the dashboard does (subprotocols)."""
    return {"subprotocols": ["evertask.v1", f"bearer.{token}"]}


def ws_url(base: str, logs: bool = False) -> str:
    return base.replace("http://", "ws://") + f"{BASE}/ws" + ("?logs=true" if logs else "")


async def frames_until(
    socket: ClientConnection, predicate: Any, timeout: float = 2.0
) -> list[dict[str, Any]]:
    """Read frames until one satisfies ``predicate`` (fails after ``timeout``)."""
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            frame = json.loads(await socket.recv())
            seen.append(frame)
            if predicate(frame):
                return

    await asyncio.wait_for(read(), timeout)
    return seen


@pytest.fixture
async def server(memory: Monitored) -> AsyncIterator[str]:
    async with serve(parent_app(memory.host)) as url:
        yield url


async def test_unauthenticated_clients_are_refused(memory: Monitored, server: str) -> None:
    for kwargs in (
        {},
        {"subprotocols": ["evertask.v1"]},
        {"subprotocols": ["evertask.v1", "bearer.not-a-token"]},
        {"additional_headers": {"Authorization": "Bearer nope"}},
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server), **kwargs):
                pass
        assert refused.value.response.status_code == 403, kwargs


async def test_events_of_a_dispatched_task_arrive_with_logs(memory: Monitored, server: str) -> None:
    token = memory.api.token
    async with connect(ws_url(server, logs=True), **auth(token)) as ws:
        assert ws.subprotocol == "evertask.v1"
        hello = json.loads(await ws.recv())
        assert hello == {
            "type": "hello",
            "liveEvents": True,
            "bufferSize": 1000,
            "includeLogs": True,
        }
        tid = str(await memory.host.dispatcher.dispatch(tasks.Work(n=7)))
        seen = await frames_until(
            ws,
            lambda f: (
                f["type"] == "event"
                and f["event"]["taskId"] == tid
                and f["event"]["kind"] == "completed"
            ),
            1.0,
        )
        mine = [f["event"] for f in seen if f["type"] == "event" and f["event"]["taskId"] == tid]
        assert [e["kind"] for e in mine][-2:] == ["started", "completed"]
        completed = mine[-1]
        assert completed["severity"] == "Information" and completed["queueName"] == "default"
        assert [log["message"] for log in completed["executionLogs"]] == [
            "work 7 starting",
            "work 7 took a while",
            "work 7 done",
        ]
        await ws.send(json.dumps({"type": "ping"}))
        await frames_until(ws, lambda f: f["type"] == "pong")


async def test_header_token_and_logs_off_by_default(memory: Monitored, server: str) -> None:
    headers = {"Authorization": f"Bearer {memory.api.token}"}
    async with connect(ws_url(server), additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["includeLogs"] is False
        failed = str(await memory.host.dispatcher.dispatch(tasks.Boom(message="ws boom")))
        seen = await frames_until(
            ws,
            lambda f: (
                f["type"] == "event"
                and f["event"]["taskId"] == failed
                and f["event"]["kind"] == "failed"
            ),
        )
        event = seen[-1]["event"]
        assert event["severity"] == "Error" and "ws boom" in event["exception"]
        assert "executionLogs" not in event


def _event(n: int) -> TaskEvent:
    return TaskEvent(
        uuid.uuid4(),
        datetime.now(UTC),
        "Information",
        EventKind.DISPATCHED,
        "T",
        "H",
        "{}",
        f"e{n}",
    )


async def test_a_slow_client_loses_events_and_is_told(tmp_path: Path) -> None:
    built = build_host("memory", tmp_path, lambda o: o.set_websocket_buffer_size(5))
    await built.host.start()
    try:
        token, _ = monitoring_of(built.host).context.tokens.issue("ops")
        async with (
            serve(parent_app(built.host)) as url,
            connect(ws_url(url), **auth(token)) as ws,
        ):
            assert json.loads(await ws.recv())["bufferSize"] == 5
            bus = built.host.events
            for n in range(500):  # one burst: the sender cannot run in between
                bus.publish(_event(n))
            seen = await frames_until(ws, lambda f: f["type"] == "dropped")
            dropped = next(f for f in seen if f["type"] == "dropped")
            assert dropped["count"] >= 490
            assert bus.dropped_events >= 490  # counted, never waited for
    finally:
        await built.close()


async def test_socket_closes_when_the_token_expires_and_when_the_host_stops(tmp_path: Path) -> None:
    built = build_host("memory", tmp_path, lambda o: o.set_token_lifetime(timedelta(seconds=2)))
    await built.host.start()
    try:
        context = monitoring_of(built.host).context
        long_lived = context.tokens
        async with serve(parent_app(built.host)) as url:
            short, expires = context.tokens.issue("ops")  # lives 2 to 3 s from here
            async with connect(ws_url(url), **auth(short)) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(frames_until(ws, lambda f: False, 10), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
            assert datetime.now(UTC) >= expires - timedelta(milliseconds=50)  # not before
            context.tokens = type(long_lived)(
                "s" * 48, "evertask-monitor", "evertask-monitor", timedelta(hours=1)
            )
            token, _ = context.tokens.issue("ops")
            async with connect(ws_url(url), **auth(token)) as ws:
                await ws.recv()  # hello
                await monitoring_of(built.host).stop()
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(frames_until(ws, lambda f: False, 5), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    finally:
        await built.close()


async def test_websocket_outside_the_allow_list_is_refused(tmp_path: Path) -> None:
    built = build_host("memory", tmp_path, lambda o: o.allow_ips("10.0.0.0/8"))
    await built.host.start()
    try:
        token, _ = monitoring_of(built.host).context.tokens.issue("ops")
        async with serve(parent_app(built.host)) as url:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url(url), **auth(token)):
                    pass
            assert refused.value.response.status_code == 403
    finally:
        await built.close()
