"""SQLAlchemy 2 (async Core) storage base for EverTask: schema, Alembic migrations, group
commit, audit policy, monitoring queries and retention, parameterised by dialect.

The SQLite and PostgreSQL packages build on :class:`SqlTaskStorage`; any other async
SQLAlchemy URL works with it directly through the portable executor.
"""

from .errors import StorageClosedError, StorageConnectionError, StorageSchemaError
from .executor import CoreExecutor
from .migrate import (
    VERSION_TABLE,
    apply_migrations,
    current_revision,
    downgrade_migrations,
    head_revision,
    migration_sql,
)
from .retention import RetentionComponent, RetentionPolicy, RetentionResult, SupportsCleanup
from .schema import TaskTables, build_tables
from .statements import Statements
from .storage import SqlTaskStorage
from .writer import BatchExecutor, GroupCommitWriter

__all__ = [
    "VERSION_TABLE",
    "BatchExecutor",
    "CoreExecutor",
    "GroupCommitWriter",
    "RetentionComponent",
    "RetentionPolicy",
    "RetentionResult",
    "SqlTaskStorage",
    "Statements",
    "StorageClosedError",
    "StorageConnectionError",
    "StorageSchemaError",
    "SupportsCleanup",
    "TaskTables",
    "apply_migrations",
    "build_tables",
    "current_revision",
    "downgrade_migrations",
    "head_revision",
    "migration_sql",
]
