"""``SqlTaskStorage``: the whole TaskStorage protocol on SQLAlchemy 2 async Core.

Writes go through the group-commit writer (:mod:`.writer`) on one dedicated
connection; reads use a separate pool. The rare writes of cluster mode (node leases,
claims of rows) run in short transactions of their own. The dialect-specific packages
subclass this and replace only the engines and the batch executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from evertask.clock import utc_now
from evertask.storage.models import (
    STAMPED_STATUSES,
    NodeInfo,
    QueuedTask,
    RunsAudit,
    StatusAudit,
    TaskBatch,
    TaskExecutionLog,
    TaskPage,
    TaskQuery,
    wants_runs_audit,
    wants_status_audit,
)
from evertask.storage.protocol import check_claim_window
from evertask_abstractions import AuditLevel, BatchKind, ConfigurationError, QueuedTaskStatus

from . import monitoring
from .counts import FOLD_BATCH, CountFilter, FoldCountsOp, counts_statement, floor_hour
from .errors import (
    StorageClosedError,
    StorageConnectionError,
    StorageSchemaError,
    is_lock_conflict,
)
from .executor import CoreExecutor, run_core_batch
from .migrate import apply_migrations, current_revision, head_revision
from .ops import (
    CancelBatchOp,
    Op,
    PauseQueueOp,
    PersistContinuationOp,
    PersistOp,
    PersistUnitOp,
    RecoveryCounterOp,
    RemoveOp,
    RetryMemberOp,
    RunOp,
    RunsAuditMode,
    SaveLogsOp,
    TransitionOp,
    TryQueuedOp,
    UpdateTaskOp,
)
from .retention import RetentionPolicy, RetentionResult, apply_retention
from .rows import (
    node_queues,
    to_batch,
    to_log,
    to_node,
    to_runs_audit,
    to_status_audit,
    to_task,
)
from .schema import TaskTables, build_tables, validate_schema_name
from .statements import BATCH_COLUMNS, Statements
from .writer import BatchExecutor, GroupCommitWriter

__all__ = ["RETENTION_LEASE", "RETENTION_LEASE_SECONDS", "SqlTaskStorage"]

_log = logging.getLogger("evertask.storage")

RETENTION_LEASE = "retention"
"""The maintenance lease a cleanup holds (one node cleans at a time)."""
RETENTION_LEASE_SECONDS = 60.0
"""How long a cleanup's lease lasts unless renewed (renewed every third of it)."""

_STATUS = {s.value: s for s in QueuedTaskStatus}
_NONE = AuditLevel.NONE
_WAITING = QueuedTaskStatus.WAITING_QUEUE
_COMPLETED = QueuedTaskStatus.COMPLETED


_SLOT_ATTEMPTS = 3
"""Compare-and-sets one concurrency-slot acquisition tries before it reports "none free"."""

_MESSAGE_MAX = 4000
_LEVEL_MAX = 20


def _fit(log: TaskExecutionLog) -> TaskExecutionLog:
    """A log record cut to the column sizes (Message 4000, Level 20 characters)."""
    if len(log.message) <= _MESSAGE_MAX and len(log.level) <= _LEVEL_MAX:
        return log
    message = log.message
    if len(message) > _MESSAGE_MAX:
        message = message[: _MESSAGE_MAX - 1] + "\u2026"
    return dataclasses.replace(log, message=message, level=log.level[:_LEVEL_MAX])


class SqlTaskStorage:
    """A :class:`~evertask.storage.TaskStorage` on any SQLAlchemy async database URL.

    Args:
        url: an async SQLAlchemy URL, e.g. ``mysql+aiomysql://user@host/db``.
        schema: the schema holding the tables (``None``: the connection's default).
        auto_apply_migrations: migrate the tables at :meth:`open` (otherwise verify
            that a DBA applied them; see ``python -m evertask_storage_efcore_like sql``).
        now: the clock stamping audits and executions (aware UTC).
        pool_size: reader connections.
        max_batch_size: most writes committed in one transaction.
        max_batch_delay: seconds a batch may wait for more concurrent writes to join it.
        writer_connections: batches in flight at once, each on its own connection.
        engine_options: extra ``create_async_engine`` keyword arguments.
        count_fold_interval: seconds between folds of the count deltas (see
            :meth:`fold_counts`).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        schema: str | None = None,
        auto_apply_migrations: bool = True,
        now: Callable[[], datetime] = utc_now,
        pool_size: int = 5,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        writer_connections: int = 1,
        engine_options: Mapping[str, Any] | None = None,
        count_fold_interval: float = 1.0,
    ) -> None:
        if not count_fold_interval > 0:
            raise ConfigurationError("count_fold_interval must be a positive number of seconds.")
        if writer_connections < 1:
            raise ConfigurationError("writer_connections must be at least 1.")
        if pool_size < 1:
            raise ConfigurationError("pool_size must be at least 1.")
        if max_batch_size < 1:
            raise ConfigurationError("max_batch_size must be at least 1.")
        if max_batch_delay < 0:
            raise ConfigurationError("max_batch_delay must not be negative.")
        self.url = make_url(url) if isinstance(url, str) else url
        self.schema = validate_schema_name(schema)
        self.auto_apply_migrations = auto_apply_migrations
        self.pool_size = pool_size
        self.max_batch_size = max_batch_size
        self.max_batch_delay = max_batch_delay
        self.writer_connections = writer_connections
        self.engine_options: dict[str, Any] = dict(engine_options or {})
        self._now = now
        self.tables: TaskTables = build_tables(self.schema, self.url.get_backend_name())
        self.statements = Statements(self.tables)
        self._reader: AsyncEngine | None = None
        self._writer_engine: AsyncEngine | None = None
        self._writer: GroupCommitWriter | None = None
        # audit times of withdrawn InProgress writes, written with the task's next status
        self._carried: dict[uuid.UUID, datetime] = {}
        self._executors: list[BatchExecutor] = []
        self.count_fold_interval = count_fold_interval
        self._folder: asyncio.Task[None] | None = None

    # -- customisation points for the dialect packages ---------------------------------------
    def _create_engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        """The reader engine and the writer engine (one connection is enough for it)."""
        reader = create_async_engine(
            self.url,
            pool_size=self.pool_size,
            max_overflow=0,
            isolation_level="AUTOCOMMIT",
            **self.engine_options,
        )
        writer = create_async_engine(
            self.url, pool_size=self.writer_connections, max_overflow=0, **self.engine_options
        )
        return reader, writer

    async def _create_executor(self, engine: AsyncEngine) -> BatchExecutor:
        """The batch executor of the group-commit writer."""
        return CoreExecutor(engine.connect, self.statements)

    def describe(self) -> str:
        """The database this storage uses, password hidden (for messages)."""
        return self.url.render_as_string(hide_password=True)

    def _connect_hint(self) -> str:
        return (
            "Check that the database server is running and reachable from this host, the "
            "credentials, and that the database exists."
        )

    @contextlib.asynccontextmanager
    async def admin_connection(self) -> AsyncIterator[AsyncConnection]:
        """One connection like the writer's, without opening the storage: for migration
        tools (``evertask db``), which must work on tables at any revision.

        Raises ``StorageConnectionError`` when the database cannot be reached.
        """
        reader, writer_engine = self._create_engines()
        await reader.dispose()  # (never connected)
        try:
            try:
                connection = await writer_engine.connect()
            except (TimeoutError, OSError, sa_exc.DBAPIError) as error:
                raise StorageConnectionError(
                    f"Cannot connect to {self.describe()}: {error}. {self._connect_hint()}"
                ) from error
            try:
                yield connection
            finally:
                await connection.close()
        finally:
            await writer_engine.dispose()

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` succeeded and :meth:`close` has not been called since."""
        return self._writer is not None

    async def open(self) -> None:
        """Connect, migrate (or verify the schema) and start the group-commit writer."""
        if self._writer is not None:
            return
        reader, writer_engine = self._create_engines()
        try:
            try:
                connection = await writer_engine.connect()
            except (TimeoutError, OSError, sa_exc.DBAPIError) as error:
                raise StorageConnectionError(
                    f"Cannot connect to {self.describe()}: {error}. {self._connect_hint()}"
                ) from error
            try:
                await self._prepare_schema(connection)
            finally:
                await connection.close()
            executors = [
                await self._create_executor(writer_engine) for _ in range(self.writer_connections)
            ]
        except BaseException:
            await reader.dispose()
            await writer_engine.dispose()
            raise
        self._reader, self._writer_engine, self._executors = reader, writer_engine, executors
        self._writer = GroupCommitWriter(
            executors, max_batch=self.max_batch_size, max_delay=self.max_batch_delay
        )
        self._writer.start()
        self._folder = asyncio.get_running_loop().create_task(
            self._fold_loop(), name="evertask-count-fold"
        )

    async def _prepare_schema(self, connection: AsyncConnection) -> None:
        head = head_revision()
        if self.auto_apply_migrations:
            try:
                await apply_migrations(connection, self.schema)
            except sa_exc.DBAPIError as error:
                raise StorageSchemaError(
                    f"Applying the EverTask migrations to {self.describe()} failed: {error}. "
                    "Check that the user may create tables (and the schema), or apply the SQL "
                    "printed by `python -m evertask_storage_efcore_like sql --dialect "
                    f"{connection.dialect.name}` and pass auto_apply_migrations=False."
                ) from error
            return
        revision = await current_revision(connection, self.schema)
        if revision != head:
            raise StorageSchemaError(
                f"The EverTask tables in {self.describe()} are at migration {revision!r}, this "
                f"version needs {head!r}. Apply the SQL printed by `python -m "
                f"evertask_storage_efcore_like sql --dialect {connection.dialect.name}"
                + (f" --schema {self.schema}" if self.schema else "")
                + "`, or pass auto_apply_migrations=True."
            )

    async def close(self) -> None:
        """Commit pending writes, then release every connection."""
        folder, self._folder = self._folder, None
        if folder is not None:
            folder.cancel()
            await asyncio.gather(folder, return_exceptions=True)
        writer, self._writer = self._writer, None
        executors, self._executors = self._executors, []
        reader, self._reader = self._reader, None
        writer_engine, self._writer_engine = self._writer_engine, None
        try:
            if writer is not None:
                await writer.close()
        finally:
            for executor in executors:
                await executor.close()
            if reader is not None:
                await reader.dispose()
            if writer_engine is not None:
                await writer_engine.dispose()

    # -- plumbing --------------------------------------------------------------------------
    def _submit(self, op: Op) -> asyncio.Future[Any]:
        writer = self._writer
        if writer is None:
            raise StorageClosedError(
                f"The storage for {self.describe()} is not open; start the host (or call "
                "`await storage.open()`) first."
            )
        return writer.submit(op)

    def _reader_engine(self) -> AsyncEngine:
        reader = self._reader
        if reader is None:
            raise StorageClosedError(
                f"The storage for {self.describe()} is not open; start the host (or call "
                "`await storage.open()`) first."
            )
        return reader

    async def _rows(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        async with self._reader_engine().connect() as connection:
            result = await connection.execute(statement, dict(params or {}))
            return result.all()

    async def _scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        async with self._reader_engine().connect() as connection:
            return (await connection.execute(statement, dict(params or {}))).scalar()

    @property
    def writer(self) -> GroupCommitWriter | None:
        """The group-commit writer (for statistics), or ``None`` when closed."""
        return self._writer

    # -- dispatch and lookup ---------------------------------------------------------------
    async def persist(self, task: QueuedTask) -> None:
        """Insert a row (and its status audit unless WaitingQueue); raise
        ``TaskKeyConflictError`` if the key is taken."""
        level = task.audit_level
        status = task.status
        audit = status is not _WAITING and wants_status_audit(level, status, task.exception)
        await self._submit(PersistOp(task, self._now() if audit else None))

    async def get(self, task_id: uuid.UUID) -> QueuedTask | None:
        """The row, or ``None``."""
        rows = await self._rows(self.statements.select_task, {"id": task_id})
        return to_task(rows[0]) if rows else None

    async def get_by_task_key(self, task_key: str) -> QueuedTask | None:
        """The row holding ``task_key`` (exact, case-sensitive), or ``None``."""
        rows = await self._rows(self.statements.select_task_by_key, {"key": task_key})
        return to_task(rows[0]) if rows else None

    async def update_task(self, task: QueuedTask, *, revive: bool = False) -> None:
        """Overwrite the definition columns (see the protocol)."""
        await self._submit(UpdateTaskOp(task, revive))

    async def remove(self, task_id: uuid.UUID) -> None:
        """Delete the row with its audits and logs."""
        await self._submit(RemoveOp(task_id))

    async def retrieve_pending(
        self, last_created_at: datetime | None, last_id: uuid.UUID | None, take: int
    ) -> list[QueuedTask]:
        """Recoverable rows after the keyset ``(created_at_utc, id)``, ascending."""
        first, after = self._pending_statements()
        params: dict[str, Any] = {"now": self._now(), "take": max(0, take)}
        if last_created_at is not None and last_id is not None:
            params["last_created"] = last_created_at
            params["last_id"] = last_id
            rows = await self._rows(after, params)
        else:
            rows = await self._rows(first, params)
        return [to_task(r) for r in rows]

    def _pending_statements(self) -> tuple[Executable, Executable]:
        """The first-page and next-page recovery queries (a dialect may pin their index)."""
        return self.statements.select_pending_first, self.statements.select_pending_after

    # -- status transitions ----------------------------------------------------------------
    def _transition(
        self,
        task_id: uuid.UUID,
        status: QueuedTaskStatus,
        exception: str | None,
        level: AuditLevel,
        ms: float | None = None,
        *,
        clear_next: bool = False,
        must_exist: bool = False,
        result: str | None = None,
        owner: uuid.UUID | None = None,
        room: int | None = None,
    ) -> asyncio.Future[Any]:
        now = self._now()
        audit = wants_status_audit(level, status, exception)
        prior = self._carried.get(task_id) if self._carried else None
        future = self._submit(
            TransitionOp(
                task_id,
                status.value,
                exception,
                now if status in STAMPED_STATUSES else None,
                ms,
                clear_next,
                now if audit else None,
                must_exist,
                prior,
                result,
                now if status.is_terminal else None,
                owner,
                room,
            )
        )
        if prior is not None:  # carried until a write of the task commits it (retries too)
            future.add_done_callback(functools.partial(self._committed_prior, task_id))
        return future

    def _committed_prior(self, task_id: uuid.UUID, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._carried.pop(task_id, None)

    async def set_queued(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark Queued."""
        await self._transition(task_id, QueuedTaskStatus.QUEUED, None, audit_level)

    async def try_set_queued_if_recoverable(
        self, task_id: uuid.UUID, audit_level: AuditLevel, owner: uuid.UUID | None = None
    ) -> bool:
        """Compare-and-set to Queued; never revives a finished row (nor one of another
        owner, with ``owner``)."""
        now = self._now()
        audit = wants_status_audit(audit_level, QueuedTaskStatus.QUEUED, None)
        return bool(await self._submit(TryQueuedOp(task_id, now, now if audit else None, owner)))

    async def set_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> None:
        """Mark InProgress."""
        await self._transition(task_id, QueuedTaskStatus.IN_PROGRESS, None, audit_level)

    def begin_in_progress(self, task_id: uuid.UUID, audit_level: AuditLevel) -> asyncio.Future[Any]:
        """Queue the InProgress write without waiting (see ``PipelinedStorage``)."""
        return self._transition(task_id, QueuedTaskStatus.IN_PROGRESS, None, audit_level)

    def withdraw_in_progress(self, pending: Awaitable[None], audit_level: AuditLevel) -> bool:
        """Take back a queued InProgress write that no transaction has taken yet; the next
        status write of the task replaces it and carries its audit row, if it had one."""
        writer = self._writer
        if writer is None or not isinstance(pending, asyncio.Future):
            return False
        op = writer.withdraw(pending)
        if op is None:
            return False
        if isinstance(op, TransitionOp) and op.audit_ts is not None:
            self._carried[op.task_id] = op.audit_ts
        return True

    async def set_completed(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        audit_level: AuditLevel,
        result: str | None = None,
        *,
        owner: uuid.UUID | None = None,
        room: int | None = None,
    ) -> list[QueuedTask]:
        """Mark Completed with its duration and result; release its continuations in the
        same transaction, ``room`` of them handed to ``owner`` (the ones that became
        Queued)."""
        released = await self._transition(
            task_id,
            QueuedTaskStatus.COMPLETED,
            None,
            audit_level,
            execution_time_ms,
            result=result,
            owner=owner,
            room=room,
        )
        return released or []

    async def set_cancelled_by_user(self, task_id: uuid.UUID, audit_level: AuditLevel) -> int:
        """Mark Cancelled; its waiting continuations are cancelled with it."""
        await self._transition(task_id, QueuedTaskStatus.CANCELLED, None, audit_level)
        return 0

    async def set_cancelled_by_service(
        self, task_id: uuid.UUID, exception: str | None, audit_level: AuditLevel
    ) -> None:
        """Mark ServiceStopped."""
        await self._transition(task_id, QueuedTaskStatus.SERVICE_STOPPED, exception, audit_level)

    async def set_status(
        self,
        task_id: uuid.UUID,
        status: QueuedTaskStatus,
        exception: str | None,
        audit_level: AuditLevel,
        execution_time_ms: float | None = None,
        *,
        owner: uuid.UUID | None = None,
        room: int | None = None,
    ) -> list[QueuedTask]:
        """Generic transition; a terminal status releases the continuations, ``room`` of
        them handed to ``owner`` (the ones that became Queued)."""
        released = await self._transition(
            task_id, status, exception, audit_level, execution_time_ms, owner=owner, room=room
        )
        return released or []

    # -- continuations ---------------------------------------------------------------------
    async def persist_continuation(self, task: QueuedTask) -> QueuedTaskStatus:
        """Insert a continuation (see the protocol)."""
        status: QueuedTaskStatus = await self._submit(PersistContinuationOp(task, self._now()))
        return status

    async def released_children(self, parent_id: uuid.UUID) -> list[QueuedTask]:
        """Queued unowned continuations of ``parent_id``, oldest first."""
        rows = await self._rows(self.statements.select_released_children, {"id": parent_id})
        return [to_task(r) for r in rows]

    # -- batches (BatchStore) --------------------------------------------------------------
    async def persist_unit(self, batches: Sequence[TaskBatch], tasks: Sequence[QueuedTask]) -> None:
        """Insert records and rows in one transaction: all or none."""
        await self._submit(PersistUnitOp(tuple(batches), tuple(tasks), self._now()))

    async def get_batch(self, batch_id: uuid.UUID) -> TaskBatch | None:
        """One record, or ``None``."""
        rows = await self._rows(self.statements.select_batch, {"id": batch_id})
        return to_batch(rows[0]) if rows else None

    async def list_batches(
        self,
        *,
        kinds: Sequence[str] = (),
        workflow_id: uuid.UUID | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[TaskBatch]:
        """Records newest first, of ``kinds`` (all when empty) or of one workflow."""
        b = self.tables.batches.c
        statement = select(*(b[n] for n in BATCH_COLUMNS))
        if kinds:
            statement = statement.where(b.Kind.in_([BatchKind(k).value for k in kinds]))
        if workflow_id is not None:
            statement = statement.where(b.WorkflowId == workflow_id)
        statement = (
            statement.order_by(b.CreatedAtUtc.desc(), b.Id.desc())
            .limit(max(limit, 0))
            .offset(max(offset, 0))
        )
        return [to_batch(r) for r in await self._rows(statement)]

    async def batch_members(self, batch_id: uuid.UUID) -> list[QueuedTask]:
        """The rows counting in a record (a workflow: its steps), in dispatch order."""
        st = self.statements
        batch = await self.get_batch(batch_id)
        if batch is None:
            return []
        statement = (
            st.select_workflow_members
            if batch.kind is BatchKind.WORKFLOW
            else st.select_batch_members
        )
        return [to_task(r) for r in await self._rows(statement, {"id": batch_id})]

    async def retry_member(self, task_id: uuid.UUID) -> bool:
        """Requeue a Failed or Cancelled batch member in place (see the protocol)."""
        outcome = await self._submit(RetryMemberOp(task_id, self._now()))
        return bool(outcome)

    async def continuations(self, parent_id: uuid.UUID, *, limit: int = 100) -> list[QueuedTask]:
        """The continuations of a task or a record in any status, oldest first."""
        rows = await self._rows(
            self.statements.select_continuations, {"id": parent_id, "take": max(limit, 0)}
        )
        return [to_task(r) for r in rows]

    async def cancel_batch(self, batch_id: uuid.UUID) -> list[uuid.UUID] | None:
        """Cancel a record, its unfinished members and its continuations (see the protocol)."""
        cancelled: list[uuid.UUID] | None = await self._submit(CancelBatchOp(batch_id, self._now()))
        return cancelled

    # -- recurring accounting --------------------------------------------------------------
    async def get_current_run_count(self, task_id: uuid.UUID) -> int:
        """Runs so far (0 if the row is missing)."""
        value = await self._scalar(self.statements.select_run_count, {"id": task_id})
        return int(value or 0)

    async def update_current_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        """Count a run, set the next one, write its runs audit (status taken from the row)."""
        if audit_level is _NONE:
            mode = RunsAuditMode.NEVER
        elif audit_level is AuditLevel.ERRORS_ONLY:
            mode = RunsAuditMode.IF_ERROR
        else:
            mode = RunsAuditMode.ALWAYS
        await self._submit(
            RunOp(task_id, execution_time_ms, next_run, self._now(), False, False, mode)
        )

    async def complete_recurring_run(
        self,
        task_id: uuid.UUID,
        execution_time_ms: float,
        next_run: datetime | None,
        audit_level: AuditLevel,
    ) -> None:
        """Atomically: Completed, count the run, next run, status and runs audits."""
        status_audit = wants_status_audit(audit_level, _COMPLETED, None)
        runs = wants_runs_audit(audit_level, _COMPLETED, None)
        await self._submit(
            RunOp(
                task_id,
                execution_time_ms,
                next_run,
                self._now(),
                True,
                status_audit,
                RunsAuditMode.ALWAYS if runs else RunsAuditMode.NEVER,
            )
        )

    async def set_recurring_series_completed(
        self, task_id: uuid.UUID, execution_time_ms: float, audit_level: AuditLevel
    ) -> None:
        """Completed and no next run, without counting a run."""
        await self._transition(
            task_id,
            _COMPLETED,
            None,
            audit_level,
            execution_time_ms,
            clear_next=True,
            must_exist=True,
        )

    async def set_recurring_task_poisoned(
        self, task_id: uuid.UUID, exception: str, audit_level: AuditLevel
    ) -> None:
        """Failed and no next run (terminal)."""
        await self._transition(
            task_id, QueuedTaskStatus.FAILED, exception, audit_level, clear_next=True
        )

    async def increment_recovery_failure(self, task_id: uuid.UUID) -> int:
        """Count a failed recovery; return the new count (0 if the row is missing)."""
        return int(await self._submit(RecoveryCounterOp(task_id, True)))

    async def clear_recovery_failure(self, task_id: uuid.UUID) -> None:
        """Reset the failed-recovery counter."""
        await self._submit(RecoveryCounterOp(task_id, False))

    # -- execution logs and audits ---------------------------------------------------------
    async def save_execution_logs(
        self, task_id: uuid.UUID, logs: Sequence[TaskExecutionLog]
    ) -> None:
        """Insert captured logs (no-op when empty or when the task is gone)."""
        if logs:
            await self._submit(SaveLogsOp(task_id, tuple(_fit(log) for log in logs)))

    async def get_execution_logs(
        self,
        task_id: uuid.UUID,
        skip: int = 0,
        take: int | None = None,
        level: str | None = None,
    ) -> list[TaskExecutionLog]:
        """Captured logs in capture order, optionally paged and filtered by level."""
        statement = monitoring.logs_statement(self.tables, task_id, skip, take, level)
        return [to_log(r) for r in await self._rows(statement)]

    async def count_execution_logs(self, task_id: uuid.UUID, level: str | None = None) -> int:
        """Number of captured logs."""
        return int(await self._scalar(monitoring.count_logs_statement(self.tables, task_id, level)))

    async def get_status_audits(self, task_id: uuid.UUID) -> list[StatusAudit]:
        """Status history, oldest first."""
        rows = await self._rows(self.statements.select_status_audits, {"id": task_id})
        return [to_status_audit(r) for r in rows]

    async def get_runs_audits(self, task_id: uuid.UUID) -> list[RunsAudit]:
        """Run history, oldest first."""
        rows = await self._rows(self.statements.select_runs_audits, {"id": task_id})
        return [to_runs_audit(r) for r in rows]

    # -- queue state -----------------------------------------------------------------------
    async def get_paused_queues(self) -> set[str]:
        """Names of the queues an operator paused."""
        return {name for (name,) in await self._rows(self.statements.select_paused_queues)}

    async def set_queue_paused(self, queue_name: str, paused: bool) -> None:
        """Remember that a queue is paused (or resumed); survives restarts."""
        await self._submit(PauseQueueOp(queue_name, paused, self._now()))

    # -- cluster ---------------------------------------------------------------------------
    def _cluster_engine(self) -> AsyncEngine:
        """The engine of the cluster's transactions (default: the AUTOCOMMIT reader pool)."""
        return self._reader_engine()

    @contextlib.asynccontextmanager
    async def _claim_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a short transaction of its own, outside the group-commit writer.

        READ COMMITTED, where the candidate rows of a claim are locked skipping those
        another claimer holds. On SQLite (one writer per file, shared by every process)
        the transaction starts with ``BEGIN IMMEDIATE``: claimers take turns, waiting up
        to the busy timeout.
        """
        async with self._cluster_engine().connect() as connection:
            if connection.dialect.name != "sqlite":
                committed = await connection.execution_options(isolation_level="READ COMMITTED")
                async with committed.begin():
                    yield committed
                return
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                with contextlib.suppress(Exception):
                    await connection.exec_driver_sql("ROLLBACK")
                raise
            await connection.exec_driver_sql("COMMIT")

    async def _cluster_write(self, statement: Executable, params: Mapping[str, Any]) -> int:
        """Run one write of the cluster in its own transaction; return its row count."""
        async with self._claim_transaction() as connection:
            return int((await connection.execute(statement, dict(params))).rowcount)

    async def register_node(self, node: NodeInfo) -> None:
        """Insert the node's row."""
        await self._cluster_write(
            self.statements.insert_node,
            {
                "id": node.id,
                "host": node.host_name,
                "pid": node.pid,
                "started": node.started_at_utc,
                "heartbeat": node.last_heartbeat_utc,
                "expires": node.lease_expires_utc,
                "queues": node_queues(node.queues),
                "runs_workers": node.runs_workers,
            },
        )

    async def renew_lease(self, node_id: uuid.UUID, now: datetime, expires: datetime) -> bool:
        """Extend the node's lease if it is still valid at ``now``."""
        n = await self._cluster_write(
            self.statements.renew_lease, {"id": node_id, "now": now, "expires": expires}
        )
        return n == 1

    async def deregister_node(self, node_id: uuid.UUID) -> int:
        """Release the node's recoverable rows and delete its row, in one transaction."""
        st = self.statements
        async with self._claim_transaction() as connection:
            released = await connection.execute(
                st.release_node_rows, {"id": node_id, "now": self._now()}
            )
            await connection.execute(st.delete_node, {"id": node_id})
            return int(released.rowcount)

    async def list_nodes(self) -> list[NodeInfo]:
        """Every node, oldest first."""
        return [to_node(r) for r in await self._rows(self.statements.select_nodes)]

    async def remove_dead_nodes(self, expired_before: datetime) -> int:
        """Delete the nodes whose lease expired before ``expired_before`` and that own no
        recoverable row.

        Together with :meth:`deregister_node` this keeps every owner of a recoverable row
        registered, which :meth:`claim_orphans` relies on (see there).
        """
        return await self._cluster_write(
            self.statements.delete_dead_nodes,
            {"expired_before": expired_before, "now": self._now()},
        )

    async def claim_orphans(
        self,
        node_id: uuid.UUID,
        now: datetime,
        take: int,
        due_before: datetime | None = None,
        scheduled_after: datetime | None = None,
    ) -> list[QueuedTask]:
        """Take up to ``take`` recoverable rows without a live owner, oldest first.

        One transaction: the dead nodes, the candidate rows (unowned, or owned by a dead
        node; locked, skipping rows a concurrent claimer holds), the claim (re-checking
        that no live node owns them), the claimed rows. The candidates are sought through
        ``IX_QueuedTasks_OwnerNode_Status``, so finished history is not scanned; a row
        whose owner is not registered at all is therefore not an orphan here (a scan
        would be needed to find it). Nodes are only deleted owning no recoverable row
        (:meth:`deregister_node` releases them first, :meth:`remove_dead_nodes` keeps
        such nodes), so the owner of a recoverable row is registered unless a finished
        row is revived after its dead owner was removed; :meth:`claim_task` takes such a
        row.
        """
        check_claim_window(due_before, scheduled_after)
        if take <= 0:
            return []
        st = self.statements
        async with self._claim_transaction() as connection:
            dead = [
                dead_id
                for (dead_id,) in (await connection.execute(st.select_dead_nodes, {"now": now}))
                if dead_id != node_id
            ]
            params: dict[str, Any] = {"now": now, "take": take}
            if dead:
                params["dead"] = dead
            if due_before is not None:
                params["due"] = due_before
            if scheduled_after is not None:
                params["later"] = scheduled_after
            candidates = st.claim_candidates(
                bool(dead), due_before is not None, scheduled_after is not None
            )
            ids = [task_id for (task_id,) in await connection.execute(candidates, params)]
            if not ids:
                return []
            claim = {"ids": ids, "node": node_id, "now": now}
            await connection.execute(st.claim_rows, claim)
            rows = (await connection.execute(st.select_claimed, claim)).all()
        return [to_task(r) for r in rows]

    async def cancelled_among(self, task_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these rows are Cancelled (one indexed query)."""
        if not task_ids:
            return set()
        rows = await self._rows(self.statements.select_cancelled_among, {"ids": list(task_ids)})
        return {task_id for (task_id,) in rows}

    async def claim_task(self, task_id: uuid.UUID, node_id: uuid.UUID, now: datetime) -> bool:
        """Own one row unless a live node owns it and may run it (one atomic UPDATE)."""
        n = await self._cluster_write(
            self.statements.claim_task, {"id": task_id, "node": node_id, "now": now}
        )
        return n == 1

    # -- cluster-wide throttling (RateLimitStore, ConcurrencySlotStore) --------------------
    async def read_rate_bucket(self, scope: str) -> int | None:
        """The TAT (microseconds since the epoch) of a rate-limit bucket, or ``None``."""
        async with self._cluster_engine().connect() as connection:
            result = await connection.execute(self.statements.select_rate_bucket, {"scope": scope})
            tat = result.scalar()
        return None if tat is None else int(tat)

    async def swap_rate_bucket(
        self, scope: str, expected: int | None, tat: int, now: datetime
    ) -> bool:
        """Compare-and-set a bucket's TAT: from ``expected`` (``None``: the bucket does not
        exist and is inserted) to ``tat``; ``False`` when another node changed it first.
        One autocommitted statement (one round trip)."""
        st = self.statements
        params = {"scope": scope, "tat": tat, "now": now, "old": expected}
        async with self._cluster_engine().connect() as connection:
            if expected is not None:
                result = await connection.execute(st.swap_rate_bucket, params)
                return int(result.rowcount) == 1
            try:
                await connection.execute(st.insert_rate_bucket, params)
            except sa_exc.IntegrityError:
                with contextlib.suppress(Exception):
                    await connection.rollback()
                return False  # another node created it first
            return True

    async def sweep_rate_buckets(self, idle_before: int) -> int:
        """Delete the buckets whose TAT is before ``idle_before`` (full again, so equal to
        absent); safe to run on several nodes at once."""
        async with self._cluster_engine().connect() as connection:
            result = await connection.execute(
                self.statements.sweep_rate_buckets, {"before": idle_before}
            )
            return int(result.rowcount)

    async def acquire_concurrency_slot(
        self, scope: str, limit: int, node_id: uuid.UUID, now: datetime
    ) -> int | None:
        """Take one of the ``limit`` slots of ``scope`` for ``node_id`` (a slot is free when
        no live node holds it); return its number, or ``None`` when all are held.

        One read of the scope's slots, then a compare-and-set on a free one (an insert for
        a slot never used): two round trips when a slot is free.
        """
        st = self.statements
        params: dict[str, Any] = {"scope": scope, "limit": limit, "now": now, "node": node_id}
        async with self._cluster_engine().connect() as connection:
            rows = (await connection.execute(st.select_concurrency_slots, params)).all()
            seen = {int(slot) for slot, _ in rows}
            free = [int(slot) for slot, is_free in rows if is_free]
            random.shuffle(free)  # concurrent takers rarely pick the same slot
            for slot in free[:_SLOT_ATTEMPTS]:
                result = await connection.execute(
                    st.take_concurrency_slot, {**params, "slot": slot}
                )
                if int(result.rowcount) == 1:
                    return slot
            for slot in [k for k in range(limit) if k not in seen][:_SLOT_ATTEMPTS]:
                try:
                    await connection.execute(st.insert_concurrency_slot, {**params, "slot": slot})
                except sa_exc.IntegrityError:
                    with contextlib.suppress(Exception):
                        await connection.rollback()
                    continue
                return slot
        return None

    async def release_concurrency_slot(self, scope: str, slot: int, node_id: uuid.UUID) -> None:
        """Give a slot back (no-op unless ``node_id`` holds it)."""
        async with self._cluster_engine().connect() as connection:
            await connection.execute(
                self.statements.release_concurrency_slot,
                {"scope": scope, "slot": slot, "node": node_id},
            )

    async def release_node_slots(self, node_id: uuid.UUID) -> int:
        """Give back every slot ``node_id`` holds (at a stop); return how many."""
        async with self._cluster_engine().connect() as connection:
            result = await connection.execute(self.statements.release_node_slots, {"node": node_id})
            return int(result.rowcount)

    # -- monitoring ------------------------------------------------------------------------
    async def query_tasks(self, query: TaskQuery) -> TaskPage:
        """A filtered, sorted page (one indexed query) and the exact number of matches
        (:meth:`count_tasks`)."""
        page, size = monitoring.page_bounds(query)
        rows = await self._rows(monitoring.task_page_statement(self.tables, query))
        return TaskPage(
            items=[to_task(r) for r in rows],
            total_count=await self.count_tasks(query),
            page=page,
            page_size=size,
        )

    async def count_tasks(self, query: TaskQuery) -> int:
        """How many tasks match ``query`` (its page ignored): from the counts (see
        :mod:`.counts`), or a ``COUNT(*)`` when the query filters by text."""
        if query.task_type_contains or query.search:
            return int(await self._scalar(monitoring.task_count_statement(self.tables, query)))
        where = CountFilter(
            query.created_after,
            query.created_before,
            query.queue_name,
            query.is_recurring,
            None if query.statuses is None else frozenset(s.value for s in query.statuses),
        )
        return sum(n for *_, n in await self._count_rows(where))

    async def _count_rows(
        self, where: CountFilter, edges: Sequence[datetime] | None = None
    ) -> list[tuple[str, str, int, int]]:
        """``(status, queue, bucket, n)`` of the tasks ``where`` selects (one statement)."""
        statement = counts_statement(self.tables, where, edges)
        if statement is None:
            return []
        rows = await self._rows(statement)
        return [(s, q, int(b), int(n)) for s, q, _r, b, n in rows if n]

    async def count_by_status(
        self, created_since: datetime | None = None
    ) -> dict[QueuedTaskStatus, int]:
        """Tasks per status (finished ones from the counts, live ones by index)."""
        out: dict[QueuedTaskStatus, int] = {}
        for s, _q, _b, n in await self._count_rows(CountFilter(since=created_since)):
            if s in _STATUS:
                out[_STATUS[s]] = out.get(_STATUS[s], 0) + n
        return {status: n for status, n in out.items() if n}

    async def count_by_queue_and_status(
        self, created_since: datetime | None = None
    ) -> dict[tuple[str, QueuedTaskStatus], int]:
        """Tasks per (queue, status)."""
        out: dict[tuple[str, QueuedTaskStatus], int] = {}
        for s, q, _b, n in await self._count_rows(CountFilter(since=created_since)):
            if s in _STATUS:
                key = (q, _STATUS[s])
                out[key] = out.get(key, 0) + n
        return {key: n for key, n in out.items() if n}

    async def count_by_time_bucket(
        self, start: datetime, width: timedelta, buckets: int
    ) -> list[dict[QueuedTaskStatus, int]]:
        """Tasks per status created in each bucket ``[start + i*width, start +
        (i+1)*width)``: one statement when the inner edges are whole hours."""
        edges = [start + width * i for i in range(buckets + 1)]
        out: list[dict[QueuedTaskStatus, int]] = [{} for _ in range(buckets)]

        def add(bucket: int, status: str, n: int) -> None:
            if status in _STATUS:
                counts = out[bucket]
                counts[_STATUS[status]] = counts.get(_STATUS[status], 0) + n

        if buckets <= 0:
            return out
        if all(floor_hour(edge) == edge for edge in edges[1:-1]):
            for s, _q, b, n in await self._count_rows(CountFilter(), edges):
                add(b, s, n)
            return out
        for i in range(buckets):
            for s, _q, _b, n in await self._count_rows(CountFilter(edges[i], edges[i + 1])):
                add(i, s, n)
        return out

    # -- counts and maintenance ---------------------------------------------------------------
    async def fold_counts(self) -> int:
        """Fold every pending count delta into ``TaskCounts``; return how many there were.

        The storage does this by itself every ``count_fold_interval`` seconds; counts are
        exact before a fold too (they add the pending deltas). Several hosts may fold at
        once: each takes other deltas, and one that loses a race to create a counter row,
        or that the database picks as a deadlock's victim, rolls back and tries again.
        Like retention, it works in short transactions and rests as long as each took, so
        task writes keep most of the database's time.
        """
        folded, races = 0, 0
        while True:
            if folded == 0 and not await self._rows(self.statements.any_count_delta):  # type: ignore[attr-defined]
                return 0
            begun = time.monotonic()
            try:
                n = int(await self._maintain(FoldCountsOp(FOLD_BATCH, self._locked_fold)))
            except sa_exc.DBAPIError as error:
                # another host created the same counter row first, or the database chose
                # this fold as a deadlock's victim: it rolled back, so run it again
                if not isinstance(error, sa_exc.IntegrityError) and not is_lock_conflict(error):
                    raise
                races += 1
                if races > 5:
                    raise
                continue
            folded += n
            if n < FOLD_BATCH:
                return folded
            await asyncio.sleep(time.monotonic() - begun)

    @property
    def _locked_fold(self) -> bool:
        return self.tables.dialect in ("mysql", "mariadb")

    async def _maintain(self, op: Op) -> Any:
        """Run a maintenance operation (a retention batch, a fold) in a short transaction
        of its own, outside the group-commit writer (SQLite: through it, see there)."""
        async with self._claim_transaction() as connection:
            outcomes = await connection.run_sync(
                lambda sync: run_core_batch(sync, self.statements, [op])
            )
        return outcomes[0]

    async def _fold_loop(self) -> None:
        while True:
            await asyncio.sleep(self.count_fold_interval)
            try:
                await self.fold_counts()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the next round retries; counts stay exact
                first = str(error).splitlines()[0] if str(error) else type(error).__name__
                _log.warning("Folding the task counts failed (retrying): %s", first)

    async def try_lease(
        self, name: str, owner: uuid.UUID, now: datetime, expires: datetime
    ) -> bool:
        """Take (or renew) the maintenance lease ``name`` until ``expires`` unless another
        owner holds it past ``now``."""
        st = self.statements
        params = {"name": name, "owner": owner, "now": now, "expires": expires}
        if await self._cluster_write(st.take_lease, params):
            return True
        try:
            await self._cluster_write(st.insert_lease, params)
        except sa_exc.IntegrityError:
            return False  # another node holds it
        return True

    async def release_lease(self, name: str, owner: uuid.UUID) -> None:
        """Give the lease back (no-op when another owner holds it)."""
        await self._cluster_write(self.statements.release_lease, {"name": name, "owner": owner})

    # -- retention -------------------------------------------------------------------------
    async def cleanup(
        self, policy: RetentionPolicy, now: datetime | None = None
    ) -> RetentionResult:
        """Apply a retention policy once, in short paced batches (see
        :class:`RetentionPolicy`).

        With several hosts on the database one cleans at a time: the others return a
        result with ``skipped=True``.
        """
        owner = uuid.uuid4()
        lease = RETENTION_LEASE_SECONDS

        def deadline() -> tuple[datetime, datetime]:
            at = self._now()
            return at, at + timedelta(seconds=lease)

        if not await self.try_lease(RETENTION_LEASE, owner, *deadline()):
            return RetentionResult(skipped=True)
        renewed = time.monotonic()

        async def keep_going() -> bool:
            nonlocal renewed
            if time.monotonic() - renewed < lease / 3:
                return True
            renewed = time.monotonic()
            return await self.try_lease(RETENTION_LEASE, owner, *deadline())

        async def over_limit(keep: int, after: uuid.UUID, batch: int) -> list[uuid.UUID]:
            rows = await self._rows(
                self.statements.select_tasks_over_log_limit,  # type: ignore[attr-defined]
                {"keep": keep, "after": after, "batch": batch},
            )
            return [task_id for (task_id,) in rows]

        try:
            result = await apply_retention(
                policy,
                self._now() if now is None else now,
                self._maintain,
                over_limit,
                keep_going=keep_going,
                batch_seconds=self._retention_batch_seconds,
            )
            await self.fold_counts()
            await self._after_cleanup(result)
        finally:
            with contextlib.suppress(Exception):
                await self.release_lease(RETENTION_LEASE, owner)
        return result

    _retention_batch_seconds = 0.05
    """What a retention batch aims to take unless the policy says (outside the writer, a
    batch holds up no task write: only the rows it deletes, which nothing else uses)."""

    async def _after_cleanup(self, result: RetentionResult) -> None:
        """What a dialect does once a cleanup deleted rows (SQLite: give pages back)."""
