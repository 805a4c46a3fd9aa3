"""``add_sqlite_storage``: also ``EverTaskServiceBuilder.add_sqlite_storage``."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TypeVar

from evertask_storage_efcore_like.extension import add_storage
from evertask_storage_efcore_like.retention import RetentionPolicy

from .storage import SqliteTaskStorage

__all__ = ["add_sqlite_storage"]

B = TypeVar("B")


def add_sqlite_storage(
    builder: B,
    path: str | os.PathLike[str] = "evertask.db",
    *,
    synchronous: str = "NORMAL",
    busy_timeout: float = 5.0,
    readers: int = 2,
    auto_apply_migrations: bool = True,
    max_batch_size: int = 512,
    max_batch_delay: float = 0.0005,
    inline_max_ops: int = 64,
    retention: RetentionPolicy | None = None,
    retention_interval: timedelta = timedelta(hours=24),
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
        synchronous=synchronous,
        busy_timeout=busy_timeout,
        readers=readers,
        auto_apply_migrations=auto_apply_migrations,
        max_batch_size=max_batch_size,
        max_batch_delay=max_batch_delay,
        inline_max_ops=inline_max_ops,
    )
