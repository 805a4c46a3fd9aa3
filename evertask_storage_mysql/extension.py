"""``add_mysql_storage``: the builder extension (entry point ``evertask.builder_extensions``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from evertask_storage_efcore_like.extension import add_storage
from evertask_storage_efcore_like.retention import RetentionPolicy

from .storage import MySqlTaskStorage

__all__ = ["add_mysql_storage"]

B = TypeVar("B")


def add_mysql_storage(
    builder: B,
    url: str,
    *,
    retention: RetentionPolicy | None = None,
    retention_interval: timedelta = timedelta(hours=24),
    **options: Any,
) -> B:
    """Store tasks in MySQL or MariaDB at ``url`` (see :class:`MySqlTaskStorage` for options).

    ``retention`` adds a :class:`~evertask_storage_efcore_like.RetentionComponent` that
    applies the policy every ``retention_interval``. Returns the builder.
    """
    return add_storage(
        builder,
        MySqlTaskStorage,
        url,
        retention=retention,
        retention_interval=retention_interval,
        **options,
    )
