"""LISTEN/NOTIFY: PostgreSQL wakes the other nodes of a cluster at once.

One dedicated asyncpg connection per host listens on the schema's channel; a notice is sent
with ``pg_notify`` on that connection. Nodes poll anyway (the notice only makes them act
sooner), so a notice lost with its connection costs at most one poll interval; the
connection is opened again at the next heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import URL

__all__ = ["PostgresNotifier", "channel_name"]

log = logging.getLogger("evertask.storage.postgres")


def channel_name(schema: str | None) -> str:
    """The notification channel of the tables in ``schema``."""
    return f"evertask_{schema or 'public'}"[:63]


class PostgresNotifier:
    """Listens and notifies on one channel through a connection of its own."""

    def __init__(self, url: URL, channel: str, timeout: float) -> None:
        self._url = url
        self.channel = channel
        self._timeout = timeout
        self._connection: Any = None
        self._lock = asyncio.Lock()

    @property
    def listening(self) -> bool:
        """Whether the listening connection is open."""
        return self._connection is not None and not self._connection.is_closed()

    async def listen(self, on_notice: Callable[[str], None]) -> None:
        """Open the listening connection unless it is open."""
        async with self._lock:
            if self.listening:
                return
            url = self._url
            connection = await asyncpg.connect(
                user=url.username,
                password=url.password,
                host=url.host,
                port=url.port,
                database=url.database,
                timeout=self._timeout,
                server_settings={"application_name": "evertask-listen"},
            )

            def received(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                on_notice(payload)

            await connection.add_listener(self.channel, received)
            self._connection = connection

    async def notify(self, notice: str) -> None:
        """Send ``notice`` to every listener (also this host's)."""
        if not self.listening:
            raise ConnectionError("not listening")
        await self._connection.execute("SELECT pg_notify($1, $2)", self.channel, notice)

    async def unlisten(self) -> None:
        """Close the listening connection."""
        async with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None and not connection.is_closed():
                try:
                    await connection.close(timeout=2)
                except Exception as exc:
                    log.debug("Closing the listening connection failed (%r).", exc)
                    connection.terminate()
