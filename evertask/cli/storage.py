"""Opening a storage from ``--storage URL``, with every failure turned into exit code 3."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import click

from evertask.storage.protocol import TaskStorage
from evertask_abstractions import ConfigurationError, PersistenceError

from .errors import StorageError

__all__ = ["ENV_SCHEMA", "ENV_STORAGE", "make_storage", "open_storage", "storage_options"]

ENV_STORAGE = "EVERTASK_STORAGE"
"""The environment variable read when ``--storage`` is not given."""
ENV_SCHEMA = "EVERTASK_SCHEMA"
"""The environment variable read when ``--schema`` is not given."""

_STORAGE_HELP = (
    "The database: a SQLite file path or sqlite:///file.db, postgresql://user@host/db, "
    "mysql://user@host/db (or mariadb://), mssql+aioodbc://user:pw@host/db or an ODBC "
    f"connection string. Default: ${ENV_STORAGE}."
)
_SCHEMA_HELP = (
    "The schema holding the tables (PostgreSQL: default evertask; SQL Server: default "
    f"EverTask; SQLite and MySQL have none). Default: ${ENV_SCHEMA}."
)


def storage_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--storage/-s URL`` (required) and ``--schema NAME``."""
    function = click.option(
        "--schema", envvar=ENV_SCHEMA, default=None, metavar="NAME", help=_SCHEMA_HELP
    )(function)
    return click.option(
        "--storage",
        "-s",
        "url",
        envvar=ENV_STORAGE,
        required=True,
        metavar="URL",
        help=_STORAGE_HELP,
    )(function)


def make_storage(
    url: str, schema: str | None, *, must_exist: bool = True, migrate: bool = False
) -> TaskStorage:
    """The storage of ``url`` (not opened); a bad URL or missing package exits with 3."""
    from evertask.storage.urls import storage_from_url

    try:
        return storage_from_url(
            url, schema or None, auto_apply_migrations=migrate, must_exist=must_exist
        )
    except ConfigurationError as error:
        raise StorageError(str(error)) from None


def storage_failure(
    error: BaseException, storage: TaskStorage | None = None
) -> StorageError | None:
    """The exit-3 error for a failure to reach or use the database, else ``None``."""
    if isinstance(error, ConfigurationError | PersistenceError | ConnectionError | OSError):
        return StorageError(str(error))
    if isinstance(error, TimeoutError):
        where = storage_description(storage)
        return StorageError(f"Timed out talking to {where}.")
    name = type(error).__name__
    if name == "StorageSchemaError":
        return StorageError(f"{error} Or run: evertask db upgrade --storage URL")
    module = type(error).__module__
    if module.startswith(("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "pymysql", "pyodbc")):
        where = storage_description(storage)
        first = str(error).strip().splitlines()[0] if str(error).strip() else name
        return StorageError(f"The database ({where}) failed: {first}")
    return None


def storage_description(storage: TaskStorage | None) -> str:
    """The storage's own description (password hidden), or ``the database``."""
    describe = getattr(storage, "describe", None)
    return str(describe()) if callable(describe) else "the database"


@contextlib.asynccontextmanager
async def open_storage(url: str, schema: str | None) -> AsyncIterator[TaskStorage]:
    """An open storage on an existing, migrated database (closed afterwards)."""
    storage = make_storage(url, schema)
    try:
        await storage.open()
    except Exception as error:
        failure = storage_failure(error, storage)
        if failure is None:
            raise
        raise failure from None
    try:
        yield storage
    except Exception as error:
        failure = storage_failure(error, storage)
        if failure is None:
            raise
        raise failure from None
    finally:
        with contextlib.suppress(Exception):
            await storage.close()
