"""The SQLite writer's new rows and status writes read their arguments off the row and the
operation (``Precompiled.reader``): the same arguments as the canonical parameters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect

from evertask.storage import QueuedTask
from evertask_abstractions import AuditLevel, QueuedTaskStatus
from evertask_storage_efcore_like import Statements, build_tables
from evertask_storage_efcore_like.ops import UPDATE_ATTRIBUTES, TransitionOp
from evertask_storage_efcore_like.precompiled import PrecompiledCache
from evertask_storage_efcore_like.rows import TASK_ATTRIBUTES, task_params

NOW = datetime(2026, 12, 5, 9, 15, 30, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def sql() -> PrecompiledCache:
    return PrecompiledCache(Statements(build_tables(None, "sqlite")), aiosqlite_dialect())


def _sparse() -> QueuedTask:
    return QueuedTask(
        id=uuid.uuid4(),
        type="app.tasks:Noop",
        request='{"n":1}',
        handler="app.handlers:NoopHandler",
        status=QueuedTaskStatus.WAITING_QUEUE,
        created_at_utc=NOW,
        audit_level=AuditLevel.NONE,
    )


def _full() -> QueuedTask:
    eastern = timezone(timedelta(hours=-5))  # converted to UTC on both paths
    return QueuedTask(
        id=uuid.uuid4(),
        type="app.tasks:Report",
        request='{"day":"2026-12-05"}',
        handler="app.handlers:ReportHandler",
        status=QueuedTaskStatus.QUEUED,
        created_at_utc=NOW.astimezone(eastern),
        queue_name="reports",
        audit_level=AuditLevel.ERRORS_ONLY,
        scheduled_execution_utc=NOW + timedelta(minutes=5),
        last_execution_utc=NOW - timedelta(days=1),
        execution_time_ms=12.5,
        exception="ValueError: earlier",
        is_recurring=True,
        recurring_task='{"cron":"0 * * * *"}',
        recurring_info="every hour",
        current_run_count=3,
        max_runs=10,
        run_until=NOW + timedelta(days=30),
        next_run_utc=NOW + timedelta(hours=1),
        task_key="report-2026-12-05",
        recovery_dispatch_failure_count=1,
        trace_context="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        retried_from=uuid.uuid4(),
        owner_node=uuid.uuid4(),
        result='{"ok":true}',
        parent_task_id=uuid.uuid4(),
        continue_when="Succeeded",
        batch_id=uuid.uuid4(),
        workflow_id=uuid.uuid4(),
    )


def test_every_column_of_a_task_has_its_attribute() -> None:
    row = _full()
    assert set(task_params(row)) == set(TASK_ATTRIBUTES)
    assert task_params(row)["Status"] == "Queued"
    assert task_params(row)["AuditLevel"] == 2 and type(task_params(row)["AuditLevel"]) is int


@pytest.mark.parametrize("make", [_sparse, _full])
def test_a_new_rows_arguments_read_off_it_equal_its_parameters(
    sql: PrecompiledCache, make: Callable[[], QueuedTask]
) -> None:
    insert = sql["insert_task"]
    row = make()
    args = insert.reader(TASK_ATTRIBUTES)(row)
    assert args == insert.args(task_params(row))
    assert args[insert.names.index("Id")] == str(row.id)
    # sqlite3 binds these as they are, with no adapter lookup (an enum or bool would)
    assert {type(a) for a in args} <= {str, int, float, type(None)}


@pytest.mark.parametrize("stamp", [None, NOW, NOW.astimezone(timezone(timedelta(hours=2)))])
def test_a_status_writes_arguments_read_off_it_equal_its_parameters(
    sql: PrecompiledCache, stamp: datetime | None
) -> None:
    update = sql["update_status"]
    op = TransitionOp(
        uuid.uuid4(), "Completed", None, stamp, 0.25, False, None, False, result='{"v":1}'
    )
    step = op.update_step()
    assert step.name == "update_status"
    assert update.reader(UPDATE_ATTRIBUTES)(op) == update.args(step.params)
