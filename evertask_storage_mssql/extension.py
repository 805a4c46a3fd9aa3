"""``add_sqlserver_storage``: the builder extension (entry point group
``evertask.builder_extensions``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from evertask_storage_efcore_like.extension import add_storage
from evertask_storage_efcore_like.retention import RetentionPolicy

from .storage import DEFAULT_SCHEMA, SqlServerTaskStorage

__all__ = ["add_sqlserver_storage"]

B = TypeVar("B")


def add_sqlserver_storage(
    builder: B,
    connection_string: str,
    schema: str | None = DEFAULT_SCHEMA,
    *,
    retention: RetentionPolicy | None = None,
    retention_interval: timedelta = timedelta(hours=24),
    **options: Any,
) -> B:
    """Store tasks in SQL Server (see :class:`SqlServerTaskStorage` for the string and options).

    ``schema`` defaults to ``EverTask`` (empty: ``dbo``). ``retention`` adds a
    :class:`~evertask_storage_efcore_like.RetentionComponent` that applies the policy every
    ``retention_interval``. Returns the builder.
    """
    return add_storage(
        builder,
        SqlServerTaskStorage,
        connection_string,
        schema,
        retention=retention,
        retention_interval=retention_interval,
        **options,
    )
