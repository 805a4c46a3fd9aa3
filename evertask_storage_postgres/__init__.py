"""PostgreSQL storage for EverTask: asyncpg, set-based group commit, writable CTEs."""

from evertask_storage_efcore_like import RetentionComponent, RetentionPolicy, RetentionResult

from .extension import add_postgres_storage
from .storage import PostgresTaskStorage, asyncpg_url

__all__ = [
    "PostgresTaskStorage",
    "RetentionComponent",
    "RetentionPolicy",
    "RetentionResult",
    "add_postgres_storage",
    "asyncpg_url",
]
