"""Storage backends for the contract suite: memory, SQLite (temp file), PostgreSQL.

PostgreSQL comes from ``EVERTASK_TEST_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/test). Each test module gets a fresh schema, migrated
once and dropped at the end; each test starts from empty tables. When the server is
unreachable the PostgreSQL tests are skipped, unless ``CI=true``: then they fail.

``EVERTASK_TEST_EXTRA_BACKENDS=core-sqlite,core-mysql`` adds the portable executor of the
base package (``SqlTaskStorage`` on a plain SQLAlchemy URL) on SQLite and on MySQL/MariaDB
(``EVERTASK_TEST_MYSQL_URL``, default mysql://root@127.0.0.1:3306/test; a fresh
database per module).

``mysql`` (MySqlTaskStorage, part of the default run) uses the same server and a fresh
database per module; unreachable -> skipped (failed under CI=true). ``mssql``
(SqlServerTaskStorage) runs only when ``EVERTASK_TEST_MSSQL_URL`` holds a connection
string (ODBC, ADO.NET or mssql+aioodbc:// URL); each module gets a fresh schema.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from evertask.storage import MemoryTaskStorage, TaskStorage
from evertask_storage_efcore_like import VERSION_TABLE, SqlTaskStorage
from evertask_storage_mssql import SqlServerTaskStorage
from evertask_storage_mysql import MySqlTaskStorage, aiomysql_url
from evertask_storage_postgres import PostgresTaskStorage
from evertask_storage_sqlite import SqliteTaskStorage

PG_URL = os.environ.get("EVERTASK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = aiomysql_url(
    os.environ.get("EVERTASK_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
).render_as_string(hide_password=False)
MSSQL_URL = os.environ.get("EVERTASK_TEST_MSSQL_URL", "")
EXTRA_BACKENDS = tuple(
    b for b in os.environ.get("EVERTASK_TEST_EXTRA_BACKENDS", "").split(",") if b.strip()
)
BACKENDS = ("memory", "sqlite", "postgres", "mysql", "mssql", *EXTRA_BACKENDS)
SQL_BACKENDS = ("sqlite", "postgres", "mysql", "mssql", *EXTRA_BACKENDS)
_EMPTIED = ("postgres", "mysql", "mssql", "core-mysql")  # module-scoped databases: empty per test

_pg_status: dict[str, str | None] = {}


class Clock:
    """A settable clock shared by a test and its storage."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


async def _pg_probe(url: str) -> str | None:
    try:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=3)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    await connection.close()
    return None


def run_blocking(coroutine: Any) -> Any:
    """Run a coroutine to completion on its own loop in a helper thread.

    Module-scoped fixtures may first be requested from inside a running test loop.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def require_postgres() -> str:
    """The PostgreSQL URL, or skip (fail under CI=true) when the server is unreachable."""
    if "error" not in _pg_status:
        _pg_status["error"] = run_blocking(_pg_probe(PG_URL))
    error = _pg_status["error"]
    if error is not None:
        message = (
            f"PostgreSQL at {PG_URL} is unreachable ({error}); start it or set "
            "EVERTASK_TEST_POSTGRES_URL."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PG_URL


async def _pg_execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def pg_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated schema for this test module (dropped afterwards)."""
    url = require_postgres()
    schema = f"evertask_test_{uuid.uuid4().hex[:10]}"

    async def migrate() -> None:
        storage = PostgresTaskStorage(url, schema=schema)
        await storage.open()
        await storage.close()

    run_blocking(migrate())
    try:
        yield schema
    finally:
        run_blocking(_pg_execute(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def _empty(storage: SqlTaskStorage) -> None:
    """Delete every row (cheaper than TRUNCATE for a handful of rows)."""
    tables = storage.tables
    async with storage._reader_engine().connect() as connection:
        for table in (
            tables.logs,
            tables.runs_audit,
            tables.status_audit,
            tables.tasks,  # (its count trigger appends deltas: emptied next)
            tables.count_deltas,
            tables.counts,
            tables.leases,
            tables.paused_queues,
            tables.nodes,
            tables.batches,
        ):
            await connection.execute(table.delete())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (migrating costs more than copying)."""
    path = tmp_path_factory.mktemp("template") / "evertask.db"

    async def migrate() -> None:
        storage = SqliteTaskStorage(path)
        await storage.open()
        await storage.close()

    run_blocking(migrate())
    return path


async def _mysql_execute(statement: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(MYSQL_URL, connect_args={"connect_timeout": 3})
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def _mysql_probe() -> str | None:
    try:
        await _mysql_execute("SELECT 1")
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def require_mysql() -> None:
    """Skip (fail under CI=true) when the MySQL/MariaDB server is unreachable."""
    if "mysql" not in _pg_status:
        _pg_status["mysql"] = run_blocking(_mysql_probe())
    error = _pg_status["mysql"]
    if error is not None:
        message = (
            f"MySQL/MariaDB at {aiomysql_url(MYSQL_URL).render_as_string()} is unreachable "
            f"({error}); start it or set EVERTASK_TEST_MYSQL_URL."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def mysql_database() -> Iterator[str]:
    """A fresh MySQL database (the MySQL "schema") for this test module."""
    require_mysql()
    name = f"evertask_test_{uuid.uuid4().hex[:10]}"
    execute = _mysql_execute

    run_blocking(execute(f"CREATE DATABASE `{name}`"))
    try:
        yield name
    finally:
        run_blocking(execute(f"DROP DATABASE IF EXISTS `{name}`"))


@pytest.fixture(scope="module")
def mysql_storage_url(mysql_database: str) -> str:
    """A URL of this module's fresh MySQL database, migrated by MySqlTaskStorage."""
    url = aiomysql_url(MYSQL_URL).set(database=mysql_database).render_as_string(False)

    async def migrate() -> None:
        storage = MySqlTaskStorage(url)
        await storage.open()
        await storage.close()

    run_blocking(migrate())
    return url


def require_mssql() -> str:
    """The SQL Server connection string, or skip (also under CI) when it is not set."""
    if not MSSQL_URL:
        pytest.skip("set EVERTASK_TEST_MSSQL_URL to run the contract suite against SQL Server")
    return MSSQL_URL


@pytest.fixture(scope="module")
def mssql_schema() -> Iterator[str]:
    """A fresh, migrated SQL Server schema for this test module (dropped afterwards)."""
    url = require_mssql()
    schema = f"evertask_test_{uuid.uuid4().hex[:10]}"

    async def migrate() -> None:
        storage = SqlServerTaskStorage(url, schema=schema)
        await storage.open()
        await storage.close()

    async def drop() -> None:
        storage = SqlServerTaskStorage(url, schema=schema, auto_apply_migrations=False)
        reader, writer = storage._create_engines()
        try:
            async with writer.begin() as connection:
                await connection.run_sync(storage.tables.tasks.metadata.drop_all)
                await connection.exec_driver_sql(
                    f"DROP TABLE IF EXISTS [{schema}].[{VERSION_TABLE}]"
                )
                await connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS [{schema}]")
        finally:
            await reader.dispose()
            await writer.dispose()

    run_blocking(migrate())
    try:
        yield schema
    finally:
        run_blocking(drop())


def _core_sqlite(path: Path, clock: Clock) -> SqlTaskStorage:
    from sqlalchemy import event

    storage = SqlTaskStorage(f"sqlite+aiosqlite:///{path}", now=clock)
    create = storage._create_engines

    def engines() -> Any:
        made = create()
        for engine in made:
            event.listen(
                engine.sync_engine,
                "connect",
                lambda dbapi, _record: dbapi.cursor().execute("PRAGMA foreign_keys = ON"),
            )
        return made

    storage._create_engines = engines  # type: ignore[method-assign]
    return storage


StorageFactory = Callable[..., Any]


@pytest.fixture
def clock() -> Clock:
    """The storage's clock (2026-03-01 12:00 UTC, moves only when told)."""
    return Clock()


@pytest.fixture
def make_storage(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> StorageFactory:
    """``make_storage(backend)`` -> an unopened storage on that backend, with the test clock."""

    def make(backend: str, **options: Any) -> Any:
        if backend == "memory":
            storage: Any = MemoryTaskStorage(clock)
        elif backend == "sqlite":
            target = tmp_path / "evertask.db"
            if not target.exists():
                shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
            storage = SqliteTaskStorage(target, now=clock, **options)
        elif backend == "postgres":
            schema = request.getfixturevalue("pg_schema")
            storage = PostgresTaskStorage(PG_URL, schema=schema, now=clock, **options)
        elif backend == "mysql":
            url = request.getfixturevalue("mysql_storage_url")
            storage = MySqlTaskStorage(url, now=clock, **options)
        elif backend == "mssql":
            schema = request.getfixturevalue("mssql_schema")
            storage = SqlServerTaskStorage(MSSQL_URL, schema=schema, now=clock, **options)
        elif backend == "core-sqlite":
            storage = _core_sqlite(tmp_path / "core.db", clock)
        elif backend == "core-mysql":
            database = request.getfixturevalue("mysql_database")
            storage = SqlTaskStorage(MYSQL_URL, schema=database, now=clock, **options)
        else:
            raise ValueError(backend)
        return storage

    return make


@pytest.fixture(params=BACKENDS)
async def storage(
    request: pytest.FixtureRequest, make_storage: StorageFactory
) -> AsyncIterator[TaskStorage]:
    """An open, empty storage on each backend."""
    store = make_storage(request.param)
    await store.open()
    if request.param in _EMPTIED:
        await _empty(store)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=SQL_BACKENDS)
async def sql_storage(
    request: pytest.FixtureRequest, make_storage: StorageFactory
) -> AsyncIterator[SqlTaskStorage]:
    """An open, empty SQL storage (SQLite, PostgreSQL, MySQL and, if configured, SQL Server)."""
    store = make_storage(request.param)
    await store.open()
    if request.param in _EMPTIED:
        await _empty(store)
    try:
        yield store
    finally:
        await store.close()
