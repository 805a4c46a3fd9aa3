"""Deadlocks: recognised on every driver, and the writes that lose one run again."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import pymysql
import pytest
from sqlalchemy import exc as sa_exc

from evertask_storage_efcore_like.errors import is_lock_conflict
from evertask_storage_efcore_like.ops import Op
from evertask_storage_efcore_like.writer import CONFLICT_RETRIES, GroupCommitWriter

from .helpers import NamedOp


class _PgError(Exception):
    """Like asyncpg's errors (and SQLAlchemy's adapter of them): a ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__("deadlock detected")
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("DELETE ...", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"),
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
        _wrapped(pymysql.err.OperationalError(1213, "Deadlock found")),
        _PgError("40P01"),
        _wrapped(_PgError("40001")),
        Exception("40001", "[Microsoft][ODBC Driver 18] Transaction was deadlocked"),
    ],
)
def test_deadlocks_and_serialization_failures_are_conflicts(error: BaseException) -> None:
    assert is_lock_conflict(error)


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.IntegrityError(1062, "Duplicate entry"),
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server"),
        _PgError("23505"),
        sqlite3.OperationalError("database is locked"),
        ValueError("bad value"),
    ],
)
def test_other_errors_are_not_conflicts(error: BaseException) -> None:
    assert not is_lock_conflict(error)


class _Deadlocking:
    """Fails the first ``losses`` transactions as a deadlock's victim."""

    def __init__(self, losses: int) -> None:
        self.losses = losses
        self.attempts: list[list[str]] = []

    async def execute(self, ops: Sequence[Op]) -> list[Any]:
        self.attempts.append([op.name for op in ops])  # type: ignore[attr-defined]
        if len(self.attempts) <= self.losses:
            raise _wrapped(pymysql.err.OperationalError(1213, "Deadlock found"))
        return [f"done {op.name}" for op in ops]  # type: ignore[attr-defined]

    def map_error(self, op: Op, error: BaseException) -> BaseException:
        return error

    async def close(self) -> None:
        return None


async def _run(executor: _Deadlocking, names: list[str]) -> list[Any]:
    writer = GroupCommitWriter(executor)  # type: ignore[arg-type]
    writer.start()
    try:
        futures = [writer.submit(NamedOp(name)) for name in names]
        return list(await asyncio.gather(*futures, return_exceptions=True))
    finally:
        await writer.close()


async def test_a_write_that_loses_a_deadlock_runs_again() -> None:
    executor = _Deadlocking(losses=2)
    assert await _run(executor, ["a"]) == ["done a"]
    assert executor.attempts == [["a"], ["a"], ["a"]]


async def test_a_batch_that_loses_a_deadlock_runs_again_write_by_write() -> None:
    executor = _Deadlocking(losses=1)
    assert await _run(executor, ["a", "b"]) == ["done a", "done b"]
    assert executor.attempts == [["a", "b"], ["a"], ["b"]]


async def test_a_write_that_keeps_losing_fails_with_the_database_error() -> None:
    executor = _Deadlocking(losses=100)
    [outcome] = await _run(executor, ["a"])
    assert isinstance(outcome, sa_exc.OperationalError) and is_lock_conflict(outcome)
    assert len(executor.attempts) == 1 + CONFLICT_RETRIES + 1  # the first, alone, retries
