"""SQLite storage for EverTask: one file, WAL, one writer connection with group commit."""

from evertask_storage_efcore_like import RetentionComponent, RetentionPolicy, RetentionResult

from .extension import add_sqlite_storage
from .storage import SqliteTaskStorage

__all__ = [
    "RetentionComponent",
    "RetentionPolicy",
    "RetentionResult",
    "SqliteTaskStorage",
    "add_sqlite_storage",
]
