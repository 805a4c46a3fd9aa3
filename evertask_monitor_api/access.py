"""Client address resolution (trusted proxies only) and the IP allow-list middleware."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .options import Network

__all__ = ["CLIENT_IP_KEY", "AccessControlMiddleware", "ClientResolver", "client_ip"]

CLIENT_IP_KEY = "evertask_client_ip"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.9:5000"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientResolver:
    """Finds the real client address of a request.

    ``X-Forwarded-For`` is believed only when the direct peer is a trusted proxy; the
    header is then read right to left, skipping further trusted proxies, and the first
    untrusted address is the client (a client cannot spoof its way past the proxy by
    sending its own header, because the proxy appends the address it saw).
    """

    def __init__(self, trusted_proxies: Sequence[Network] = ()) -> None:
        self._proxies = list(trusted_proxies)

    def _trusted(self, address: Address) -> bool:
        return any(address in network for network in self._proxies)

    def resolve(self, scope: Scope) -> Address | None:
        """The client's address, or ``None`` when it cannot be determined."""
        client = scope.get("client")
        peer = _parse(str(client[0])) if client else None
        if peer is None or not self._proxies or not self._trusted(peer):
            return peer
        forwarded: list[str] = []
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                forwarded.extend(value.decode("latin-1").split(","))
        for entry in reversed(forwarded):
            address = _parse(entry)
            if address is None:
                return None  # a garbled chain: trust nothing in it
            if not self._trusted(address):
                return address
        return peer


def client_ip(scope: Scope) -> str:
    """The resolved client address stored by :class:`AccessControlMiddleware`."""
    state: dict[str, Any] = scope.get("state") or {}
    value = state.get(CLIENT_IP_KEY)
    return str(value) if value is not None else "unknown"


class AccessControlMiddleware:
    """Answers 403 to clients outside the allow-list, for HTTP and WebSocket alike."""

    def __init__(
        self, app: ASGIApp, resolver: ClientResolver, allowed: Sequence[Network] = ()
    ) -> None:
        self.app = app
        self.resolver = resolver
        self.allowed = list(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        address = self.resolver.resolve(scope)
        scope.setdefault("state", {})[CLIENT_IP_KEY] = address
        if self.allowed and (address is None or not any(address in n for n in self.allowed)):
            await _deny(scope, send)
            return
        await self.app(scope, receive, send)


async def _deny(scope: Scope, send: Send) -> None:
    body = json.dumps({"message": "Access denied"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if scope["type"] == "websocket":
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
