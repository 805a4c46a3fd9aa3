"""SQL Server without a server: every statement compiles for T-SQL, the hot paths carry
their hints, connection strings convert, and the migrations render as T-SQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from evertask.storage import SortField, TaskQuery
from evertask_abstractions import ConfigurationError, QueuedTaskStatus
from evertask_storage_efcore_like import cli
from evertask_storage_efcore_like import monitoring as m
from evertask_storage_efcore_like.counts import CountFilter, counts_statement
from evertask_storage_mssql import (
    SqlServerStatements,
    SqlServerTaskStorage,
    add_sqlserver_storage,
    build_odbc_string,
    parse_connection_string,
    select_driver,
    sqlserver_url,
)
from evertask_storage_mssql.statements import CLAIM_HINT, CLAIM_ROWS_HINT, ROW_HINT

DRIVER18 = "ODBC Driver 18 for SQL Server"
ODBC = f"Driver={{{DRIVER18}}};Server=db.example,1433;Database=app;UID=u;PWD=p;TrustServerCertificate=yes"
ADO = "Server=tcp:db.example,1433;Database=app;User Id=u;Password=p;Encrypt=True;TrustServerCertificate=True"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _dialect() -> Dialect:
    return mssql.dialect()  # type: ignore[no-untyped-call]


def _render(statement: ClauseElement) -> str:
    """T-SQL of ``statement``, with literal values where every bind has one."""
    dialect = _dialect()
    plain = statement.compile(dialect=dialect)
    if any(value is None for value in plain.params.values()):
        return str(plain)  # placeholders the storage fills at run time
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


@pytest.fixture(params=["EverTask", "", "custom_schema"])
def storage(request: pytest.FixtureRequest) -> SqlServerTaskStorage:
    return SqlServerTaskStorage(ODBC, schema=request.param)


def _statements(storage: SqlServerTaskStorage) -> dict[str, ClauseElement]:
    found = {n: v for n, v in vars(storage.statements).items() if isinstance(v, ClauseElement)}
    first, after = storage._pending_statements()
    found["pending_first"], found["pending_after"] = first, after  # type: ignore[assignment]
    tables, task_id = storage.tables, uuid.uuid4()
    queries = [
        TaskQuery(),
        TaskQuery(
            statuses=frozenset({QueuedTaskStatus.FAILED}),
            task_type_contains="x%_",
            queue_name="q",
            is_recurring=False,
            created_after=NOW,
            created_before=NOW,
            search="s",
            page=2,
            page_size=5,
        ),
        *(TaskQuery(sort_by=s, descending=d) for s in SortField for d in (True, False)),
    ]
    for i, q in enumerate(queries):
        found[f"page_{i}"] = m.task_page_statement(tables, q)
        found[f"count_{i}"] = m.task_count_statement(tables, q)
    found["counts"] = counts_statement(tables, CountFilter())
    found["counts_since"] = counts_statement(
        tables, CountFilter(NOW - timedelta(minutes=75), NOW, "q", True)
    )
    found["counts_buckets"] = counts_statement(
        tables, CountFilter(), [NOW - timedelta(hours=h) for h in range(24, -1, -1)]
    )
    found["logs"] = m.logs_statement(tables, task_id, 3, 10, "Error")
    found["logs_all"] = m.logs_statement(tables, task_id, 0, None, None)
    found["count_logs"] = m.count_logs_statement(tables, task_id, None)
    return found


def test_every_statement_compiles_for_sql_server(storage: SqlServerTaskStorage) -> None:
    statements = _statements(storage)
    assert len(statements) > 40
    schema = storage.schema
    assert schema in ("EverTask", "dbo", "custom_schema")
    for name, statement in statements.items():
        sql = _render(statement)
        assert f"[{schema}]." in sql or f"{schema}." in sql, name
        assert "LIMIT " not in sql and '"' not in sql, name


def test_empty_schema_means_dbo() -> None:
    assert SqlServerTaskStorage(ODBC, schema=None).schema == "dbo"
    assert SqlServerTaskStorage(ODBC).schema == "EverTask"
    with pytest.raises(ConfigurationError, match="Invalid schema name"):
        SqlServerTaskStorage(ODBC, schema="bad;name")


def test_hot_paths_carry_tsql_hints_and_output() -> None:
    statements = SqlServerTaskStorage(ODBC).statements
    assert isinstance(statements, SqlServerStatements)
    hot = {name: str(s.compile(dialect=_dialect())) for name, s in statements.hot_paths().items()}
    assert hot["try_queued"].startswith(f"UPDATE [EverTask].[QueuedTasks] {CLAIM_HINT} SET")
    for name in ("count_run", "complete_run", "increment_recovery"):
        assert f"[EverTask].[QueuedTasks] {ROW_HINT} SET" in hot[name], name
    # QueuedTasks has the count trigger: SQL Server refuses OUTPUT without INTO there
    assert not any("OUTPUT" in sql for sql in hot.values())
    # the hints are SQL Server's only: other dialects render the portable statement
    from sqlalchemy.dialects import sqlite

    assert "UPDLOCK" not in str(statements.try_queued.compile(dialect=sqlite.dialect()))


CLUSTER_STATEMENTS = (
    "try_queued_owned",
    "insert_node",
    "renew_lease",
    "select_nodes",
    "delete_node",
    "release_node_rows",
    "delete_dead_nodes",
    "claim_task",
    "select_dead_nodes",
    "claim_unowned",
    "claim_unowned_due",
    "claim_orphaned",
    "claim_orphaned_due",
    "claim_unowned_later",
    "claim_orphaned_later",
    "claim_rows",
    "select_claimed",
)


def test_cluster_statements_compile_for_sql_server_with_claim_hints() -> None:
    statements = SqlServerTaskStorage(ODBC).statements
    named = statements.named()
    ids = [uuid.uuid4(), uuid.uuid4()]
    for name in CLUSTER_STATEMENTS:
        sql = str(named[name].compile(dialect=_dialect()))
        assert "[EverTask]." in sql and "LIMIT" not in sql and "FOR UPDATE" not in sql, name
    for dead in (False, True):
        for due, later in ((False, False), (True, False), (False, True)):
            select = statements.claim_candidates(dead, due, later)
            sql = str(select.compile(dialect=_dialect()))
            assert f"FROM [EverTask].[QueuedTasks] {CLAIM_ROWS_HINT}" in sql, (dead, due)
            assert "mssql_rn <= :take" in sql and ("[OwnerNode] IN (" in sql) == dead
            assert ("[ScheduledExecutionUtc] > :later" in sql) == later
    bound = statements.claim_orphaned.params(dead=ids, now=NOW, take=5)
    claim = str(bound.compile(dialect=_dialect(), compile_kwargs={"render_postcompile": True}))
    assert "[OwnerNode] IN (:dead_1, :dead_2)" in claim
    owned = str(statements.try_queued_owned.compile(dialect=_dialect()))
    assert owned.startswith(f"UPDATE [EverTask].[QueuedTasks] {CLAIM_HINT} SET")
    assert owned.endswith("[EverTask].[QueuedTasks].[OwnerNode] = :owner")
    # the claim of one row needs no hint: one UPDATE by primary key, the owner re-checked
    task = str(statements.claim_task.compile(dialect=_dialect()))
    assert "NOT IN (SELECT [EverTask].[Nodes].[Id]" in task


def test_recurring_runs_leave_an_active_series_waiting_in_tsql() -> None:
    """A run with a next run sets the status (WaitingQueue) and the schedule from binds;
    without one (``:scheduled`` NULL) the schedule, and for a failed run the status, stay."""
    statements = SqlServerTaskStorage(ODBC).statements
    row = "[EverTask].[QueuedTasks]"
    for name in ("count_run", "complete_run"):
        sql = str(getattr(statements, name).compile(dialect=_dialect()))
        assert f"[ScheduledExecutionUtc]=coalesce(:scheduled, {row}.[ScheduledExecutionUtc])" in (
            sql
        ), name
        assert "[NextRunUtc]=:next_run" in sql, name
    count = str(statements.count_run.compile(dialect=_dialect()))
    complete = str(statements.complete_run.compile(dialect=_dialect()))
    assert f"[Status]=coalesce(:status, {row}.[Status])" in count
    assert "[Status]=:status" in complete


def test_hot_path_tsql_round_trips_through_text_with_bind_params() -> None:
    statements = SqlServerTaskStorage(ODBC).statements
    for name, statement in statements.hot_paths().items():
        compiled = statement.compile(dialect=_dialect())
        names = set(compiled.params)
        assert "id" in names, name
        again = text(str(compiled)).compile(dialect=_dialect())
        assert set(again.params) == names, name
        positional = str(
            text(str(compiled)).compile(
                dialect=mssql.dialect(paramstyle="qmark")  # type: ignore[no-untyped-call]
            )
        )
        assert ":id" not in positional and "?" in positional, name


# -- connection strings ----------------------------------------------------------------------
def _odbc(url: Any) -> str:
    return unquote_plus(str(url.query["odbc_connect"]))


def test_odbc_string_passes_through() -> None:
    url, timeout = sqlserver_url(ODBC, available=[])
    assert url.drivername == "mssql+aioodbc"
    assert _odbc(url) == (
        f"Driver={{{DRIVER18}}};Server=db.example,1433;Database=app;UID=u;PWD=p;"
        "TrustServerCertificate=yes"
    )
    assert timeout is None


def test_adonet_string_is_converted_to_odbc_keywords() -> None:
    odbc, timeout = build_odbc_string(ADO + ";Connect Timeout=7;Pooling=true", [DRIVER18])
    assert odbc == (
        f"Driver={{{DRIVER18}}};Server=db.example,1433;Database=app;UID=u;PWD=p;Encrypt=yes;"
        "TrustServerCertificate=yes"
    )
    assert timeout == 7.0
    odbc, _ = build_odbc_string(
        "Data Source=h;Initial Catalog=d;Integrated Security=SSPI;MultipleActiveResultSets=True",
        [DRIVER18],
    )
    assert "Server=h;Database=d;" in odbc
    assert "Trusted_Connection=yes" in odbc and "MARS_Connection=yes" in odbc


def test_braced_values_keep_separators() -> None:
    pairs = parse_connection_string("Server=h;PWD={a;b}}c=d};Database = x ;")
    assert pairs == [("Server", "h"), ("PWD", "a;b}c=d"), ("Database", "x")]
    odbc, _ = build_odbc_string("Server=h;PWD={a;b}}c=d}", [DRIVER18])
    assert odbc.endswith("PWD={a;b}}c=d}")


def test_driver_selection_prefers_driver_18_then_17_then_freetds() -> None:
    assert select_driver(["FreeTDS", "ODBC Driver 17 for SQL Server", DRIVER18]) == DRIVER18
    assert select_driver(["FreeTDS", "ODBC Driver 17 for SQL Server"]).endswith("17 for SQL Server")
    assert select_driver(["PostgreSQL Unicode", "FreeTDS"]) == "FreeTDS"
    assert select_driver(["/opt/lib/libmsodbcsql-18.6.so.2.1"]).endswith(".so.2.1")
    with pytest.raises(ConfigurationError, match="mssql-python-odbc"):
        select_driver(["PostgreSQL Unicode"])


def test_driver_named_in_string_is_kept() -> None:
    odbc, _ = build_odbc_string("Driver={FreeTDS};Server=h,1444;Database=d", [DRIVER18])
    assert odbc == "Driver={FreeTDS};Server=h;Port=1444;Database=d;TDS_Version=7.4"


def test_installed_driver_is_picked_when_none_is_named() -> None:
    odbc, _ = build_odbc_string("Server=h;Database=d")
    assert odbc.startswith("Driver={") or pytest.skip("no ODBC driver installed here")


def test_sqlalchemy_urls() -> None:
    url, _ = sqlserver_url("mssql+pyodbc://u:p@h:1433/d", available=[DRIVER18])
    assert url.drivername == "mssql+aioodbc"
    assert url.query["driver"] == DRIVER18 and url.database == "d"
    url, _ = sqlserver_url("mssql+aioodbc://u:p@h/d?driver=FreeTDS", available=[DRIVER18])
    assert url.query["driver"] == "FreeTDS"
    url, timeout = sqlserver_url(
        "mssql+aioodbc:///?odbc_connect=Server%3Dh%3BConnect+Timeout%3D4", available=[DRIVER18]
    )
    assert _odbc(url) == f"Driver={{{DRIVER18}}};Server=h" and timeout == 4.0


@pytest.mark.parametrize(
    ("connection_string", "message"),
    [
        ("Server=h;Database", "has no '='"),
        ("Server=h;PWD={abc", "never closes"),
        ("Server=h;PWD={abc}x", "unexpected text"),
        ("Database=d;UID=u", "names no server"),
        ("Server=h;Encrypt=maybe", "True/False"),
        ("Server=h;Connect Timeout=soon", "seconds"),
        ("", "empty"),
        ("postgresql://u@h/d", "mssql:// URL"),
        ("=x;Server=h", "missing key"),
    ],
)
def test_malformed_strings_raise_clear_errors(connection_string: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SqlServerTaskStorage(connection_string)


def test_describe_hides_the_password() -> None:
    text_ = SqlServerTaskStorage(ADO + ";Password=s3cret").describe()
    assert "s3cret" not in text_ and "db.example,1433" in text_ and "'app'" in text_


def test_builder_extension_registers_the_storage() -> None:
    registered: list[Any] = []

    class Builder:
        def use_storage(self, factory: Any) -> None:
            registered.append(factory)

        def add_component(self, component: Any) -> None:
            registered.append(component)

    from evertask.options import EverTaskOptions

    builder = Builder()
    assert add_sqlserver_storage(builder, ODBC, schema="Jobs", pool_size=2) is builder
    storage = registered[0](EverTaskOptions())
    assert isinstance(storage, SqlServerTaskStorage)
    assert storage.schema == "Jobs" and storage.pool_size == 2
    with pytest.raises(ConfigurationError):
        add_sqlserver_storage(builder, "Server=h;Database")


# -- migrations ------------------------------------------------------------------------------
def test_migrations_render_as_tsql(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sql", "--dialect", "mssql", "--schema", "EverTask"]) == 0
    out = capsys.readouterr().out
    assert "EXEC('CREATE SCHEMA [EverTask]')" in out
    tables = (
        "QueuedTasks",
        "StatusAudit",
        "RunsAudit",
        "TaskExecutionLogs",
        "PausedQueues",
        "Nodes",
    )
    for table in tables:
        assert f"CREATE TABLE [EverTask].[{table}]" in out, table
    assert "ALTER TABLE [EverTask].[QueuedTasks] ADD [OwnerNode] UNIQUEIDENTIFIER NULL" in out
    assert "CREATE INDEX [IX_QueuedTasks_OwnerNode_Status] ON [EverTask].[QueuedTasks]" in out
    assert "UNIQUEIDENTIFIER" in out and "DATETIME2(7)" in out
    assert "COLLATE Latin1_General_100_BIN2" in out
    assert "LIMIT" not in out and "SERIAL" not in out and "`" not in out


def test_workflow_statements_compile_for_sql_server() -> None:
    named = SqlServerTaskStorage(ODBC).statements.named()
    parent = str(named["select_parent_for_update"].compile(dialect=_dialect()))
    # the continuation's locking read of its parent: an update lock, no FOR UPDATE
    assert "FROM [EverTask].[QueuedTasks] WITH (UPDLOCK, ROWLOCK)" in parent
    assert "FOR UPDATE" not in parent
    release = str(named["release_children"].compile(dialect=_dialect()))
    assert release.startswith("UPDATE [EverTask].[QueuedTasks]")
    assert "[ParentTaskId] = :id" in release and "CASE WHEN" in release
    for name in (
        "insert_release_audits",
        "select_handed_children",
        "disown_row",
        "select_skipped_children",
    ):
        assert "[EverTask].[QueuedTasks]" in str(named[name].compile(dialect=_dialect())), name
    status = str(named["update_status"].compile(dialect=_dialect()))
    assert "[Result]=coalesce(:result, [EverTask].[QueuedTasks].[Result])" in status


def test_batch_statements_compile_for_sql_server() -> None:
    named = SqlServerTaskStorage(ODBC).statements.named()

    def tsql(name: str) -> str:
        return str(named[name].compile(dialect=_dialect()))

    # a terminal write's probe: one seek of the row joined to a waiting child, TOP 1
    probe = tsql("probe_finished")
    assert probe.startswith("SELECT TOP ") and "[EverTask].[QueuedTasks].[BatchId]" in probe
    assert "LEFT OUTER JOIN [EverTask].[QueuedTasks] AS w ON w.[ParentTaskId]" in probe
    assert "FOR UPDATE" not in probe
    assert tsql("mark_counted").endswith("[BatchCounted] = 0")
    finish = tsql("finish_batch")
    assert finish.startswith("UPDATE [EverTask].[TaskBatches] SET [Status]=CASE WHEN")
    assert "[Succeeded] + [EverTask].[TaskBatches].[Failed]" in finish
    for name in ("select_batch_for_update", "select_unfinished_batch_members"):
        assert "WITH (UPDLOCK, ROWLOCK)" in tsql(name), name
    unfinished = tsql("select_unfinished_workflow_members")
    assert "[Status] NOT IN ('Cancelled', 'Completed', 'Failed')" in unfinished
    assert tsql("insert_batch").startswith("INSERT INTO [EverTask].[TaskBatches]")
    # the monitoring API's continuations of a record: a bound row limit, no LIMIT
    children = tsql("select_continuations")
    assert "mssql_rn <= :take" in children and "LIMIT" not in children
    assert "WHERE [EverTask].[QueuedTasks].[ParentTaskId] = :id" in children


def test_batch_migration_renders_as_tsql(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sql", "--dialect", "mssql", "--schema", "EverTask"]) == 0
    out = capsys.readouterr().out
    assert "CREATE TABLE [EverTask].[TaskBatches]" in out
    assert "ALTER TABLE [EverTask].[QueuedTasks] ADD [BatchCounted] BIT NOT NULL DEFAULT 0" in out
    assert (
        "CREATE INDEX [IX_QueuedTasks_BatchId] ON [EverTask].[QueuedTasks] ([BatchId]) "
        'WHERE "BatchId" IS NOT NULL' in out
    )
