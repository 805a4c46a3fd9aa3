"""The live-event WebSocket: authenticated, one bounded event buffer per client.

Protocol (JSON text frames):

- The browser authenticates with the subprotocols ``["evertask.v1", "bearer.<token>"]``
  (other clients may send ``Authorization: Bearer <token>``); an unauthenticated or
  invalid handshake is refused (HTTP 403) before the socket opens.
- Server -> client: ``{"type": "hello", "liveEvents": bool, "bufferSize": n,
  "includeLogs": bool}`` first; then ``{"type": "event", "event": {...TaskEvent}}``
  per task event, ``{"type": "dropped", "count": n}`` when the client was too slow and
  ``n`` events were lost, ``{"type": "pong"}`` after a ping. The server closes with
  code 4001 when the token expires and 1001 when the host stops.
- Client -> server: ``{"type": "ping"}``. ``?logs=true`` at connect asks for the
  captured execution logs inside completed/failed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from evertask.events import Subscription

from .context import MonitorContext
from .routes.deps import CONTEXT_KEY

__all__ = ["PROTOCOL", "TOKEN_PREFIX", "router"]

log = logging.getLogger("evertask.monitor")

PROTOCOL = "evertask.v1"
TOKEN_PREFIX = "bearer."
CLOSE_TOKEN_EXPIRED = 4001

router = APIRouter()


def _token(websocket: WebSocket) -> str | None:
    for offered in websocket.scope.get("subprotocols") or []:
        if offered.startswith(TOKEN_PREFIX):
            return str(offered[len(TOKEN_PREFIX) :])
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


@router.websocket("/ws")
async def live_events(websocket: WebSocket) -> None:
    """Stream task events to one authenticated client."""
    context: MonitorContext = getattr(websocket.app.state, CONTEXT_KEY)
    expires_at: datetime | None = None
    if context.options.enable_authentication:
        token = _token(websocket)
        claims = context.tokens.validate(token) if token else None
        if claims is None:
            await websocket.close(code=1008, reason="authentication required")
            return
        expires_at = claims.expires_at
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
    include_logs = context.options.allow_execution_logs_in_events and (
        websocket.query_params.get("logs", "").lower() in ("1", "true", "yes")
    )
    host = context.host
    if host is None or not context.ready:
        await websocket.send_json(
            {"type": "hello", "liveEvents": False, "bufferSize": 0, "includeLogs": False}
        )
        await websocket.close(code=1000, reason="no live events in this mode")
        return
    subscription = host.events.subscribe(buffer_size=context.options.websocket_buffer_size)
    try:
        await websocket.send_json(
            {
                "type": "hello",
                "liveEvents": True,
                "bufferSize": context.options.websocket_buffer_size,
                "includeLogs": include_logs,
            }
        )
        await _serve(websocket, context, subscription, include_logs, expires_at)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away
    finally:
        subscription.close()
        if websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=1001)


async def _serve(
    websocket: WebSocket,
    context: MonitorContext,
    subscription: Subscription,
    include_logs: bool,
    expires_at: datetime | None,
) -> None:
    lock = asyncio.Lock()
    sender = asyncio.ensure_future(_send_events(websocket, lock, subscription, include_logs))
    receiver = asyncio.ensure_future(_receive(websocket, lock))
    closing = asyncio.ensure_future(context.closing.wait())
    waiters = {sender, receiver, closing}
    timeout = None
    if expires_at is not None:
        timeout = max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    if not done:
        await websocket.close(code=CLOSE_TOKEN_EXPIRED, reason="token expired")
    elif closing in done:
        await websocket.close(code=1001, reason="the host is stopping")
    else:
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


async def _send_events(
    websocket: WebSocket, lock: asyncio.Lock, subscription: Subscription, include_logs: bool
) -> None:
    reported = 0
    while True:
        event = await subscription.get()
        frames = []
        if subscription.dropped > reported:
            frames.append({"type": "dropped", "count": subscription.dropped - reported})
            reported = subscription.dropped
        frames.append({"type": "event", "event": event.to_dict(include_logs=include_logs)})
        async with lock:
            for frame in frames:
                await websocket.send_text(json.dumps(frame, default=str))


async def _receive(websocket: WebSocket, lock: asyncio.Lock) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(int(message.get("code") or 1000))
        try:
            data = json.loads(message.get("text") or "null")
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("type") == "ping":
            async with lock:
                await websocket.send_json({"type": "pong"})
