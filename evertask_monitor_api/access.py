"""Client address resolution (trusted proxies only) and the IP allow-list middleware."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .options import Network

__all__ = ["CLIENT_IP_KEY", "AccessControlMiddleware", "ClientResolver", "client_ip"]

CLIENT_IP_KEY = "evertask_client_ip"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

log = logging.getLogger("evertask.monitor")

MAX_LOGGED_ADDRESSES = 1024


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
    """Answers 403 to clients outside the allow-list, for HTTP and WebSocket alike.

    Each refused address is logged once (WARNING, naming ``allowed_ips``); at most
    ``MAX_LOGGED_ADDRESSES`` addresses are remembered, then logging stops.
    """

    def __init__(
        self, app: ASGIApp, resolver: ClientResolver, allowed: Sequence[Network] = ()
    ) -> None:
        self.app = app
        self.resolver = resolver
        self.allowed = list(allowed)
        self._logged: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        address = self.resolver.resolve(scope)
        scope.setdefault("state", {})[CLIENT_IP_KEY] = address
        if self.allowed and (address is None or not any(address in n for n in self.allowed)):
            shown = str(address) if address is not None else "unknown"
            self._log_refusal(shown)
            await _deny(scope, send, shown)
            return
        await self.app(scope, receive, send)

    def _log_refusal(self, address: str) -> None:
        if address in self._logged or len(self._logged) >= MAX_LOGGED_ADDRESSES:
            return
        self._logged.add(address)
        allowed = ", ".join(str(n) for n in self.allowed)
        log.warning(
            "Monitoring refused the client address %s: it is not in allowed_ips (%s). "
            "Add it with MonitoringOptions.allow_ips(...) (e.g. '127.0.0.1', '::1' for "
            "localhost), or set trust_proxies(...) if a reverse proxy forwards the requests. "
            "Further refusals of this address are not logged.",
            address,
            allowed,
        )


async def _deny(scope: Scope, send: Send, address: str) -> None:
    message = (
        f"Access denied: the client address {address} is not allowed by the monitoring "
        "option allowed_ips (MonitoringOptions.allow_ips)."
    )
    body = json.dumps({"message": message}).encode()
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
