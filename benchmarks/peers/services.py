"""The local services the peers use: a Redis database flushed and a PostgreSQL database
created afresh before each peer.

Redis: ``$EVERTASK_BENCH_REDIS`` (default ``redis://127.0.0.1:6379/13``, a database of its
own so other users of the server keep theirs). PostgreSQL: ``$EVERTASK_BENCH_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), where one ``evertask_peers_<name>``
database per peer is dropped and created again.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ServiceError", "Services"]


class ServiceError(RuntimeError):
    """A service is not reachable or refused a command."""


def _redis_command(url: str, *args: str) -> bytes:
    """SELECT the URL's database, send one command, QUIT; return the command's raw reply."""
    parts = urlsplit(url)
    db = (parts.path or "/0").strip("/") or "0"
    payload = b""
    for command in (("SELECT", db), args, ("QUIT",)):
        payload += f"*{len(command)}\r\n".encode()
        for arg in command:
            data = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
    reply = b""
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 5) as s:
            s.sendall(payload)
            while chunk := s.recv(65536):  # the server closes the connection after QUIT
                reply += chunk
    except OSError as exc:
        raise ServiceError(f"Redis is not reachable at {url}: {exc}") from exc
    if reply.startswith(b"-") or b"\r\n-" in reply:
        raise ServiceError(f"Redis refused {args[0]}: {reply[:200]!r}")
    return reply.split(b"\r\n", 1)[1].removesuffix(b"+OK\r\n")


class Services:
    """Redis and PostgreSQL as the peers see them."""

    def __init__(self, redis_url: str | None = None, pg_url: str | None = None) -> None:
        self.redis_url = redis_url or os.environ.get(
            "EVERTASK_BENCH_REDIS", "redis://127.0.0.1:6379/13"
        )
        self.pg_url = pg_url or os.environ.get(
            "EVERTASK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        )

    # -- Redis -----------------------------------------------------------------------------
    def redis_version(self) -> str:
        """``7.0.15``; raises :class:`ServiceError` when Redis is down."""
        info = _redis_command(self.redis_url, "INFO", "server").decode(errors="replace")
        match = re.search(r"redis_version:(\S+)", info)
        return match.group(1) if match else "?"

    def flush_redis(self) -> None:
        """Empty the benchmark's Redis database (only that one)."""
        _redis_command(self.redis_url, "FLUSHDB")

    # -- PostgreSQL ------------------------------------------------------------------------
    def pg_dsn(self, database: str) -> str:
        """The DSN of ``database`` on the configured server."""
        parts = urlsplit(self.pg_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))

    def pg_version(self) -> str:
        """``PostgreSQL 15.20``; raises :class:`ServiceError` when PostgreSQL is down."""
        out = self._pg("SELECT version()", fetch=True)
        return " ".join(out.split()[:2])

    def fresh_database(self, database: str) -> str:
        """Drop and create ``database``; return its DSN."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
            raise ValueError(f"unsafe database name {database!r}")
        self._pg(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        self._pg(f"CREATE DATABASE {database}")
        return self.pg_dsn(database)

    def drop_database(self, database: str) -> None:
        """Drop ``database`` if it exists."""
        if re.fullmatch(r"[a-z_][a-z0-9_]*", database):
            self._pg(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    def _pg(self, sql: str, fetch: bool = False) -> str:
        try:
            import asyncpg  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            return self._psql(sql)

        async def go() -> str:
            conn = await asyncpg.connect(self.pg_url, timeout=5)
            try:
                if fetch:
                    return str(await conn.fetchval(sql))
                await conn.execute(sql)
                return ""
            finally:
                await conn.close()

        try:
            return asyncio.run(go())
        except (OSError, asyncpg.PostgresError) as exc:
            raise ServiceError(f"PostgreSQL refused {sql!r} at {self.pg_url}: {exc}") from exc

    def _psql(self, sql: str) -> str:
        if shutil.which("psql") is None:
            raise ServiceError("neither asyncpg nor psql is available to reach PostgreSQL")
        done = subprocess.run(
            ["psql", self.pg_url, "-tAc", sql], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ServiceError(f"PostgreSQL refused {sql!r}: {done.stderr.strip()}")
        return done.stdout.strip()
