"""Batched deletes of the retention cleanup (each deletes at most ``:batch`` rows)."""

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
    or_,
    select,
)

from evertask_abstractions import QueuedTaskStatus

from .schema import TaskTables
from .types import GuidType, UtcDateTime

__all__ = ["retention_statements"]

_FAILED = QueuedTaskStatus.FAILED.value


def _batch() -> Any:
    return bindparam("batch", type_=Integer())


def _cutoff() -> Any:
    return bindparam("cutoff", type_=UtcDateTime())


def _batched_delete(table: Table, where: ColumnElement[bool]) -> Delete:
    # DELETE ... WHERE Id IN (SELECT Id FROM (SELECT Id ... LIMIT n) AS batch_ids): the
    # derived table also satisfies MySQL, which refuses LIMIT directly inside IN (...)
    ids = select(table.c.Id).where(where).order_by(table.c.Id).limit(_batch()).subquery("ids")
    return delete(table).where(table.c.Id.in_(select(ids.c.Id)))


def retention_statements(tables: TaskTables) -> dict[str, Delete | Select[Any]]:
    """The retention statements by step name."""
    sa, ra, lg, t = tables.status_audit, tables.runs_audit, tables.logs, tables.tasks
    sa_error = or_(sa.c.Exception.is_not(None), sa.c.NewStatus == _FAILED)
    ra_error = or_(ra.c.Exception.is_not(None), ra.c.Status == _FAILED)
    keep = bindparam("keep", type_=Integer())
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
        .limit(_batch())
        .subquery("surplus")
    )
    c = t.c
    finished = and_(
        c.Status == QueuedTaskStatus.COMPLETED.value,
        c.IsRecurring == false(),
        c.CreatedAtUtc < _cutoff(),
        func.coalesce(c.LastExecutionUtc, c.CreatedAtUtc) < _cutoff(),
        ~exists().where(sa.c.QueuedTaskId == c.Id),
        ~exists().where(ra.c.QueuedTaskId == c.Id),
        ~exists().where(lg.c.TaskId == c.Id),
    )
    return {
        "delete_status_audits_success": _batched_delete(
            sa, and_(sa.c.UpdatedAtUtc < _cutoff(), ~sa_error)
        ),
        "delete_status_audits_error": _batched_delete(
            sa, and_(sa.c.UpdatedAtUtc < _cutoff(), sa_error)
        ),
        "delete_runs_audits_success": _batched_delete(
            ra, and_(ra.c.ExecutedAt < _cutoff(), ~ra_error)
        ),
        "delete_runs_audits_error": _batched_delete(
            ra, and_(ra.c.ExecutedAt < _cutoff(), ra_error)
        ),
        "delete_logs_before": _batched_delete(lg, lg.c.TimestampUtc < _cutoff()),
        "delete_logs_over_limit": delete(lg).where(lg.c.Id.in_(select(surplus.c.Id))),
        "select_tasks_over_log_limit": select(lg.c.TaskId)
        .group_by(lg.c.TaskId)
        .having(func.count() > keep)
        .order_by(lg.c.TaskId)
        .limit(_batch()),
        "delete_completed_tasks": _batched_delete(t, finished),
    }
