"""The portable batch executor: every operation's steps through SQLAlchemy Core.

One transaction per batch on one dedicated connection; consecutive inserts of new rows
go out as one executemany. Any dialect SQLAlchemy supports works; the SQLite and
PostgreSQL packages replace it with faster executors that speak to their drivers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from .errors import map_integrity_error
from .ops import Op, PersistOp, Step, StepMode, drive
from .rows import task_params
from .statements import Statements

__all__ = ["CoreExecutor", "run_core_batch"]


def run_core_batch(connection: Connection, statements: Statements, ops: Sequence[Op]) -> list[Any]:
    """Execute ``ops`` in order on a synchronous SQLAlchemy connection (no commit)."""

    def run(step: Step) -> Any:
        statement = getattr(statements, step.name)
        if step.mode is StepMode.MANY:
            if step.params:
                connection.execute(statement, step.params)
            return None
        result = connection.execute(statement, step.params)
        if step.mode is StepMode.SCALAR:
            return result.scalar()
        if step.mode is StepMode.ROWS:
            return [tuple(row) for row in result]
        return result.rowcount

    outcomes: list[Any] = []
    i, count = 0, len(ops)
    while i < count:
        op = ops[i]
        if isinstance(op, PersistOp):
            j = i
            while j < count and isinstance(ops[j], PersistOp):
                j += 1
            persists: list[PersistOp] = ops[i:j]  # type: ignore[assignment]
            connection.execute(statements.insert_task, [task_params(p.row) for p in persists])
            audits = [
                {
                    "id": p.row.id,
                    "ts": p.audit_ts,
                    "status": p.row.status.value,
                    "exception": p.row.exception,
                }
                for p in persists
                if p.audit_ts is not None
            ]
            if audits:
                connection.execute(statements.insert_status_audit, audits)
            outcomes.extend([None] * len(persists))
            i = j
            continue
        outcomes.append(drive(op.steps(), run))
        i += 1
    return outcomes


class CoreExecutor:
    """Runs batches on one connection obtained from ``connect`` (reconnects when lost)."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[AsyncConnection]],
        statements: Statements,
    ) -> None:
        self._connect = connect
        self._statements = statements
        self._connection: AsyncConnection | None = None

    def _batch(self, connection: Connection, ops: Sequence[Op]) -> list[Any]:
        """The batch on the synchronous connection (a dialect may run it its own way)."""
        return run_core_batch(connection, self._statements, ops)

    async def execute(self, ops: Sequence[Op]) -> list[Any]:
        """One transaction for the whole batch."""
        connection = self._connection
        if connection is None:
            connection = self._connection = await self._connect()
        try:
            async with connection.begin():
                return await connection.run_sync(self._batch, ops)
        except Exception as error:
            if connection.invalidated or (
                isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated
            ):
                await self._drop()
            raise

    def map_error(self, op: Op, error: BaseException) -> BaseException:
        """Unique violations become the protocol's errors; a value SQLAlchemy could not
        bind (e.g. a naive datetime) comes back as its own ``ValueError``/``TypeError``."""
        if isinstance(error, sa_exc.IntegrityError):
            return map_integrity_error(op, error)
        if (
            isinstance(error, sa_exc.StatementError)
            and not isinstance(error, sa_exc.DBAPIError)
            and isinstance(error.orig, ValueError | TypeError)
        ):
            return error.orig
        return error

    async def close(self) -> None:
        """Return the connection."""
        await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:  # the connection is already gone
                pass
