"""Every Core statement the storage runs, built once per schema and dialect-neutral.

Writes are referenced by name from the operation steps (:mod:`.ops`) so that each
executor can run them its own way: through SQLAlchemy, or precompiled to the driver's
SQL (:mod:`.precompiled`). Bind parameter names are the keys the steps pass.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Delete,
    Double,
    Insert,
    Integer,
    Select,
    UnicodeText,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import BindParameter

from evertask_abstractions import BatchKind, BatchStatus, QueuedTaskStatus

from .counts import count_statements
from .retention_statements import retention_statements
from .rows import TASK_ATTRIBUTES
from .schema import OWNER_INDEX, TaskTables, recovery_index_predicate
from .types import GuidType, UtcDateTime

__all__ = ["BATCH_COLUMNS", "NODE_COLUMNS", "RUN_COUNTER_MAX", "TASK_COLUMNS", "Statements"]

RUN_COUNTER_MAX = 2**31 - 1
"""The run counter saturates here instead of overflowing a 32-bit column."""

TASK_COLUMNS: tuple[str, ...] = tuple(TASK_ATTRIBUTES)
"""QueuedTasks columns in :class:`~evertask.storage.models.QueuedTask` field order."""

BATCH_COLUMNS: tuple[str, ...] = (
    "Id",
    "Kind",
    "Status",
    "CreatedAtUtc",
    "Total",
    "Name",
    "WorkflowId",
    "Succeeded",
    "Failed",
    "Cancelled",
    "FinishedAtUtc",
    "Definition",
)
"""TaskBatches columns in :class:`~evertask.storage.models.TaskBatch` field order."""

NODE_COLUMNS: tuple[str, ...] = (
    "Id",
    "HostName",
    "Pid",
    "StartedAtUtc",
    "LastHeartbeatUtc",
    "LeaseExpiresUtc",
    "Queues",
    "RunsWorkers",
)
"""Nodes columns in :class:`~evertask.storage.models.NodeInfo` field order."""

_DEFINITION_COLUMNS = (
    "Type",
    "Request",
    "Handler",
    "QueueName",
    "AuditLevel",
    "ScheduledExecutionUtc",
    "IsRecurring",
    "RecurringTask",
    "RecurringInfo",
    "MaxRuns",
    "RunUntil",
    "TaskKey",
    "NextRunUtc",
)


def _id(name: str = "id") -> BindParameter[Any]:
    return bindparam(name, type_=GuidType())


def _ts(name: str) -> BindParameter[Any]:
    return bindparam(name, type_=UtcDateTime())


def _text(name: str) -> BindParameter[Any]:
    return bindparam(name, type_=UnicodeText())


def _ms(name: str = "ms") -> BindParameter[Any]:
    return bindparam(name, type_=Double())


def _ids(name: str) -> BindParameter[Any]:
    return bindparam(name, type_=GuidType(), expanding=True)


class Statements:
    """The statements of one :class:`TaskTables` (attribute name = step name)."""

    def __init__(self, tables: TaskTables) -> None:
        self.tables = tables
        t = tables.tasks
        c = t.c
        sa = tables.status_audit
        ra = tables.runs_audit
        lg = tables.logs
        by_id = c.Id == _id()
        saturated = func.coalesce(c.CurrentRunCount, 0)
        next_count = case((saturated >= RUN_COUNTER_MAX, RUN_COUNTER_MAX), else_=saturated + 1)

        # -- inserts ---------------------------------------------------------------------
        self.insert_task: Insert = insert(t).values(
            {name: bindparam(name) for name in TASK_COLUMNS}
        )
        self.insert_status_audit: Insert = insert(sa).values(
            QueuedTaskId=_id(),
            UpdatedAtUtc=_ts("ts"),
            NewStatus=_text("status"),
            Exception=_text("exception"),
        )
        self.insert_status_audit_if_exists: Insert = insert(sa).from_select(
            ["QueuedTaskId", "UpdatedAtUtc", "NewStatus", "Exception"],
            select(c.Id, _ts("ts"), _text("status"), _text("exception")).where(by_id),
        )
        self.insert_runs_audit: Insert = insert(ra).values(
            QueuedTaskId=_id(),
            ExecutedAt=_ts("ts"),
            ExecutionTimeMs=_ms(),
            Status=_text("status"),
            Exception=_text("exception"),
        )
        runs_from_row = select(c.Id, _ts("ts"), _ms(), c.Status, c.Exception)
        self.insert_runs_audit_from_row: Insert = insert(ra).from_select(
            ["QueuedTaskId", "ExecutedAt", "ExecutionTimeMs", "Status", "Exception"],
            runs_from_row.where(by_id),
        )
        self.insert_runs_audit_from_row_if_error: Insert = insert(ra).from_select(
            ["QueuedTaskId", "ExecutedAt", "ExecutionTimeMs", "Status", "Exception"],
            runs_from_row.where(
                by_id,
                or_(c.Status == QueuedTaskStatus.FAILED.value, c.Exception.is_not(None)),
            ),
        )
        self.insert_log: Insert = insert(lg).values(
            Id=_id("log_id"),
            TaskId=_id(),
            TimestampUtc=_ts("ts"),
            Level=_text("level"),
            Message=_text("message"),
            ExceptionDetails=_text("exception"),
            SequenceNumber=bindparam("seq", type_=Integer()),
        )

        # -- status transitions ----------------------------------------------------------
        transition = {
            "Status": _text("status"),
            "Exception": _text("exception"),
            "LastExecutionUtc": func.coalesce(_ts("stamp"), c.LastExecutionUtc),
            "ExecutionTimeMs": func.coalesce(_ms(), c.ExecutionTimeMs),
            "Result": func.coalesce(_text("result"), c.Result),
        }
        self.update_status: Update = update(t).where(by_id).values(transition)
        self.update_status_clear_next: Update = (
            update(t).where(by_id).values({**transition, "NextRunUtc": None})
        )
        self.try_queued: Update = (
            update(t)
            .where(by_id, self.recoverable(_ts("now")))
            .values(Status=QueuedTaskStatus.QUEUED.value, Exception=None)
        )
        self.try_queued_owned: Update = (
            update(t)
            .where(by_id, self.recoverable(_ts("now")), c.OwnerNode == _id("owner"))
            .values(Status=QueuedTaskStatus.QUEUED.value, Exception=None)
        )
        # a recurring run: with a next run the series waits for it (:status WaitingQueue,
        # :scheduled the next run); without, count_run keeps the status and schedule
        self.count_run: Update = (
            update(t)
            .where(by_id)
            .values(
                Status=func.coalesce(_text("status"), c.Status),
                CurrentRunCount=next_count,
                NextRunUtc=_ts("next_run"),
                ScheduledExecutionUtc=func.coalesce(_ts("scheduled"), c.ScheduledExecutionUtc),
                ExecutionTimeMs=_ms(),
            )
        )
        self.complete_run: Update = (
            update(t)
            .where(by_id)
            .values(
                Status=_text("status"),
                Exception=None,
                LastExecutionUtc=_ts("stamp"),
                ExecutionTimeMs=_ms(),
                CurrentRunCount=next_count,
                NextRunUtc=_ts("next_run"),
                ScheduledExecutionUtc=func.coalesce(_ts("scheduled"), c.ScheduledExecutionUtc),
            )
        )
        # -- continuations (docs/workflows.md) --------------------------------------------
        # a finished parent's waiting children: :run_a / :run_b are the conditions that
        # run (ContinueWhen names; '' matches none); the others are cancelled with :reason;
        # all of them get the :owner the release hands them to (NULL: none)
        children = and_(c.ParentTaskId == _id(), c.Status == QueuedTaskStatus.WAITING_PARENT.value)
        runs = or_(c.ContinueWhen == _text("run_a"), c.ContinueWhen == _text("run_b"))
        released_status = case(
            (runs, QueuedTaskStatus.QUEUED.value), else_=QueuedTaskStatus.CANCELLED.value
        )
        # whether any child waits (most parents have none: one seek of the partial index
        # instead of the two statements of a release); a locking read, so MySQL's
        # repeatable read sees a child committed while this transaction waited for its parent
        self.has_waiting_children: Select[Any] = (
            select(c.Id).where(children).limit(1).with_for_update()
        )
        self.insert_release_audits: Insert = insert(sa).from_select(
            ["QueuedTaskId", "UpdatedAtUtc", "NewStatus", "Exception"],
            select(
                c.Id, _ts("ts"), released_status, case((runs, null()), else_=_text("reason"))
            ).where(children, func.coalesce(c.AuditLevel, 0) == 0),
        )
        self.release_children: Update = (
            update(t)
            .where(children)
            .values(
                Status=released_status,
                Exception=case((runs, null()), else_=_text("reason")),
                OwnerNode=_id("owner"),
            )
        )
        # the children a release handed to :owner (the unowned ones: select_released_children)
        self.select_handed_children: Select[Any] = (
            select(*[c[name] for name in TASK_COLUMNS])
            .where(
                c.ParentTaskId == _id(),
                c.Status == QueuedTaskStatus.QUEUED.value,
                c.OwnerNode == _id("owner"),
            )
            .order_by(c.CreatedAtUtc, c.Id)
        )
        # a handed child given back: more were released than the node has room for
        self.disown_row: Update = (
            update(t).where(by_id, c.OwnerNode == _id("owner")).values(OwnerNode=null())
        )
        self.select_skipped_children: Select[Any] = select(c.Id).where(
            c.ParentTaskId == _id(),
            c.Status == QueuedTaskStatus.CANCELLED.value,
            c.Exception == _text("reason"),
        )
        # what a terminal write does beyond its status (one statement, a seek of the primary
        # key and of the parent index): the batch and workflow the row counts in (unless it
        # was counted already) and whether a child waits. A locking read, as above; on
        # PostgreSQL only of the row itself (the outer join's nullable side cannot be locked,
        # and its read-committed statement sees every committed child anyway)
        w = t.alias("w")
        waiting = and_(
            w.c.ParentTaskId == c.Id, w.c.Status == QueuedTaskStatus.WAITING_PARENT.value
        )
        probe = (
            select(c.BatchId, c.WorkflowId, c.BatchCounted, w.c.Id)
            .select_from(t.outerjoin(w, waiting))
            .where(by_id)
            .limit(1)
        )
        self.probe_finished: Select[Any] = (
            probe.with_for_update(of=t)
            if tables.dialect == "postgresql"
            else probe.with_for_update()
        )
        self.mark_counted: Update = (
            update(t).where(by_id, c.BatchCounted == false()).values(BatchCounted=True)
        )
        # the locking read that orders a continuation's insert with its parent's release
        # (SQL Server renders no FOR UPDATE: an update lock, which also holds under
        # READ_COMMITTED_SNAPSHOT)
        self.select_parent_for_update: Select[Any] = (
            select(c.Status)
            .where(by_id)
            .with_for_update()
            .with_hint(t, "WITH (UPDLOCK, ROWLOCK)", "mssql")
        )
        self.increment_recovery: Update = (
            update(t)
            .where(by_id)
            .values(
                RecoveryDispatchFailureCount=func.coalesce(c.RecoveryDispatchFailureCount, 0) + 1
            )
        )
        self.clear_recovery: Update = update(t).where(by_id).values(RecoveryDispatchFailureCount=0)
        self.update_definition: Update = (
            update(t).where(by_id).values({name: bindparam(name) for name in _DEFINITION_COLUMNS})
        )
        self.revive: Update = (
            update(t)
            .where(by_id, c.Status == QueuedTaskStatus.CANCELLED.value)
            .values(Status=QueuedTaskStatus.WAITING_QUEUE.value, CurrentRunCount=0, Exception=None)
        )
        self.delete_task: Delete = delete(t).where(by_id)

        pq = tables.paused_queues
        self.delete_paused_queue: Delete = delete(pq).where(pq.c.QueueName == _text("queue"))
        self.insert_paused_queue: Insert = insert(pq).values(
            QueueName=_text("queue"), PausedAtUtc=_ts("ts")
        )

        # -- reads -----------------------------------------------------------------------
        columns = [c[name] for name in TASK_COLUMNS]
        self.select_recovery_count: Select[Any] = select(
            func.coalesce(c.RecoveryDispatchFailureCount, 0)
        ).where(by_id)
        self.select_task_exists: Select[Any] = (
            select(literal_column("1")).select_from(t).where(by_id)
        )
        self.select_task: Select[Any] = select(*columns).where(by_id)
        self.select_task_by_key: Select[Any] = select(*columns).where(c.TaskKey == _text("key"))
        self.select_run_count: Select[Any] = select(func.coalesce(c.CurrentRunCount, 0)).where(
            by_id
        )
        last_created = _ts("last_created")
        self.select_pending_first: Select[Any] = (
            select(*columns)
            .where(self.recoverable(_ts("now")))
            .order_by(c.CreatedAtUtc, c.Id)
            .limit(bindparam("take", type_=Integer()))
        )
        self.select_pending_after: Select[Any] = (
            select(*columns)
            .where(
                self.recoverable(_ts("now")),
                # (CreatedAtUtc, Id) > (:last_created, :last_id), written so that every
                # dialect starts an index range at :last_created
                c.CreatedAtUtc >= last_created,
                or_(c.CreatedAtUtc > last_created, c.Id > _id("last_id")),
            )
            .order_by(c.CreatedAtUtc, c.Id)
            .limit(bindparam("take", type_=Integer()))
        )
        self.select_released_children: Select[Any] = (
            select(*columns)
            .where(
                c.ParentTaskId == _id(),
                c.Status == QueuedTaskStatus.QUEUED.value,
                c.OwnerNode.is_(None),
            )
            .order_by(c.CreatedAtUtc, c.Id)
        )
        self.select_paused_queues: Select[Any] = select(pq.c.QueueName).order_by(pq.c.QueueName)
        self.select_status_audits: Select[Any] = (
            select(sa.c.Id, sa.c.QueuedTaskId, sa.c.UpdatedAtUtc, sa.c.NewStatus, sa.c.Exception)
            .where(sa.c.QueuedTaskId == _id())
            .order_by(sa.c.Id)
        )
        self.select_runs_audits: Select[Any] = (
            select(
                ra.c.Id,
                ra.c.QueuedTaskId,
                ra.c.ExecutedAt,
                ra.c.ExecutionTimeMs,
                ra.c.Status,
                ra.c.Exception,
            )
            .where(ra.c.QueuedTaskId == _id())
            .order_by(ra.c.Id)
        )

        self._cluster(tables)
        self._leases(tables)
        self._throttling(tables)
        self._batches(tables, columns)
        vars(self).update(retention_statements(tables))
        vars(self).update(count_statements(tables))

    def _batches(self, tables: TaskTables, columns: list[Any]) -> None:
        """Batches and workflows (docs/workflows.md): records, members, their progress."""
        t, bt = tables.tasks, tables.batches
        c, b = t.c, bt.c
        by_id = b.Id == _id()
        running = b.Status == BatchStatus.RUNNING.value
        self.insert_batch: Insert = insert(bt).values(
            {name: bindparam(name) for name in BATCH_COLUMNS}
        )
        self.select_batch: Select[Any] = select(*(b[n] for n in BATCH_COLUMNS)).where(by_id)
        # a member's terminal write: its outcome counted, then the record finished once
        # (a compare-and-set on Running) when the counters reach the total
        self.count_member: Update = (
            update(bt)
            .where(by_id)
            .values(
                Succeeded=b.Succeeded + bindparam("s", type_=Integer()),
                Failed=b.Failed + bindparam("f", type_=Integer()),
                Cancelled=b.Cancelled + bindparam("c", type_=Integer()),
            )
        )
        self.finish_batch: Update = (
            update(bt)
            .where(by_id, running, b.Succeeded + b.Failed + b.Cancelled >= b.Total)
            .values(
                Status=case(
                    (b.Succeeded >= b.Total, BatchStatus.COMPLETED.value),
                    else_=BatchStatus.FAILED.value,
                ),
                FinishedAtUtc=_ts("ts"),
            )
        )
        self.select_batch_status: Select[Any] = select(b.Status).where(by_id)
        # the locking read that orders a continuation's insert with a batch's finish (and
        # a member's retry with it: with its kind and whether it is a saga)
        self.select_batch_for_update: Select[Any] = (
            select(b.Status, b.Kind, b.Definition.is_not(None))
            .where(by_id)
            .with_for_update()
            .with_hint(bt, "WITH (UPDLOCK, ROWLOCK)", "mssql")
        )
        # cancelling a record: its status, a workflow's running groups, its unfinished
        # members (locked: a member starting or finishing meanwhile waits for the cancel)
        self.cancel_batch_record: Update = (
            update(bt)
            .where(by_id, running)
            .values(Status=BatchStatus.CANCELLED.value, FinishedAtUtc=_ts("ts"))
        )
        self.select_running_groups: Select[Any] = select(b.Id).where(
            b.WorkflowId == _id(), running, b.Kind == BatchKind.GROUP.value
        )
        # a member's retry in place: the row, its records' counts, the skipped continuations
        self.select_member_for_update: Select[Any] = (
            select(c.Status, c.BatchId, c.WorkflowId, c.BatchCounted, c.AuditLevel)
            .where(c.Id == _id())
            .with_for_update()
            .with_hint(t, "WITH (UPDLOCK, ROWLOCK)", "mssql")
        )
        self.requeue_member: Update = (
            update(t)
            .where(c.Id == _id())
            .values(
                Status=QueuedTaskStatus.QUEUED.value,
                Exception=None,
                OwnerNode=None,
                BatchCounted=False,
            )
        )
        self.uncount_member: Update = (
            update(bt)
            .where(by_id)
            .values(
                Failed=b.Failed - bindparam("f", type_=Integer()),
                Cancelled=b.Cancelled - bindparam("c", type_=Integer()),
                Status=BatchStatus.RUNNING.value,
                FinishedAtUtc=None,
            )
        )
        self.select_skipped_for_revive: Select[Any] = select(
            c.Id, c.BatchId, c.WorkflowId, c.BatchCounted, c.AuditLevel
        ).where(
            c.ParentTaskId == _id(),
            c.Status == QueuedTaskStatus.CANCELLED.value,
            c.Exception == _text("reason"),
        )
        self.revive_child: Update = (
            update(t)
            .where(c.Id == _id())
            .values(
                Status=QueuedTaskStatus.WAITING_PARENT.value, Exception=None, BatchCounted=False
            )
        )
        unfinished = c.Status.not_in(
            [literal_column(f"'{s.value}'") for s in QueuedTaskStatus if s.is_terminal]
        )
        for name, column in (("batch", c.BatchId), ("workflow", c.WorkflowId)):
            members = select(*columns).where(column == _id()).order_by(c.CreatedAtUtc, c.Id)
            setattr(self, f"select_{name}_members", members)
            setattr(
                self,
                f"select_unfinished_{name}_members",
                select(c.Id, c.AuditLevel)
                .where(column == _id(), unfinished)
                .with_for_update()
                .with_hint(t, "WITH (UPDLOCK, ROWLOCK)", "mssql"),
            )
        # the continuations of a task or a record, in any status (the ParentTaskId index)
        self.select_continuations: Select[Any] = (
            select(*columns)
            .where(c.ParentTaskId == _id())
            .order_by(c.CreatedAtUtc, c.Id)
            .limit(bindparam("take", type_=Integer()))
        )
        self.select_batch_members: Select[Any]
        self.select_workflow_members: Select[Any]
        self.select_unfinished_batch_members: Select[Any]
        self.select_unfinished_workflow_members: Select[Any]

    def _leases(self, tables: TaskTables) -> None:
        """The statements of the maintenance leases (one node runs a chore at a time)."""
        ls = tables.leases
        name, owner = ls.c.Name == _text("name"), _id("owner")
        self.take_lease: Update = (
            update(ls)
            .where(name, or_(ls.c.Owner == owner, ls.c.ExpiresUtc < _ts("now")))
            .values(Owner=owner, ExpiresUtc=_ts("expires"))
        )
        self.insert_lease: Insert = insert(ls).values(
            Name=_text("name"), Owner=_id("owner"), ExpiresUtc=_ts("expires")
        )
        self.release_lease: Delete = delete(ls).where(name, ls.c.Owner == owner)

    def _throttling(self, tables: TaskTables) -> None:
        """Cluster-wide throttling: rate-limit buckets (a compare-and-set on the TAT) and
        concurrency slots (held by live nodes)."""
        b, cs, n = tables.rate_buckets.c, tables.concurrency_slots.c, tables.nodes.c
        # (bound with the column's own type: a seek on SQL Server needs no conversion)
        scope_param = bindparam("scope", type_=b.ScopeHash.type)
        scope, tat = b.ScopeHash == scope_param, bindparam("tat", type_=BigInteger())
        self.select_rate_bucket: Select[Any] = select(b.Tat).where(scope)
        self.swap_rate_bucket: Update = (
            update(tables.rate_buckets)
            .where(scope, b.Tat == bindparam("old", type_=BigInteger()))
            .values(Tat=tat, UpdatedAtUtc=_ts("now"))
        )
        self.insert_rate_bucket: Insert = insert(tables.rate_buckets).values(
            ScopeHash=scope_param, Tat=tat, UpdatedAtUtc=_ts("now")
        )
        self.sweep_rate_buckets: Delete = delete(tables.rate_buckets).where(
            b.Tat < bindparam("before", type_=BigInteger())
        )
        slot_scope = cs.ScopeHash == scope_param
        free = or_(
            cs.NodeId.is_(None),
            cs.NodeId.not_in(select(n.Id).where(n.LeaseExpiresUtc > _ts("now"))),
        )
        self.select_concurrency_slots: Select[Any] = (
            select(cs.Slot, case((free, 1), else_=0))
            .where(slot_scope, cs.Slot < bindparam("limit", type_=Integer()))
            .order_by(cs.Slot)
        )
        slot = cs.Slot == bindparam("slot", type_=Integer())
        self.take_concurrency_slot: Update = (
            update(tables.concurrency_slots)
            .where(slot_scope, slot, free)
            .values(NodeId=_id("node"), AcquiredAtUtc=_ts("now"))
        )
        self.insert_concurrency_slot: Insert = insert(tables.concurrency_slots).values(
            ScopeHash=scope_param,
            Slot=bindparam("slot", type_=Integer()),
            NodeId=_id("node"),
            AcquiredAtUtc=_ts("now"),
        )
        self.release_concurrency_slot: Update = (
            update(tables.concurrency_slots)
            .where(slot_scope, slot, cs.NodeId == _id("node"))
            .values(NodeId=null(), AcquiredAtUtc=null())
        )
        self.release_node_slots: Update = (
            update(tables.concurrency_slots)
            .where(cs.NodeId == _id("node"))
            .values(NodeId=null(), AcquiredAtUtc=null())
        )

    def _cluster(self, tables: TaskTables) -> None:
        """The statements of cluster mode: node leases and row ownership."""
        t, nd = tables.tasks, tables.nodes
        c, n = t.c, nd.c
        node, now = _id("node"), _ts("now")
        self.insert_node: Insert = insert(nd).values(
            Id=_id(),
            HostName=_text("host"),
            Pid=bindparam("pid", type_=Integer()),
            StartedAtUtc=_ts("started"),
            LastHeartbeatUtc=_ts("heartbeat"),
            LeaseExpiresUtc=_ts("expires"),
            Queues=_text("queues"),
            RunsWorkers=bindparam("runs_workers", type_=Boolean()),
        )
        self.renew_lease: Update = (
            update(nd)
            .where(n.Id == _id(), n.LeaseExpiresUtc > now)
            .values(LastHeartbeatUtc=now, LeaseExpiresUtc=_ts("expires"))
        )
        self.select_nodes: Select[Any] = select(*[n[name] for name in NODE_COLUMNS]).order_by(
            n.StartedAtUtc, n.Id
        )
        self.delete_node: Delete = delete(nd).where(n.Id == _id())
        self.release_node_rows: Update = (
            update(t).where(c.OwnerNode == _id(), self.recoverable(now)).values(OwnerNode=null())
        )
        owns_recoverable = exists().where(c.OwnerNode == n.Id, self.recoverable(now))
        self.delete_dead_nodes: Delete = delete(nd).where(
            n.LeaseExpiresUtc < _ts("expired_before"), ~owns_recoverable
        )
        dead = select(n.Id).where(n.LeaseExpiresUtc <= now)
        self.claim_task: Update = (
            update(t)
            .where(
                c.Id == _id(),
                # no owner, its own, or an owner that is not a live node (its lease
                # expired, or it is not registered at all); Nodes.Id is never NULL
                or_(
                    c.OwnerNode.is_(None),
                    c.OwnerNode == node,
                    c.OwnerNode.not_in(select(n.Id).where(n.LeaseExpiresUtc > now)),
                    ~self.recoverable(now),  # finished or cancelled: nobody runs it
                ),
            )
            .values(OwnerNode=node)
        )
        self.select_cancelled_among: Select[Any] = select(c.Id).where(
            c.Id.in_(_ids("ids")), c.Status == QueuedTaskStatus.CANCELLED.value
        )
        # claim_orphans: the dead nodes, the candidates (locked, skipping rows another
        # claimer holds), the claim re-checking the orphan condition, the claimed rows
        self.select_dead_nodes: Select[Any] = dead.order_by(n.Id)
        due = _ts("due")
        unowned = c.OwnerNode.is_(None)
        orphaned = or_(unowned, c.OwnerNode.in_(_ids("dead")))
        due_by = or_(c.ScheduledExecutionUtc.is_(None), c.ScheduledExecutionUtc <= due)
        later = c.ScheduledExecutionUtc > _ts("later")

        def candidates(*where: ColumnElement[bool]) -> Select[Any]:
            return (
                select(c.Id)
                .where(self.recoverable(now), *where)
                .order_by(c.CreatedAtUtc, c.Id)
                .limit(bindparam("take", type_=Integer()))
                .with_for_update(skip_locked=True)
                # the planner would rather walk (CreatedAtUtc, Id) from the oldest row
                .with_hint(t, f"FORCE INDEX ({OWNER_INDEX})", dialect_name="mysql")
                .with_hint(t, f"FORCE INDEX ({OWNER_INDEX})", dialect_name="mariadb")
            )

        self.claim_unowned: Select[Any] = candidates(unowned)
        self.claim_unowned_due: Select[Any] = candidates(unowned, due_by)
        self.claim_unowned_later: Select[Any] = candidates(unowned, later)
        self.claim_orphaned: Select[Any] = candidates(orphaned)
        self.claim_orphaned_due: Select[Any] = candidates(orphaned, due_by)
        self.claim_orphaned_later: Select[Any] = candidates(orphaned, later)
        self.claim_rows: Update = (
            update(t)
            .where(
                c.Id.in_(_ids("ids")),
                or_(unowned, c.OwnerNode.in_(dead.where(n.Id != node))),
            )
            .values(OwnerNode=node)
        )
        self.select_claimed: Select[Any] = (
            select(*[c[name] for name in TASK_COLUMNS])
            .where(c.Id.in_(_ids("ids")), c.OwnerNode == node)
            .order_by(c.CreatedAtUtc, c.Id)
        )

    def claim_candidates(self, dead: bool, due: bool, later: bool = False) -> Select[Any]:
        """The candidate select of ``claim_orphans``: with dead owners, with a due time
        (``:due``), or only the rows scheduled after a time (``:later``)."""
        if later:
            return self.claim_orphaned_later if dead else self.claim_unowned_later
        if dead:
            return self.claim_orphaned_due if due else self.claim_orphaned
        return self.claim_unowned_due if due else self.claim_unowned

    def recoverable(self, now: ColumnElement[Any]) -> ColumnElement[bool]:
        """EverTask's recoverable predicate (``is_recoverable``) as a SQL condition."""
        t = self.tables.tasks
        c = t.c
        return and_(
            or_(c.MaxRuns.is_(None), func.coalesce(c.CurrentRunCount, 0) < c.MaxRuns),
            or_(c.RunUntil.is_(None), c.RunUntil >= now),
            recovery_index_predicate(t, self.tables.dialect),
        )

    def named(self) -> dict[str, Any]:
        """Every statement by name (for compile checks)."""
        return {
            name: value
            for name, value in vars(self).items()
            if isinstance(value, Insert | Update | Delete | Select)
        }
