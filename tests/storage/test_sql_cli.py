"""``python -m evertask_storage_efcore_like sql``: without ``--schema`` the script targets
the schema the storage of that dialect uses by default."""

from __future__ import annotations

import inspect

import pytest

from evertask_storage_efcore_like.cli import DEFAULT_SCHEMAS, main
from evertask_storage_mssql import DEFAULT_SCHEMA as MSSQL_SCHEMA
from evertask_storage_postgres import PostgresTaskStorage

TABLES = ("QueuedTasks", "StatusAudit", "RunsAudit", "TaskExecutionLogs", "PausedQueues", "Nodes")


def _sql(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["sql", *argv]) == 0
    return capsys.readouterr().out


def test_defaults_are_the_storages_defaults() -> None:
    postgres_default = inspect.signature(PostgresTaskStorage).parameters["schema"].default
    assert {"postgresql": postgres_default, "mssql": MSSQL_SCHEMA} == DEFAULT_SCHEMAS


def test_postgres_without_schema_is_qualified_with_evertask(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _sql(capsys, "--dialect", "postgresql")
    assert 'CREATE SCHEMA IF NOT EXISTS "evertask"' in out
    for table in TABLES:
        assert f'CREATE TABLE evertask."{table}"' in out, table
    assert out == _sql(capsys, "--dialect", "postgresql", "--schema", "evertask")


def test_sqlserver_without_schema_is_qualified_with_EverTask(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _sql(capsys, "--dialect", "mssql")
    assert "CREATE SCHEMA [EverTask]" in out
    for table in TABLES:
        assert f"CREATE TABLE [EverTask].[{table}]" in out, table


def test_empty_schema_is_the_connections_default(capsys: pytest.CaptureFixture[str]) -> None:
    out = _sql(capsys, "--dialect", "postgresql", "--schema", "")
    assert "CREATE SCHEMA" not in out and 'CREATE TABLE "QueuedTasks"' in out
    out = _sql(capsys, "--dialect", "mssql", "--schema", "")
    assert "CREATE TABLE dbo.[QueuedTasks]" in out


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
def test_no_schema_where_the_database_has_none(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _sql(capsys, "--dialect", dialect)
    assert "CREATE SCHEMA" not in out and "CREATE DATABASE" not in out
    assert "QueuedTasks" in out
