"""``add_postgres_storage``: the builder extension (entry point ``evertask.builder_extensions``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from evertask_storage_efcore_like.extension import add_storage
from evertask_storage_efcore_like.retention import RetentionPolicy

from .storage import PostgresTaskStorage

__all__ = ["add_postgres_storage"]

B = TypeVar("B")


def add_postgres_storage(
    builder: B,
    url: str,
    *,
    retention: RetentionPolicy | None = None,
    retention_interval: timedelta = timedelta(hours=24),
    **options: Any,
) -> B:
    """Store tasks in PostgreSQL at ``url`` (see :class:`PostgresTaskStorage` for options).

    ``retention`` adds a :class:`~evertask_storage_efcore_like.RetentionComponent` that
    applies the policy every ``retention_interval``. Returns the builder.
    """
    return add_storage(
        builder,
        PostgresTaskStorage,
        url,
        retention=retention,
        retention_interval=retention_interval,
        **options,
    )
