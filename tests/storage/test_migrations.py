"""Migrations: upgrade from empty, downgrade to base, upgrade again; the reflected schema
matches the SQLAlchemy tables; the offline SQL for DBAs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from evertask_storage_efcore_like import (
    VERSION_TABLE,
    apply_migrations,
    build_tables,
    current_revision,
    downgrade_migrations,
    head_revision,
    migration_sql,
)
from evertask_storage_efcore_like.cli import main

from .conftest import MYSQL_URL, PG_URL, require_mysql, require_postgres

EVERTASK_TABLES = {
    "QueuedTasks",
    "StatusAudit",
    "RunsAudit",
    "TaskExecutionLogs",
    "PausedQueues",
    "Nodes",
    "TaskCountDeltas",
    "TaskCounts",
    "MaintenanceLeases",
    "RateLimitBuckets",
    "ConcurrencySlots",
    "TaskBatches",
}


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, str | None, str]]:
    """An empty database: (engine, schema, dialect)."""
    if request.param == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        yield engine, None, "sqlite"
        await engine.dispose()
        return
    if request.param == "mysql":
        require_mysql()
        name = f"evertask_mig_{uuid.uuid4().hex[:8]}"
        server = create_async_engine(MYSQL_URL)
        async with server.begin() as conn:
            await conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
        engine = create_async_engine(make_url(MYSQL_URL).set(database=name))
        try:
            yield engine, None, "mysql"
        finally:
            await engine.dispose()
            async with server.begin() as conn:
                await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            await server.dispose()
        return
    require_postgres()
    schema = f"evertask_mig_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(PG_URL.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        yield engine, schema, "postgresql"
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await engine.dispose()


def _differences(schema: str | None, dialect: str) -> Callable[[Connection], list[Any]]:
    def include_name(name: str | None, type_: str, parent: dict[str, Any]) -> bool:
        if type_ == "schema":
            return name == schema
        return name != VERSION_TABLE

    def run(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": include_name,
                "include_schemas": schema is not None,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, build_tables(schema, dialect).metadata))

    return run


def _tables_and_indexes(schema: str | None) -> Callable[[Connection], dict[str, Any]]:
    def run(connection: Connection) -> dict[str, Any]:
        inspector = inspect(connection)
        out: dict[str, Any] = {}
        for table in inspector.get_table_names(schema=schema):
            if table == VERSION_TABLE:
                continue
            out[table] = (
                {c["name"]: c["nullable"] for c in inspector.get_columns(table, schema=schema)},
                {
                    i["name"]: (tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table, schema=schema)
                },
            )
        return out

    return run


def _model_tables_and_indexes(schema: str | None, dialect: str) -> dict[str, Any]:
    tables = build_tables(schema, dialect)
    return {
        t.name: (
            {c.name: c.nullable for c in t.columns},
            {i.name: (tuple(c.name for c in i.columns), bool(i.unique)) for i in t.indexes},
        )
        for t in tables.metadata.tables.values()
    }


async def test_upgrade_downgrade_upgrade(database: tuple[AsyncEngine, str | None, str]) -> None:
    engine, schema, dialect = database
    async with engine.connect() as conn:
        assert await current_revision(conn, schema) is None
        await apply_migrations(conn, schema)
        assert await current_revision(conn, schema) == head_revision()
        assert await conn.run_sync(_differences(schema, dialect)) == []
        reflected = await conn.run_sync(_tables_and_indexes(schema))
        assert reflected == _model_tables_and_indexes(schema, dialect)
        assert set(reflected) == EVERTASK_TABLES

        await apply_migrations(conn, schema)  # idempotent at head
        await downgrade_migrations(conn, schema, "0004")
        at_0004 = await conn.run_sync(_tables_and_indexes(schema))
        assert set(at_0004) == EVERTASK_TABLES - {
            "RateLimitBuckets",
            "ConcurrencySlots",
            "TaskBatches",
        }
        assert await apply_migrations(conn, schema) == ["0005", "0006", "0007", "0008"]
        await downgrade_migrations(conn, schema, "0006")
        at_0006 = await conn.run_sync(_tables_and_indexes(schema))
        assert "TaskBatches" not in at_0006
        columns, indexes = at_0006["QueuedTasks"]
        assert "BatchCounted" not in columns and "IX_QueuedTasks_BatchId" not in indexes
        assert await apply_migrations(conn, schema) == ["0007", "0008"]
        await downgrade_migrations(conn, schema, "0005")
        columns, indexes = (await conn.run_sync(_tables_and_indexes(schema)))["QueuedTasks"]
        assert "ParentTaskId" not in columns and "IX_QueuedTasks_ParentTaskId" not in indexes
        assert await apply_migrations(conn, schema) == ["0006", "0007", "0008"]
        await downgrade_migrations(conn, schema, "0002")
        at_0002 = await conn.run_sync(_tables_and_indexes(schema))
        assert "Nodes" not in at_0002
        columns, indexes = at_0002["QueuedTasks"]
        assert "OwnerNode" not in columns and "IX_QueuedTasks_OwnerNode_Status" not in indexes
        assert await apply_migrations(conn, schema) == [
            "0003",
            "0004",
            "0005",
            "0006",
            "0007",
            "0008",
        ]
        assert await conn.run_sync(_differences(schema, dialect)) == []
        await downgrade_migrations(conn, schema, "0001")
        assert "PausedQueues" not in await conn.run_sync(_tables_and_indexes(schema))
        await downgrade_migrations(conn, schema)
        assert await current_revision(conn, schema) is None
        assert await conn.run_sync(_tables_and_indexes(schema)) == {}

        await apply_migrations(conn, schema)
        assert await conn.run_sync(_differences(schema, dialect)) == []
        assert await current_revision(conn, schema) == head_revision()


@pytest.mark.parametrize(
    ("dialect", "schema", "markers"),
    [
        (
            "postgresql",
            "evertask",
            [
                'CREATE SCHEMA IF NOT EXISTS "evertask"',
                "UUID",
                "TIMESTAMP WITH TIME ZONE",
                'WHERE "TaskKey" IS NOT NULL',
                "IX_QueuedTasks_Recovery",
                'EXECUTE FUNCTION "evertask"."evertask_count_deltas"()',
            ],
        ),
        (
            "sqlite",
            None,
            [
                "WITHOUT ROWID",
                "CHAR(36)",
                "IX_QueuedTasks_Recovery",
                "TR_QueuedTasks_Counts_Update",
            ],
        ),
        (
            "mssql",
            "EverTask",
            [
                "CREATE SCHEMA [EverTask]",
                "UNIQUEIDENTIFIER",
                "DATETIME2",
                "NVARCHAR(max)",
                "WHERE [TaskKey] IS NOT NULL",
                "CREATE TRIGGER [EverTask].[TR_QueuedTasks_Counts] ON [EverTask].[QueuedTasks]",
            ],
        ),
        ("mysql", None, ["CHAR(36)", "DATETIME(6)", "LONGTEXT", "TR_QueuedTasks_Counts_Delete"]),
    ],
)
def test_offline_sql_for_every_dialect(
    dialect: str, schema: str | None, markers: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sql", "--dialect", dialect] + (["--schema", schema] if schema else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    for table in EVERTASK_TABLES:
        assert f"{table}" in out
    for marker in markers:
        assert marker in out, marker
    assert VERSION_TABLE in out
    assert out == migration_sql(dialect, schema)


def test_offline_sql_from_a_revision_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    incremental = migration_sql("postgresql", "evertask", from_revision="0001")
    assert "PausedQueues" in incremental and 'TABLE evertask."QueuedTasks" (' not in incremental
    cluster = migration_sql("postgresql", "evertask", from_revision="0002")
    assert "PausedQueues" not in cluster and 'CREATE TABLE evertask."Nodes"' in cluster
    assert 'ALTER TABLE evertask."QueuedTasks" ADD COLUMN "OwnerNode" UUID' in cluster
    assert '"IX_QueuedTasks_Claim" ON evertask."QueuedTasks"' in cluster
    mysql = migration_sql("mysql", None, from_revision="0002")
    assert "IX_QueuedTasks_OwnerNode_Status" in mysql and "IX_QueuedTasks_Claim" not in mysql
    assert main(["sql", "--dialect", "sqlite", "--schema", "x"]) == 2
    assert "SQLite has no schemas" in capsys.readouterr().err
    assert main(["head"]) == 0
    assert capsys.readouterr().out.strip() == head_revision()
    with pytest.raises(SystemExit):
        main(["sql", "--dialect", "oracle"])


async def test_0004_counts_the_finished_rows_already_there(
    database: tuple[AsyncEngine, str | None, str],
) -> None:
    engine, schema, dialect = database
    tables = build_tables(schema, dialect)
    t, deltas = tables.tasks, tables.count_deltas
    created = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    statuses = ["Completed", "Completed", "Failed", "Cancelled", "Queued", "InProgress"]
    async with engine.connect() as conn:
        await apply_migrations(conn, schema, "0003")
        for i, status in enumerate(statuses):
            await conn.execute(
                t.insert().values(
                    Id=uuid.uuid4(),
                    CreatedAtUtc=created,
                    ExecutionTimeMs=0.0,
                    Type="T",
                    Request="{}",
                    Handler="H",
                    IsRecurring=False,
                    QueueName="default" if i % 2 else "other",
                    Status=status,
                )
            )
        await conn.commit()
        assert await apply_migrations(conn, schema, "0004") == ["0004"]
        rows = (
            await conn.execute(
                select(deltas.c.Status, func.sum(deltas.c.Delta)).group_by(deltas.c.Status)
            )
        ).all()
        assert {s: int(n) for s, n in rows} == {"Completed": 2, "Failed": 1, "Cancelled": 1}
        # the triggers count what happens next
        await conn.execute(update(t).where(t.c.Status == "InProgress").values(Status="Failed"))
        await conn.execute(delete(t).where(t.c.Status == "Cancelled"))
        await conn.commit()
        rows = (
            await conn.execute(
                select(deltas.c.Status, func.sum(deltas.c.Delta)).group_by(deltas.c.Status)
            )
        ).all()
        assert {s: int(n) for s, n in rows} == {"Completed": 2, "Failed": 2, "Cancelled": 0}
        await downgrade_migrations(conn, schema)
