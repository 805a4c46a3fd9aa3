"""``add_sqlite_storage``: the builder extension (entry point ``evertask.builder_extensions``)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, TypeVar

from evertask_storage_efcore_like.extension import add_storage
from evertask_storage_efcore_like.retention import RetentionPolicy

from .storage import SqliteTaskStorage

__all__ = ["add_sqlite_storage"]

B = TypeVar("B")


def add_sqlite_storage(
    builder: B,
    path: str | os.PathLike[str] = "evertask.db",
    *,
    retention: RetentionPolicy | None = None,
    retention_interval: timedelta = timedelta(hours=24),
    **options: Any,
) -> B:
    """Store tasks in the SQLite file ``path`` (see :class:`SqliteTaskStorage` for options).

    ``retention`` adds a :class:`~evertask_storage_efcore_like.RetentionComponent` that
    applies the policy every ``retention_interval``. Returns the builder.
    """
    return add_storage(
        builder,
        SqliteTaskStorage,
        path,
        retention=retention,
        retention_interval=retention_interval,
        **options,
    )
