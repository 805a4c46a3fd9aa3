"""SQL Server's batch executor: the portable one, plus one-round-trip recovery counting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from evertask_storage_efcore_like import CoreExecutor
from evertask_storage_efcore_like.executor import run_core_batch
from evertask_storage_efcore_like.ops import Op, RecoveryCounterOp

from .statements import SqlServerStatements

__all__ = ["SqlServerExecutor", "run_sqlserver_batch"]


def run_sqlserver_batch(
    connection: Connection, statements: SqlServerStatements, ops: Sequence[Op]
) -> list[Any]:
    """Execute ``ops`` in order (no commit): recovery increments use ``UPDATE ... OUTPUT``,
    every other run of operations goes through the portable executor."""
    outcomes: list[Any] = []
    start = 0
    for index, op in enumerate(ops):
        if isinstance(op, RecoveryCounterOp) and op.increment:
            if start < index:
                outcomes.extend(run_core_batch(connection, statements, ops[start:index]))
            value = connection.execute(
                statements.increment_recovery_output, {"id": op.task_id}
            ).scalar()
            outcomes.append(int(value or 0))
            start = index + 1
    if start < len(ops):
        outcomes.extend(run_core_batch(connection, statements, ops[start:]))
    return outcomes


class SqlServerExecutor(CoreExecutor):
    """:class:`~evertask_storage_efcore_like.CoreExecutor` running :func:`run_sqlserver_batch`."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[AsyncConnection]],
        statements: SqlServerStatements,
    ) -> None:
        super().__init__(connect, statements)
        self._sqlserver = statements

    def _batch(self, connection: Connection, ops: Sequence[Op]) -> list[Any]:
        return run_sqlserver_batch(connection, self._sqlserver, ops)
