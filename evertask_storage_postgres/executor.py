"""The PostgreSQL batch executor: one set-based statement per batch on raw asyncpg.

A batch is cut into waves in which no task id or task key repeats (so combining the
writes of a wave cannot change any outcome). Each wave's persists, status transitions,
compare-and-sets and log inserts are one statement (see :mod:`.sql`); other writes
(recurring accounting, updates, removals, retention) run their steps as precompiled
statements. A batch that is one statement commits by itself, in one round trip;
otherwise BEGIN ... COMMIT wraps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from evertask_storage_efcore_like.errors import map_integrity_error
from evertask_storage_efcore_like.ops import (
    Op,
    PersistOp,
    SaveLogsOp,
    Step,
    StepMode,
    TransitionOp,
    TryQueuedOp,
    drive_async,
    waves,
)
from evertask_storage_efcore_like.precompiled import PrecompiledCache
from evertask_storage_efcore_like.statements import Statements
from evertask_storage_efcore_like.types import to_utc

from .sql import (
    AUDITS,
    COMPARE_AND_SET,
    LOGS,
    PERSIST,
    PRIOR,
    QUEUED,
    TRANSITION,
    TRANSITION_FOUND,
    TRANSITION_MEMBER,
    PostgresSql,
)

__all__ = ["PostgresExecutor", "waves"]

_SET_BASED = (PersistOp, TransitionOp, TryQueuedOp, SaveLogsOp)


def _column(values: list[Any]) -> list[Any] | None:
    """One column's array, or NULL when all its values are: ``unnest`` pads a NULL array
    with NULLs, and the driver has nothing to encode (most columns of a new one-shot row)."""
    if values and values[0] is None and values[-1] is None and values.count(None) == len(values):
        return None
    return values


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresExecutor:
    """Runs batches on one asyncpg connection checked out of the writer engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        statements: Statements,
        sql: PostgresSql,
        wrote: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._steps = PrecompiledCache(statements, engine.dialect)
        self._sql = sql
        self._wrote = wrote
        self._connection: AsyncConnection | None = None
        self._pg: Any = None  # asyncpg.Connection

    async def _ensure(self) -> Any:
        if self._pg is None or self._pg.is_closed():
            await self._drop()
            connection = await self._engine.connect()
            raw = await connection.get_raw_connection()
            self._connection = connection
            self._pg = raw.driver_connection
            if self._pg.is_closed():  # a pooled connection the server has closed since
                await self._drop()
                connection = await self._engine.connect()
                raw = await connection.get_raw_connection()
                self._connection = connection
                self._pg = raw.driver_connection
            # the batch statements are prepared once and run for every batch; a custom plan
            # per execution costs more than the execution itself (about 0.5 ms of planning
            # for a one-row transition), and their generic plans are the same index lookups
            # once the tables have statistics (a plan made while a table was empty is kept
            # until it is analyzed again: see .statistics)
            await self._pg.execute("SET plan_cache_mode = force_generic_plan")
        return self._pg

    async def execute(self, ops: Sequence[Op]) -> list[Any]:
        """The batch in one transaction (or one autocommitted statement)."""
        pg = await self._ensure()
        plan = list(waves(ops))
        # a terminal transition releases its continuations with a second statement: the
        # batch then needs a transaction (the release must commit with the parent's status)
        single = len(plan) == 1 and all(
            isinstance(ops[i], _SET_BASED)
            and not (isinstance(ops[i], TransitionOp) and ops[i].releases)  # type: ignore[attr-defined]
            for i in plan[0]
        )
        outcomes: list[Any] = [None] * len(ops)
        transaction = None if single else pg.transaction()
        try:
            if transaction is not None:
                await transaction.start()
            for wave in plan:
                await self._run_wave(pg, ops, wave, outcomes)
            if transaction is not None:
                await transaction.commit()
        except BaseException:
            if transaction is not None and not pg.is_closed():
                try:
                    await transaction.rollback()
                except Exception:
                    await self._drop()
            raise
        if self._wrote is not None:
            self._wrote(len(ops))
        return outcomes

    def map_error(self, op: Op, error: BaseException) -> BaseException:
        """Unique violations become the protocol's errors."""
        if isinstance(error, asyncpg.IntegrityConstraintViolationError):
            return map_integrity_error(op, error)
        return error

    async def close(self) -> None:
        """Return the connection."""
        await self._drop()

    async def _drop(self) -> None:
        connection, pg = self._connection, self._pg
        self._connection, self._pg = None, None
        if connection is not None:
            try:
                if pg is not None and pg.is_closed():
                    # lost (the server restarted, the backend was terminated): the pool
                    # must not hand this connection out again
                    await connection.invalidate()
                else:
                    await connection.close()
            except Exception:  # already broken
                pass

    # -- one wave --------------------------------------------------------------------------
    async def _run_wave(
        self, pg: Any, ops: Sequence[Op], wave: list[int], outcomes: list[Any]
    ) -> None:
        persists: list[PersistOp] = []
        transitions: list[tuple[int, TransitionOp]] = []
        queued: list[tuple[int, TryQueuedOp]] = []
        logs: list[SaveLogsOp] = []
        others: list[int] = []
        for i in wave:
            op = ops[i]
            if isinstance(op, PersistOp):
                persists.append(op)
            elif isinstance(op, TransitionOp):
                transitions.append((i, op))
            elif isinstance(op, TryQueuedOp):
                queued.append((i, op))
            elif isinstance(op, SaveLogsOp):
                logs.append(op)
            else:
                others.append(i)
        if persists or transitions or queued or logs:
            found = await self._batch(
                pg, persists, [op for _, op in transitions], [op for _, op in queued], logs
            )
            releasing: list[tuple[int, TransitionOp]] = []
            for i, op in transitions:
                if (TRANSITION_FOUND, op.task_id) not in found:
                    if op.must_exist:
                        outcomes[i] = KeyError(f"Task {op.task_id} does not exist.")
                elif op.releases:
                    outcomes[i] = []
                    releasing.append((i, op))
            if releasing:
                # one statement finds the parents with waiting continuations (rare); a new
                # statement sees every child committed before this batch locked its parent,
                # and a child dispatched later waits for that lock, then finds its parent
                # finished and releases itself. Those and the uncounted members of a batch
                # (the batch statement said which) finish in the same transaction
                waiting = {
                    row[0]
                    for row in await pg.fetch(
                        self._sql.parents_with_waiting_children,
                        [op.task_id for _, op in releasing],
                    )
                }
                for i, op in releasing:
                    if op.task_id in waiting or (TRANSITION_MEMBER, op.task_id) in found:
                        outcomes[i] = await drive_async(op.finish(), self._step_runner(pg))
            for i, qop in queued:
                outcomes[i] = (QUEUED, qop.task_id) in found
        for i in others:
            outcomes[i] = await drive_async(ops[i].steps(), self._step_runner(pg))

    async def _batch(
        self,
        pg: Any,
        persists: list[PersistOp],
        transitions: list[TransitionOp],
        queued: list[TryQueuedOp],
        logs: list[SaveLogsOp],
    ) -> set[tuple[int, Any]]:
        parts = 0
        args: list[list[Any]] = []
        if persists:
            parts |= PERSIST
            rows = [p.row for p in persists]
            args += [
                [r.id for r in rows],
                [r.type for r in rows],
                [r.request for r in rows],
                [r.handler for r in rows],
                [r.status.value for r in rows],
                [to_utc(r.created_at_utc) for r in rows],
                [r.queue_name for r in rows],
                [int(r.audit_level) for r in rows],
                [to_utc(r.scheduled_execution_utc) for r in rows],
                [to_utc(r.last_execution_utc) for r in rows],
                [r.execution_time_ms for r in rows],
                [r.exception for r in rows],
                [r.is_recurring for r in rows],
                [r.recurring_task for r in rows],
                [r.recurring_info for r in rows],
                [r.current_run_count for r in rows],
                [r.max_runs for r in rows],
                [to_utc(r.run_until) for r in rows],
                [to_utc(r.next_run_utc) for r in rows],
                [r.task_key for r in rows],
                [r.recovery_dispatch_failure_count for r in rows],
                [r.trace_context for r in rows],
                [r.retried_from for r in rows],
                [r.owner_node for r in rows],
                [r.result for r in rows],
                [r.parent_task_id for r in rows],
                [r.continue_when for r in rows],
                [r.batch_id for r in rows],
                [r.workflow_id for r in rows],
                [p.audit_ts for p in persists],
            ]
        if transitions:
            parts |= TRANSITION
            args += [
                [o.task_id for o in transitions],
                [o.status for o in transitions],
                [o.exception for o in transitions],
                [o.stamp for o in transitions],
                [o.ms for o in transitions],
                [o.clear_next for o in transitions],
                [o.audit_ts for o in transitions],
                [o.result for o in transitions],
            ]
            if any(o.prior_audit_ts is not None for o in transitions):
                parts |= PRIOR | AUDITS
                args.append([o.prior_audit_ts for o in transitions])
        if queued:
            parts |= COMPARE_AND_SET
            args += [
                [o.task_id for o in queued],
                [o.now for o in queued],
                [o.audit_ts for o in queued],
                [o.owner for o in queued],
            ]
        if (
            any(p.audit_ts is not None for p in persists)
            or any(t.audit_ts is not None for t in transitions)
            or any(c.audit_ts is not None for c in queued)
        ):
            parts |= AUDITS
        if logs:
            parts |= LOGS
            entries = [(op.task_id, log) for op in logs for log in op.logs]
            args += [
                [log.id for _, log in entries],
                [task_id for task_id, _ in entries],
                [to_utc(log.timestamp_utc) for _, log in entries],
                [log.level for _, log in entries],
                [log.message for _, log in entries],
                [log.exception_details for _, log in entries],
                [log.sequence_number for _, log in entries],
            ]
        records = await pg.fetch(self._sql.batch(parts), *map(_column, args))
        return {(r[0], r[1]) for r in records}

    def _step_runner(self, pg: Any) -> Any:
        steps = self._steps

        async def run(step: Step) -> Any:
            prepared = steps[step.name]
            if step.mode is StepMode.MANY:
                await pg.executemany(prepared.sql, [prepared.args(p) for p in step.params])
                return None
            args = prepared.args(step.params)
            if step.mode is StepMode.SCALAR:
                return await pg.fetchval(prepared.sql, *args)
            if step.mode is StepMode.ROWS:
                return [tuple(r) for r in await pg.fetch(prepared.sql, *args)]
            return _rowcount(await pg.execute(prepared.sql, *args))

        return run
