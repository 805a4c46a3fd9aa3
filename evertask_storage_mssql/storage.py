"""``SqlServerTaskStorage``: SQL Server / Azure SQL through aioodbc and pyodbc."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import URL

from evertask.clock import utc_now
from evertask_abstractions import ConfigurationError
from evertask_storage_efcore_like import SqlTaskStorage

from .connection import parse_connection_string, sqlserver_url
from .statements import SqlServerStatements

__all__ = ["DEFAULT_SCHEMA", "SqlServerTaskStorage"]

DEFAULT_SCHEMA = "EverTask"
"""EverTask's default SQL Server schema (``SqlServerTaskStoreOptions.SchemaName``)."""


class SqlServerTaskStorage(SqlTaskStorage):
    """Task rows in SQL Server 2016+ or Azure SQL (``datetime2(7)`` UTC, ``uniqueidentifier``).

    Every write commits before its call returns (SQL Server's commits are durable once
    the log is hardened, unless the database uses delayed durability). The recovery
    compare-and-set runs with ``WITH (UPDLOCK, READPAST)`` and the recovery counter with
    ``OUTPUT``, see :mod:`evertask_storage_mssql.statements`.

    Args:
        connection_string: an ODBC string (``Driver={ODBC Driver 18 for SQL Server};
            Server=host,1433;Database=db;UID=u;PWD=p;TrustServerCertificate=yes``), an
            ADO.NET string (``Server=tcp:host,1433;Database=db;User Id=u;Password=p;
            Encrypt=True``) or a SQLAlchemy URL (``mssql+aioodbc://u:p@host:1433/db``).
            Without a driver, one is picked from the installed ODBC drivers.
        schema: the schema holding the tables (created if missing); empty means ``dbo``.
        pool_size: reader connections.
        connect_timeout: login timeout in seconds (an ADO.NET ``Connect Timeout``
            in the string wins).
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
        connection_string: str | URL,
        schema: str | None = DEFAULT_SCHEMA,
        *,
        pool_size: int = 5,
        connect_timeout: float = 15.0,
        auto_apply_migrations: bool = True,
        now: Callable[[], datetime] = utc_now,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        writer_connections: int = 1,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if connect_timeout <= 0:
            raise ConfigurationError("connect_timeout must be positive.")
        url, string_timeout = sqlserver_url(connection_string)
        timeout = string_timeout if string_timeout is not None else connect_timeout
        options: dict[str, Any] = {
            "connect_args": {"timeout": max(1, round(timeout))},
            "pool_pre_ping": True,
        }
        options.update(engine_options or {})
        super().__init__(
            url,
            schema=schema or "dbo",
            auto_apply_migrations=auto_apply_migrations,
            now=now,
            pool_size=pool_size,
            max_batch_size=max_batch_size,
            max_batch_delay=max_batch_delay,
            writer_connections=writer_connections,
            engine_options=options,
        )
        self.statements: SqlServerStatements = SqlServerStatements(self.tables)

    def describe(self) -> str:
        """The server and database, password hidden."""
        odbc = self.url.query.get("odbc_connect")
        if isinstance(odbc, str):
            pairs = {k.lower(): v for k, v in parse_connection_string(odbc)}
            where = pairs.get("server") or f"DSN {pairs.get('dsn', '?')}"
            return f"SQL Server {where}, database {pairs.get('database', '(default)')!r}"
        return "SQL Server at " + self.url.render_as_string(hide_password=True)

    def _connect_hint(self) -> str:
        return (
            "Check that SQL Server is running and reachable (host, port 1433, firewall), the "
            "login and password, that the database exists, and the encryption settings "
            "(ODBC Driver 18 encrypts by default: add TrustServerCertificate=yes for a "
            "self-signed certificate)."
        )
