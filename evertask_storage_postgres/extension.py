"""``add_postgres_storage``: the builder extension (entry point ``evertask.builder_extensions``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from evertask_storage_efcore_like.extension import register_storage
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
    PostgresTaskStorage(url, **options)  # validate the options now, not at build()

    def factory(now: Any) -> PostgresTaskStorage:
        return PostgresTaskStorage(url, **{"now": now, **options})

    return register_storage(  # type: ignore[no-any-return]
        builder, factory, retention=retention, retention_interval=retention_interval
    )
