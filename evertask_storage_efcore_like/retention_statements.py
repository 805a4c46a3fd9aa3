"""The retention cleanup's statements: keyset-bounded reads and range deletes.

Every delete is a range of a key it walks once per cleanup (audits and logs by their
primary key, tasks by ``(CreatedAtUtc, Id)`` on the status index), so no batch reads
rows an earlier batch already passed: a cleanup costs the rows it walks, once. Each
statement's plan is a primary-key or index range whatever the table's statistics.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    not_,
    or_,
    select,
)

from evertask_abstractions import QueuedTaskStatus

from .schema import TaskTables
from .types import GuidType, UtcDateTime

__all__ = ["retention_statements"]

_FAILED = QueuedTaskStatus.FAILED.value
_COMPLETED = QueuedTaskStatus.COMPLETED.value


def _int(name: str) -> Any:
    return bindparam(name, type_=Integer())


def _ts(name: str) -> Any:
    return bindparam(name, type_=UtcDateTime())


def _examine(table: Table, time: Any) -> Select[Any, Any, int]:
    """The next ``:take`` rows by primary key after ``:after``: the last key, the oldest
    time among them, and how many there were."""
    window = (
        select(table.c.Id, time.label("t"))
        .where(table.c.Id > bindparam("after", type_=table.c.Id.type))
        .order_by(table.c.Id)
        .limit(_int("take"))
        .subquery("window")
    )
    return select(func.max(window.c.Id), func.min(window.c.t), func.count())


def _delete_range(table: Table, where: ColumnElement[bool]) -> Delete:
    key = table.c.Id
    return delete(table).where(
        key > bindparam("after", type_=key.type), key <= bindparam("upto", type_=key.type), where
    )


def _audits(table: Table, time: Any, error: ColumnElement[bool]) -> ColumnElement[bool]:
    """Success rows before ``:cutoff``, error rows before ``:error_cutoff``."""
    return or_(
        and_(time < _ts("cutoff"), not_(error)),
        and_(time < _ts("error_cutoff"), error),
    )


def retention_statements(tables: TaskTables) -> dict[str, Any]:
    """The retention statements by step name."""
    sa, ra, lg, t = tables.status_audit, tables.runs_audit, tables.logs, tables.tasks
    sa_error = or_(sa.c.Exception.is_not(None), sa.c.NewStatus == _FAILED)
    ra_error = or_(ra.c.Exception.is_not(None), ra.c.Status == _FAILED)
    keep = _int("keep")
    ranked = (
        select(
            lg.c.Id,
            func.row_number()
            .over(order_by=(lg.c.TimestampUtc.desc(), lg.c.SequenceNumber.desc(), lg.c.Id.desc()))
            .label("rn"),
        )
        .where(lg.c.TaskId == bindparam("id", type_=GuidType()))
        .subquery("ranked")
    )
    surplus = (
        select(ranked.c.Id)
        .where(ranked.c.rn > keep)
        .order_by(ranked.c.rn)
        .limit(_int("batch"))
        .subquery("surplus")
    )
    c = t.c
    after_created, after_id = _ts("after_created"), bindparam("after_id", type_=GuidType())
    upto_created, upto_id = _ts("upto_created"), bindparam("upto_id", type_=GuidType())
    old_completed = and_(c.Status == _COMPLETED, c.CreatedAtUtc < _ts("cutoff"))
    # (no "CreatedAtUtc < :cutoff" here: the walk's upper key is below it already, and a
    # second upper bound lets a planner seek to the cutoff instead of the batch's end)
    finished = (
        c.Status == _COMPLETED,
        c.CreatedAtUtc >= after_created,
        c.CreatedAtUtc <= upto_created,
        or_(c.CreatedAtUtc > after_created, c.Id > after_id),
        or_(c.CreatedAtUtc < upto_created, c.Id <= upto_id),
        c.IsRecurring == false(),
        func.coalesce(c.LastExecutionUtc, c.CreatedAtUtc) < _ts("cutoff"),
    )
    return {
        "examine_status_audits": _examine(sa, sa.c.UpdatedAtUtc),
        "delete_status_audits": _delete_range(sa, _audits(sa, sa.c.UpdatedAtUtc, sa_error)),
        "examine_runs_audits": _examine(ra, ra.c.ExecutedAt),
        "delete_runs_audits": _delete_range(ra, _audits(ra, ra.c.ExecutedAt, ra_error)),
        # (no MAX over a UUID on PostgreSQL or SQL Server: the window's ids themselves)
        "examine_logs": select(lg.c.Id)
        .where(lg.c.Id > bindparam("after", type_=GuidType()))
        .order_by(lg.c.Id)
        .limit(_int("take")),
        "delete_logs_before": _delete_range(lg, lg.c.TimestampUtc < _ts("cutoff")),
        "delete_logs_over_limit": delete(lg).where(lg.c.Id.in_(select(surplus.c.Id))),
        "select_tasks_over_log_limit": select(lg.c.TaskId)
        .where(lg.c.TaskId > bindparam("after", type_=GuidType()))
        .group_by(lg.c.TaskId)
        .having(func.count() > keep)
        .order_by(lg.c.TaskId)
        .limit(_int("batch")),
        # old Completed one-shot rows, walked on IX_QueuedTasks_Status_CreatedAtUtc
        "examine_completed_tasks": select(c.CreatedAtUtc, c.Id)
        .where(
            old_completed,
            c.CreatedAtUtc >= after_created,
            or_(c.CreatedAtUtc > after_created, c.Id > after_id),
        )
        .order_by(c.CreatedAtUtc, c.Id)
        .limit(_int("take")),
        "delete_completed_tasks": delete(t).where(*finished),
        # finished batch and workflow records (a handful: one statement)
        "delete_finished_batches": delete(tables.batches).where(
            tables.batches.c.Status != "Running",
            tables.batches.c.FinishedAtUtc < _ts("cutoff"),
        ),
        # the same, keeping tasks that own logs (no log window: logs are kept forever)
        "delete_completed_tasks_without_logs": delete(t).where(
            *finished, ~exists().where(lg.c.TaskId == c.Id)
        ),
    }
