"""Every Core statement of the storage base compiles for SQL Server (and MySQL): the base
stays dialect-neutral for the SQL Server and MySQL packages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from evertask.storage import SortField, TaskQuery
from evertask_abstractions import QueuedTaskStatus
from evertask_storage_efcore_like import Statements, build_tables
from evertask_storage_efcore_like import monitoring as m
from evertask_storage_efcore_like.counts import CountFilter, counts_statement, floor_hour
from evertask_storage_efcore_like.schema import PARTIAL_INDEX_DIALECTS

DIALECTS: dict[str, Dialect] = {
    "mssql": mssql.dialect(),  # type: ignore[no-untyped-call]
    "mysql": mysql.dialect(),
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
    "sqlite": sqlite.dialect(),
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _monitoring(schema: str | None) -> list[ClauseElement]:
    tables = build_tables(schema)
    task_id = uuid.uuid4()
    queries = [
        TaskQuery(),
        TaskQuery(
            statuses=frozenset({QueuedTaskStatus.QUEUED}),
            task_type_contains="a_b%",
            queue_name="q",
            is_recurring=True,
            created_after=NOW,
            created_before=NOW,
            search="x",
            page=3,
            page_size=7,
        ),
        *(TaskQuery(sort_by=s, descending=d) for s in SortField for d in (True, False)),
    ]
    return [
        *(m.task_page_statement(tables, q) for q in queries),
        *(m.task_count_statement(tables, q) for q in queries),
        m.logs_statement(tables, task_id, 5, 10, "Error"),
        m.logs_statement(tables, task_id, 0, None, None),
        m.count_logs_statement(tables, task_id, "Error"),
        *(
            statement
            for where in (
                CountFilter(),
                CountFilter(NOW - timedelta(minutes=90, seconds=5), NOW, "default", True),
                CountFilter(NOW - timedelta(minutes=5), NOW, statuses=frozenset({"Queued"})),
                CountFilter(statuses=frozenset({"Completed", "InProgress"})),
            )
            if (statement := counts_statement(tables, where)) is not None
        ),
        counts_statement(
            tables, CountFilter(), [floor_hour(NOW) - timedelta(hours=h) for h in range(24, -1, -1)]
        ),
    ]


@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("schema", [None, "EverTask"])
def test_every_statement_compiles(dialect: str, schema: str | None) -> None:
    statements = Statements(build_tables(schema, dialect))
    named = statements.named()
    assert len(named) >= 35
    for name, statement in named.items():
        sql = str(statement.compile(dialect=DIALECTS[dialect]))
        tables = (
            "QueuedTasks",
            "PausedQueues",
            "Audit",
            "Logs",
            "Nodes",
            "TaskCount",
            "Leases",
            "RateLimitBuckets",
            "ConcurrencySlots",
            "TaskBatches",
        )
        assert any(table in sql for table in tables), name
        if schema is not None and dialect == "mssql":
            assert "[EverTask].[" in sql, name
    for statement in _monitoring(schema):
        statement.compile(dialect=DIALECTS[dialect])


def test_sql_server_renders_its_own_syntax() -> None:
    statements = Statements(build_tables("EverTask", "mssql"))
    dialect = DIALECTS["mssql"]
    page = str(statements.select_pending_after.compile(dialect=dialect))
    assert "LIMIT" not in page and "mssql_rn" in page
    delete = str(statements.delete_completed_tasks.compile(dialect=dialect))  # type: ignore[attr-defined]
    assert "[IsRecurring] = 0" in delete
    search = str(
        m.task_page_statement(build_tables("EverTask"), TaskQuery(search="x")).compile(
            dialect=dialect
        )
    )
    assert "lower(" in search and "ESCAPE" in search


def test_partial_indexes_only_where_the_dialect_has_them() -> None:
    for dialect in DIALECTS:
        names = {i.name for i in build_tables(None, dialect).tasks.indexes}
        partial = dialect in PARTIAL_INDEX_DIALECTS
        assert "IX_QueuedTasks_Recovery" not in names  # (replaced by the claim index)
        assert ("IX_QueuedTasks_Claim" in names) == partial
        assert "IX_QueuedTasks_TaskKey" in names
        # without partial indexes the claims seek (OwnerNode, Status, NextRunUtc)
        assert ("IX_QueuedTasks_OwnerNode_Status" in names) == (not partial)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_claim_candidates_lock_rows_skipping_locked_ones(dialect: str) -> None:
    statements = Statements(build_tables(None, dialect))
    for dead in (False, True):
        for due, later in ((False, False), (True, False), (False, True)):
            statement = statements.claim_candidates(dead, due, later)
            sql = str(statement.compile(dialect=DIALECTS[dialect]))
            locks = dialect in ("postgresql", "mysql")  # SQLite serialises with BEGIN IMMEDIATE
            assert ("FOR UPDATE SKIP LOCKED" in sql) == locks, (dead, due)
            assert ("OwnerNode" in sql and "IS NULL" in sql) and ("ScheduledExecution" in sql) == (
                due or later
            )
