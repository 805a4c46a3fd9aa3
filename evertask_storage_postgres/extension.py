"""``add_postgres_storage``: also ``EverTaskServiceBuilder.add_postgres_storage``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import URL

from evertask_storage_efcore_like.extension import add_storage
from evertask_storage_efcore_like.retention import RetentionPolicy

from .storage import PostgresTaskStorage

__all__ = ["add_postgres_storage"]

B = TypeVar("B")


def add_postgres_storage(
    builder: B,
    url: str | URL,
    schema: str | None = "evertask",
    *,
    pool_size: int = 5,
    connect_timeout: float = 10.0,
    auto_apply_migrations: bool = True,
    max_batch_size: int = 512,
    max_batch_delay: float = 0.0005,
    writer_connections: int = 2,
    engine_options: Mapping[str, Any] | None = None,
    retention: RetentionPolicy | None = None,
    retention_interval: timedelta = timedelta(hours=24),
) -> B:
    """Store tasks in PostgreSQL at ``url`` (see :class:`PostgresTaskStorage` for options).

    ``retention`` adds a :class:`~evertask_storage_efcore_like.RetentionComponent` that
    applies the policy every ``retention_interval``. Returns the builder.
    """
    return add_storage(
        builder,
        PostgresTaskStorage,
        url,
        schema,
        retention=retention,
        retention_interval=retention_interval,
        pool_size=pool_size,
        connect_timeout=connect_timeout,
        auto_apply_migrations=auto_apply_migrations,
        max_batch_size=max_batch_size,
        max_batch_delay=max_batch_delay,
        writer_connections=writer_connections,
        engine_options=engine_options,
    )
