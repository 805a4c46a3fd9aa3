"""Errors of the SQL storages and the mapping of driver errors to EverTask's."""

from __future__ import annotations

from evertask_abstractions import EverTaskError, PersistenceError, TaskKeyConflictError

from .ops import Op

__all__ = [
    "StorageClosedError",
    "StorageConnectionError",
    "StorageSchemaError",
    "is_lock_conflict",
    "map_integrity_error",
]


class StorageConnectionError(PersistenceError, ConnectionError):
    """The database could not be reached or opened (raised by ``open()``)."""


class StorageSchemaError(EverTaskError, RuntimeError):
    """The database schema is missing or older than this version of EverTask needs."""


class StorageClosedError(EverTaskError, RuntimeError):
    """The storage is not open (call ``open()``, or start the host, first)."""


_DUPLICATE_ID_MARKERS = ("PK_QueuedTasks", "QueuedTasks.Id", "'PRIMARY'", ".PRIMARY'")


def map_integrity_error(op: Op, error: BaseException) -> BaseException:
    """Translate a unique-constraint violation into the protocol's error, else ``error``.

    The constraint is recognised by name in the driver's message (SQLite names the
    column, the servers name the index): ``IX_QueuedTasks_TaskKey`` becomes
    :class:`TaskKeyConflictError`, the primary key a ``ValueError``.
    """
    source = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    constraint = getattr(source, "constraint_name", None)
    text = f"{constraint or ''} {source}"  # never the SQL text: it names every column
    key = op.target_key()
    if key is not None and ("TaskKey" in text):
        return TaskKeyConflictError(key)
    task_id = op.target_id()
    if task_id is not None and any(marker in text for marker in _DUPLICATE_ID_MARKERS):
        return ValueError(f"A task with id {task_id} already exists.")
    return error


# MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout; SQL Server: 1205 deadlock victim
_CONFLICT_CODES = frozenset({1205, 1213})
# PostgreSQL and SQL Server (ODBC): 40P01 deadlock, 40001 serialization failure
_CONFLICT_STATES = frozenset({"40P01", "40001"})


def is_lock_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a deadlock, a lock wait timeout or a serialization failure:
    the database rolled the transaction back, and running it again is safe."""
    source = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    state = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
    if state in _CONFLICT_STATES:
        return True
    args: tuple[object, ...] = getattr(source, "args", ())
    first = args[0] if args else None
    if isinstance(first, int):
        return first in _CONFLICT_CODES  # pymysql / aiomysql: (code, message)
    return isinstance(first, str) and first in _CONFLICT_STATES  # pyodbc: (state, message)
