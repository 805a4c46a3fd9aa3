"""``evertask db``: the EverTask tables' migrations (Alembic, shipped with the storages)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import click

from .errors import CliError, StorageError
from .output import echo_json
from .storage import ENV_SCHEMA, ENV_STORAGE, make_storage, storage_failure, storage_options

__all__ = ["db"]


def _migrate_module() -> ModuleType:
    try:
        from evertask_storage_efcore_like import migrate
    except ImportError as error:
        raise StorageError(
            "The SQL storages are not installed; install one with "
            f"pip install 'evertask[sqlite]' (or postgres, mysql, mssql) ({error})."
        ) from None
    return migrate


@contextlib.asynccontextmanager
async def _connection(url: str, schema: str | None, *, create: bool) -> AsyncIterator[Any]:
    """``(storage, connection)``: one connection to the database of ``url``."""
    storage = make_storage(url, schema, must_exist=not create)
    admin = getattr(storage, "admin_connection", None)
    if admin is None:
        raise StorageError(f"{type(storage).__name__} has no migrations.")
    try:
        async with admin() as connection:
            yield storage, connection
    except click.ClickException:
        raise
    except Exception as error:
        failure = storage_failure(error, storage)
        if failure is None:
            raise
        raise failure from None


def _bad_revision(error: Exception) -> CliError | None:
    """Alembic's errors for an unknown or unreachable revision: an operation failure."""
    if type(error).__module__.startswith("alembic"):
        return CliError(f"Migration failed: {error}")
    return None


@click.group()
def db() -> None:
    """Create, upgrade, downgrade and inspect the EverTask tables."""


def _move(
    url: str, schema: str | None, revision: str, step: Any, *, create: bool
) -> tuple[str, list[str], str | None]:
    """Run ``step(connection, schema, revision)`` (an upgrade or a downgrade); return where,
    the revisions it went through and the revision now."""
    migrate = _migrate_module()

    async def go() -> tuple[str, list[str], str | None]:
        async with _connection(url, schema, create=create) as (storage, connection):
            try:
                moved: list[str] = await step(connection, storage.schema, revision)
            except Exception as error:
                failure = _bad_revision(error)
                if failure is None:
                    raise
                raise failure from None
            now = await migrate.current_revision(connection, storage.schema)
            return storage.describe(), moved, now

    return asyncio.run(go())


@db.command()
@storage_options
@click.option("--revision", default="head", show_default=True, help="The revision to upgrade to.")
def upgrade(url: str, schema: str | None, revision: str) -> None:
    """Create or upgrade the EverTask tables (a SQLite file is created if missing)."""
    migrate = _migrate_module()
    where, applied, now = _move(url, schema, revision, migrate.apply_migrations, create=True)
    if applied:
        click.echo(f"Upgraded {where} to {now} (applied {', '.join(applied)}).")
    else:
        click.echo(f"{where} is already at {now}; nothing to do.")


@db.command(context_settings={"ignore_unknown_options": True})  # (REVISION may be "-1")
@storage_options
@click.argument("revision")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def downgrade(url: str, schema: str | None, revision: str, yes: bool) -> None:
    """Downgrade the EverTask tables to REVISION ("base" drops them, "-1" goes one back).

    A downgrade drops what the newer migrations added, with its data: it asks first,
    unless --yes is given.
    """
    migrate = _migrate_module()
    if not yes:
        click.confirm(
            f"Downgrade the EverTask tables to {revision!r}? Data in what is dropped is lost",
            abort=True,
        )
    where, reverted, now = _move(url, schema, revision, migrate.downgrade_migrations, create=False)
    if reverted:
        click.echo(f"Downgraded {where} to {now or 'base'} (reverted {', '.join(reverted)}).")
    else:
        click.echo(f"{where} is already at {now or 'base'}; nothing to do.")


@db.command()
@storage_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--check", is_flag=True, help="Exit with 1 unless the tables are at the head.")
def current(url: str, schema: str | None, as_json: bool, check: bool) -> None:
    """Print the applied revision and whether it is this version's head."""
    migrate = _migrate_module()

    async def go() -> tuple[str, str | None]:
        async with _connection(url, schema, create=False) as (storage, connection):
            return storage.describe(), await migrate.current_revision(connection, storage.schema)

    where, revision = asyncio.run(go())
    head = migrate.head_revision()
    at_head = revision == head
    if as_json:
        echo_json({"database": where, "revision": revision, "head": head, "is_head": at_head})
    elif revision is None:
        click.echo(f"{where}: no EverTask tables (head is {head}; run: evertask db upgrade).")
    elif at_head:
        click.echo(f"{where}: {revision} (head)")
    else:
        click.echo(f"{where}: {revision} (not the head, {head}; run: evertask db upgrade)")
    if check and not at_head:
        raise click.exceptions.Exit(1)


@db.command()
@click.option(
    "--storage",
    "-s",
    "url",
    envvar=ENV_STORAGE,
    default=None,
    metavar="URL",
    help=f"The database the SQL is for (its dialect and schema). Default: ${ENV_STORAGE}.",
)
@click.option(
    "--dialect",
    type=click.Choice(["postgresql", "sqlite", "mssql", "mysql"]),
    default=None,
    help="The dialect, instead of --storage.",
)
@click.option("--schema", envvar=ENV_SCHEMA, default=None, metavar="NAME", help="The schema.")
@click.option(
    "--from",
    "from_revision",
    default=None,
    metavar="REVISION",
    help="The revision the database is at (default: an empty database).",
)
@click.option("--to", "to_revision", default="head", show_default=True, metavar="REVISION")
def sql(
    url: str | None,
    dialect: str | None,
    schema: str | None,
    from_revision: str | None,
    to_revision: str,
) -> None:
    """Print the SQL of an upgrade (nothing is connected to): for a DBA to review and
    apply; then configure the storage with auto_apply_migrations=False."""
    migrate = _migrate_module()
    if (url is None) == (dialect is None):
        raise click.UsageError("Give exactly one of --storage URL or --dialect NAME.")
    if url is not None:
        storage: Any = make_storage(url, schema, must_exist=False)
        dialect = str(storage.url.get_backend_name())
        target_schema = storage.schema
    else:
        from evertask_storage_efcore_like.cli import DEFAULT_SCHEMAS

        assert dialect is not None
        target_schema = schema if schema is not None else DEFAULT_SCHEMAS.get(dialect)
        if target_schema == "" and dialect == "mssql":
            target_schema = "dbo"
    try:
        text = migrate.migration_sql(
            dialect, target_schema or None, from_revision=from_revision, to_revision=to_revision
        )
    except Exception as error:
        failure = _bad_revision(error)
        if failure is not None:
            raise failure from None
        if type(error).__name__ == "ConfigurationError":
            raise CliError(str(error)) from None
        raise
    click.echo(text, nl=False)
