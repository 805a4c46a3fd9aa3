"""Apply the shipped Alembic migrations, or print them as SQL for a DBA.

The migrations live in this package (``migrations/``); their history table is
``__EverTaskMigrationsHistory`` in the EverTask schema, so they never collide with an
application's own Alembic history.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from evertask_abstractions import ConfigurationError

from .alembic_log import quiet_alembic
from .schema import validate_schema_name

with quiet_alembic():  # its import logs "setup plugin ..." lines at INFO
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext, MigrationInfo
    from alembic.script import ScriptDirectory

__all__ = [
    "DIALECTS",
    "VERSION_TABLE",
    "apply_migrations",
    "create_schema_sql",
    "current_revision",
    "downgrade_migrations",
    "head_revision",
    "lock_sql",
    "migration_sql",
    "unlock_sql",
]

VERSION_TABLE = "__EverTaskMigrationsHistory"
"""The Alembic version table (in the EverTask schema)."""

DIALECTS = ("postgresql", "sqlite", "mssql", "mysql")
"""Dialects the offline SQL can be generated for."""

log = logging.getLogger("evertask.storage.migrations")

_SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
_LOCK_KEY = 0x45766572_5461736B  # "EverTask": the advisory lock of concurrent migrations
_LOCK_NAME = "EverTask.Migrations"
_LOCK_TIMEOUT_S = 60
# Alembic keeps its running context in module globals: one migration at a time per process,
# whatever thread or event loop it runs on
_alembic_lock = threading.Lock()


@contextlib.asynccontextmanager
async def _alembic_turn() -> AsyncIterator[None]:
    """Hold the process's migration lock; wait for it without blocking the event loop (a
    task of this loop or another thread's may hold it) and without leaking it if cancelled."""
    # no asyncio primitive spans threads and loops; a start-up path, so a short poll does
    while not _alembic_lock.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        _alembic_lock.release()


def _config(schema: str | None, **attributes: Any) -> Config:
    config = Config()  # no ini file: Alembic leaves the application's logging alone
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    config.attributes["schema"] = schema
    config.attributes.update(attributes)
    return config


def create_schema_sql(dialect: str, schema: str) -> str:
    """The idempotent ``CREATE SCHEMA`` statement of a dialect."""
    if dialect == "postgresql":
        return f'CREATE SCHEMA IF NOT EXISTS "{schema}"'
    if dialect == "mssql":
        return (
            f"IF NOT EXISTS (SELECT 1 FROM sys.schemas WHERE name = N'{schema}') "
            f"EXEC('CREATE SCHEMA [{schema}]')"
        )
    if dialect in ("mysql", "mariadb"):
        return f"CREATE DATABASE IF NOT EXISTS `{schema}`"
    raise ConfigurationError(f"The {dialect} database has no schemas; leave the schema name empty.")


def lock_sql(dialect: str) -> str | None:
    """The statement that serialises concurrent migrations (other processes starting on the
    same database), run first: held until commit, or until :func:`unlock_sql` (MySQL)."""
    if dialect == "postgresql":
        return f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"
    if dialect == "sqlite":  # the write lock up front: others wait (busy timeout), then see head
        return "BEGIN IMMEDIATE"
    if dialect in ("mysql", "mariadb"):  # DDL commits implicitly there: a session lock
        return f"SELECT GET_LOCK('{_LOCK_NAME}', {_LOCK_TIMEOUT_S})"
    if dialect == "mssql":
        return (
            f"EXEC sp_getapplock @Resource = N'{_LOCK_NAME}', @LockMode = N'Exclusive', "
            f"@LockOwner = N'Transaction', @LockTimeout = {_LOCK_TIMEOUT_S * 1000}"
        )
    return None


def unlock_sql(dialect: str) -> str | None:
    """The statement that releases a lock :func:`lock_sql` took beyond its transaction."""
    if dialect in ("mysql", "mariadb"):
        return f"SELECT RELEASE_LOCK('{_LOCK_NAME}')"
    return None


def head_revision() -> str:
    """The newest migration shipped with this version."""
    with quiet_alembic():
        head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None
    return head


def _run(connection: Connection, schema: str | None, revision: str, upgrade: bool) -> list[str]:
    """Run Alembic's upgrade or downgrade quietly; return the revisions it applied/reverted."""
    steps: list[str] = []

    def record(*, step: MigrationInfo, **_: Any) -> None:
        steps.extend(step.destination_revision_ids if upgrade else step.source_revision_ids)

    config = _config(schema, connection=connection, on_version_apply=record)
    with quiet_alembic():
        (command.upgrade if upgrade else command.downgrade)(config, revision)
    return steps


def _current(connection: Connection, schema: str | None) -> str | None:
    with quiet_alembic():
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
        )
        return context.get_current_revision()


def _where(connection: AsyncConnection, schema: str | None) -> str:
    return f"{connection.dialect.name}" + (f" schema {schema!r}" if schema else "")


async def apply_migrations(
    connection: AsyncConnection, schema: str | None = None, revision: str = "head"
) -> list[str]:
    """Upgrade the EverTask tables in ``schema`` to ``revision`` and commit.

    Returns the revisions applied (empty when already there); when any, logs one INFO line
    on ``evertask.storage.migrations`` naming them (Alembic's own INFO lines are dropped).
    """
    schema = validate_schema_name(schema)
    async with _alembic_turn():
        applied = await connection.run_sync(_run, schema, revision, True)
        await connection.commit()
    if applied:
        log.info(
            "Applied EverTask migration(s) %s to %s (now at %s).",
            ", ".join(applied),
            _where(connection, schema),
            applied[-1],
        )
    return applied


async def downgrade_migrations(
    connection: AsyncConnection, schema: str | None = None, revision: str = "base"
) -> list[str]:
    """Downgrade the EverTask tables (``"base"`` drops them) and commit.

    Returns the revisions reverted; when any, logs one INFO line naming them.
    """
    schema = validate_schema_name(schema)
    async with _alembic_turn():
        reverted = await connection.run_sync(_run, schema, revision, False)
        await connection.commit()
    if reverted:
        log.info(
            "Reverted EverTask migration(s) %s in %s.",
            ", ".join(reverted),
            _where(connection, schema),
        )
    return reverted


async def current_revision(connection: AsyncConnection, schema: str | None = None) -> str | None:
    """The applied migration revision, or ``None`` on an empty database."""
    schema = validate_schema_name(schema)
    revision = await connection.run_sync(_current, schema)
    await connection.rollback()
    return revision


def migration_sql(
    dialect: str,
    schema: str | None = None,
    *,
    from_revision: str | None = None,
    to_revision: str = "head",
) -> str:
    """The SQL script that migrates a ``dialect`` database (Alembic offline mode).

    ``dialect`` is one of :data:`DIALECTS`; ``from_revision`` ``None`` starts from an
    empty database.
    """
    if dialect not in DIALECTS:
        raise ConfigurationError(
            f"Unknown dialect {dialect!r}; choose one of: {', '.join(DIALECTS)}."
        )
    schema = validate_schema_name(schema)
    if schema is not None and dialect == "sqlite":
        raise ConfigurationError("SQLite has no schemas; omit --schema for sqlite.")
    buffer = io.StringIO()
    config = _config(schema, dialect=dialect, output=buffer)
    target = to_revision if from_revision is None else f"{from_revision}:{to_revision}"
    with quiet_alembic():
        command.upgrade(config, target, sql=True)
    return buffer.getvalue()
