"""``MySqlTaskStorage``: MySQL 8 / MariaDB 10.6+ through aiomysql."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import URL, make_url

from evertask.clock import utc_now
from evertask_abstractions import ConfigurationError
from evertask_storage_efcore_like import SqlTaskStorage

__all__ = ["MySqlTaskStorage", "aiomysql_url"]

_ACCEPTED = frozenset(
    {"mysql", "mariadb", "mysql+aiomysql", "mariadb+aiomysql", "mysql+pymysql", "mariadb+pymysql"}
)


def aiomysql_url(url: str | URL) -> URL:
    """``url`` with the aiomysql driver and ``charset=utf8mb4``.

    ``mysql://``, ``mariadb://`` and their ``+aiomysql``/``+pymysql`` forms are accepted;
    the URL must name a database.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception as error:
        raise ConfigurationError(
            f"Malformed MySQL URL ({error}); write it as mysql://user:password@host:3306/database."
        ) from error
    if parsed.drivername not in _ACCEPTED:
        raise ConfigurationError(
            f"MySqlTaskStorage needs a mysql:// or mariadb:// URL (it uses aiomysql), got "
            f"{parsed.drivername}://...; write it as mysql://user:password@host:3306/database."
        )
    if not parsed.database:
        raise ConfigurationError(
            "The MySQL URL names no database; write it as mysql://user:password@host:3306/database "
            "(the EverTask tables are created in that database)."
        )
    query = dict(parsed.query)
    query.setdefault("charset", "utf8mb4")
    return parsed.set(drivername="mysql+aiomysql", query=query)


class MySqlTaskStorage(SqlTaskStorage):
    """Task rows in a MySQL or MariaDB database (InnoDB, ``DATETIME(6)`` UTC, ``CHAR(36)`` ids).

    The tables live in the URL's database: MySQL has no schemas apart from databases, so
    ``schema`` must stay empty (as in EverTask's ``MySqlTaskStoreOptions``). Every write
    commits before its call returns; with InnoDB's default
    ``innodb_flush_log_at_trx_commit=1`` a committed write survives a power loss too.

    Args:
        url: ``mysql://user:password@host:3306/database`` (or ``mariadb://``).
        schema: must be ``None`` or ``""``.
        pool_size: reader connections.
        connect_timeout: seconds to wait for a connection.
        pool_recycle: seconds after which a pooled connection is replaced (keep it below
            the server's ``wait_timeout``).
        auto_apply_migrations: migrate the tables at :meth:`open` (otherwise verify that a DBA
            applied them).
        now: the clock stamping audits and executions (aware UTC).
        max_batch_size: most writes committed in one transaction.
        max_batch_delay: seconds a batch may wait for more concurrent writes to join it.
        writer_connections: batches in flight at once, each on its own connection.
        engine_options: extra ``create_async_engine`` keyword arguments.
    """

    def __init__(
        self,
        url: str | URL,
        schema: str | None = None,
        *,
        pool_size: int = 5,
        connect_timeout: float = 10.0,
        pool_recycle: float = 3600.0,
        auto_apply_migrations: bool = True,
        now: Callable[[], datetime] = utc_now,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        writer_connections: int = 1,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if schema:
            raise ConfigurationError(
                f"MySqlTaskStorage got schema={schema!r}, but MySQL has no schemas apart from "
                "databases: leave schema empty and put the database in the URL "
                f"(mysql://user@host:3306/{schema})."
            )
        if connect_timeout <= 0:
            raise ConfigurationError("connect_timeout must be positive.")
        options: dict[str, Any] = {
            "connect_args": {"connect_timeout": connect_timeout},
            "pool_recycle": pool_recycle,
            "pool_pre_ping": True,
        }
        options.update(engine_options or {})
        super().__init__(
            aiomysql_url(url),
            schema=None,
            auto_apply_migrations=auto_apply_migrations,
            now=now,
            pool_size=pool_size,
            max_batch_size=max_batch_size,
            max_batch_delay=max_batch_delay,
            writer_connections=writer_connections,
            engine_options=options,
        )

    def describe(self) -> str:
        """The database, password hidden."""
        return "MySQL at " + self.url.set(drivername="mysql", query={}).render_as_string(
            hide_password=True
        )

    def _connect_hint(self) -> str:
        url = self.url
        return (
            f"Check that MySQL/MariaDB is running and reachable at {url.host or 'localhost'}:"
            f"{url.port or 3306}, that user {url.username!r} may log in from this host, and "
            f"that database {url.database!r} exists (CREATE DATABASE `{url.database}`)."
        )
